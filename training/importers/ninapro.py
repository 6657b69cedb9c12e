"""NinaPro DB1 (Atzori et al. 2014) exercise files to session recordings.

Signals: 10 Otto Bock electrodes whose output is already rectified and RMS-smoothed, sampled at 100 Hz
(``signal_kind='envelope'``). Labels: ``restimulus`` (movement re-aligned to the actual motion, 0 = rest).
Repetitions: ``rerepetition``; rest samples (repetition 0) are given the repetition that follows them (the
rest before a movement belongs to it; the rest after the last one to the last), so a split by repetition
keeps each rest period with its movement.

Finger positions from the 22-sensor CyberGlove II (raw 8-bit values). Sensor numbering (0-based, CyberGlove
II manual): 0 thumb rotation, 1 thumb MCP, 2 thumb IP, 3 thumb-index abduction, 4 index MCP, 5 index PIP,
6 index DIP, 7 middle MCP, 8 middle PIP, 9 middle DIP, 10 middle-index abduction, 11 ring MCP, 12 ring PIP,
13 ring DIP, 14 ring-middle abduction, 15 little MCP, 16 little PIP, 17 little DIP, 18 little-ring abduction,
19 palm arch, 20 wrist pitch, 21 wrist yaw. Each finger is the signed mean of its flexion sensors
(:data:`GLOVE_FINGER_SENSORS`):

- thumb: MCP and IP (1, 2), sign -1: on this glove both fall when the thumb flexes (exercise movement 11,
  thumb flexion, lowers them by 44 and 26 counts; extension, 12, raises them).
- index: MCP and PIP (4, 5); middle: MCP and PIP (7, 8); ring: MCP and PIP (11, 12).
- little: MCP only (15). Its PIP sensor (16) moves more with ring extension and thumb adduction than with
  little flexion (cross-talk), so it is left out.

DIP sensors are left out everywhere (they are inconsistent: index DIP rises in both flexion and
extension). Each finger is scaled to 0..1 by its 1st and 99th percentile over the whole file (a glove
calibration, taken before any repetition is selected so that train and test files share one scale), then
clipped. :func:`finger_check` verifies against the data that during each finger's flexion movement its own
position moves more than any other finger's.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.recording import Recording

from ..data import select_repetitions

FS_HZ = 100.0
CLASS_NAMES = (
    "rest", "index_flexion", "index_extension", "middle_flexion", "middle_extension", "ring_flexion",
    "ring_extension", "little_flexion", "little_extension", "thumb_adduction", "thumb_abduction",
    "thumb_flexion", "thumb_extension",
)
# finger -> (sensor indices, sign): position rises with flexion.
GLOVE_FINGER_SENSORS: Dict[str, Tuple[Tuple[int, ...], float]] = {
    "thumb": ((1, 2), -1.0),
    "index": ((4, 5), 1.0),
    "middle": ((7, 8), 1.0),
    "ring": ((11, 12), 1.0),
    "little": ((15,), 1.0),
}
# Flexion movement of each finger in exercise 1 (finger order thumb..little).
FLEXION_MOVEMENT = {"thumb": 11, "index": 1, "middle": 3, "ring": 5, "little": 7}
SCALE_PERCENTILES = (1.0, 99.0)


def glove_to_positions(glove: np.ndarray) -> np.ndarray:
    """Five finger positions in 0..1 from raw CyberGlove II values.

    Parameters
    ----------
    glove : np.ndarray, shape (n, 22)

    Returns
    -------
    np.ndarray, shape (n, 5), float32 (thumb, index, middle, ring, little; 0 open, 1 flexed)
    """
    glove = np.asarray(glove, dtype=np.float64)
    if glove.ndim != 2 or glove.shape[1] != 22:
        raise InvalidValueError("glove must have shape (n, 22) (CyberGlove II), got {}".format(glove.shape))
    out = np.empty((len(glove), 5), dtype=np.float32)
    for j, (sensors, sign) in enumerate(GLOVE_FINGER_SENSORS.values()):
        v = sign * glove[:, list(sensors)].mean(axis=1)
        lo, hi = np.percentile(v, SCALE_PERCENTILES)
        out[:, j] = np.clip((v - lo) / max(hi - lo, 1e-9), 0.0, 1.0)
    return out


def finger_check(positions: np.ndarray, labels: np.ndarray) -> Dict[str, Dict[str, float]]:
    """Mean change of every finger from rest during each finger's flexion movement.

    Returns
    -------
    dict
        ``{finger: {finger2: change}}``; the diagonal should dominate each row.
    """
    names = list(GLOVE_FINGER_SENSORS)
    rest = positions[labels == 0].mean(axis=0)
    out = {}
    for f, mov in FLEXION_MOVEMENT.items():
        d = positions[labels == mov].mean(axis=0) - rest
        out[f] = {names[j]: float(d[j]) for j in range(5)}
    return out


def _fill_rest_repetitions(rep: np.ndarray) -> np.ndarray:
    """Give rest samples (0) the repetition that follows them; trailing rest gets the last one."""
    rep = rep.astype(np.int64)
    idx = np.where(rep > 0, np.arange(len(rep)), len(rep))
    nxt = np.minimum.accumulate(idx[::-1])[::-1]
    out = rep.copy()
    has_next = nxt < len(rep)
    out[has_next] = rep[nxt[has_next]]
    if (~has_next).any() and (rep > 0).any():
        out[~has_next] = rep[rep > 0][-1]
    return out


def import_ninapro(path: str, *, reps: Optional[Sequence[int]] = None) -> Recording:
    """Read a NinaPro DB1 exercise ``.mat`` file.

    Parameters
    ----------
    path : str
        e.g. ``S2_A1_E1.mat``.
    reps : sequence of int, optional
        Keep only these repetitions (with their rest periods); each kept stretch becomes a segment.

    Returns
    -------
    Recording
        ``signal_kind='envelope'``, 10 channels at 100 Hz, positions (n, 5) at every sample, 13 classes.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not os.path.exists(path):
        raise FileNotFoundError("No NinaPro file at {!r}".format(path))
    try:
        d = loadmat(path)
    except (MatReadError, ValueError, TypeError, NotImplementedError, EOFError) as e:  # empty, truncated, v7.3
        raise InvalidValueError("{!r} is not a readable NinaPro DB1 .mat file ({}: {})".format(
            path, type(e).__name__, e)) from None
    for key in ("emg", "glove", "restimulus", "rerepetition"):
        if key not in d:
            raise InvalidValueError("{!r} is not a NinaPro DB1 file: variable {!r} is missing (found {})".format(
                path, key, sorted(k for k in d if not k.startswith("__"))))
    emg = np.asarray(d["emg"], dtype=np.float32)
    glove = np.asarray(d["glove"], dtype=np.float64)
    labels = np.asarray(d["restimulus"]).ravel().astype(np.int16)
    rep = _fill_rest_repetitions(np.asarray(d["rerepetition"]).ravel())
    n = len(emg)
    if len(glove) != n or len(labels) != n or len(rep) != n:
        raise InvalidValueError("{!r}: emg, glove, restimulus and rerepetition differ in length".format(path))
    if labels.max() >= len(CLASS_NAMES):
        raise InvalidValueError("{!r}: labels up to {} but exercise 1 has {} classes".format(
            path, labels.max(), len(CLASS_NAMES)))
    subject = int(np.asarray(d.get("subject", [[0]])).ravel()[0])
    exercise = int(np.asarray(d.get("exercise", [[0]])).ravel()[0])
    rec = Recording(
        signals=emg,
        fs_hz=FS_HZ,
        signal_kind="envelope",
        channel_names=tuple("emg{}".format(i + 1) for i in range(emg.shape[1])),
        units="V",
        positions=glove_to_positions(glove),
        position_index=np.arange(n, dtype=np.int64),
        labels=labels,
        class_names=CLASS_NAMES,
        repetitions=rep.astype(np.int16),
        metadata={
            "patient_id": "ninapro-db1-s{}".format(subject),
            "session_id": "ninapro-db1-s{}-e{}".format(subject, exercise),
            "device": "Otto Bock MyoBock 13E200 x10 (rectified RMS envelope), CyberGlove II",
            "source": "NinaPro DB1 {} (Atzori et al., Sci Data 1:140053, 2014)".format(os.path.basename(path)),
            "notes": "finger positions from glove sensors {}".format(
                {k: list(v[0]) for k, v in GLOVE_FINGER_SENSORS.items()}),
        },
    )
    if reps is not None:
        rec = select_repetitions(rec, reps, name=repr(path))
    return rec
