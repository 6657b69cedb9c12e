"""3DC armband data set (Côté-Allard et al. 2019) to session recordings.

A participant's ``train/`` or ``test/`` folder holds ``EMG/3dc_EMG_gesture_{rep}_{class}.txt``: comma-separated
ADC counts, one row per sample, 10 channels at 1000 Hz. Each file (one gesture held about 5 s) becomes one
segment, in the order repetition, then class; its samples get the class as label and ``rep + 1`` as
repetition; a cue event marks its start.
"""

from __future__ import annotations

import os
import re
from typing import List, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.recording import CUE_DTYPE, INT16_MAX, Recording

FS_HZ = 1000.0
N_CHANNELS = 10
CLASS_NAMES = (
    "neutral", "radial_deviation", "wrist_flexion", "ulnar_deviation", "wrist_extension", "supination",
    "pronation", "power_grip", "open_hand", "chuck_grip", "pinch_grip",
)
_FILE = re.compile(r"^3dc_EMG_gesture_(\d+)_(\d+)\.txt$")


def import_3dc(folder: str) -> Recording:
    """Read a 3DC participant's ``train/`` or ``test/`` folder.

    Returns
    -------
    Recording
        ``signal_kind='emg'``, 10 channels at 1000 Hz in ADC counts, 11 classes (0 = neutral), no positions.
    """
    emg_dir = os.path.join(folder, "EMG")
    if not os.path.isdir(emg_dir):
        raise FileNotFoundError("{!r} has no EMG/ folder; expected a 3DC participant's train/ or test/ folder".format(
            folder))
    files: List[Tuple[int, int, str]] = []
    for name in os.listdir(emg_dir):
        m = _FILE.match(name)
        if m:
            files.append((int(m.group(1)), int(m.group(2)), os.path.join(emg_dir, name)))
    if not files:
        raise FileNotFoundError("No 3dc_EMG_gesture_<rep>_<class>.txt files in {!r}".format(emg_dir))
    files.sort()
    sigs, labels, reps, starts, cues = [], [], [], [], []
    n = 0
    for rep, cls, path in files:
        if cls >= len(CLASS_NAMES):
            raise InvalidValueError("{!r}: class {} is outside 0..{}".format(path, cls, len(CLASS_NAMES) - 1))
        if rep + 1 > INT16_MAX:
            raise InvalidValueError("{!r}: repetition {} is outside 0..{}".format(path, rep, INT16_MAX - 1))
        try:
            x = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
        except ValueError as e:
            raise InvalidValueError("{!r} is not comma-separated numbers: {}".format(path, e)) from None
        if x.shape[1] != N_CHANNELS:
            raise InvalidValueError("{!r}: expected {} columns (channels), got {}".format(path, N_CHANNELS, x.shape[1]))
        if len(x) == 0:
            continue
        starts.append(n)
        cues.append((n, cls, len(x), CLASS_NAMES[cls].encode()))
        sigs.append(x)
        labels.append(np.full(len(x), cls, np.int16))
        reps.append(np.full(len(x), rep + 1, np.int16))
        n += len(x)
    participant = os.path.basename(os.path.dirname(os.path.abspath(folder)))
    part = os.path.basename(os.path.abspath(folder))
    return Recording(
        signals=np.concatenate(sigs),
        fs_hz=FS_HZ,
        signal_kind="emg",
        channel_names=tuple("emg{}".format(i + 1) for i in range(N_CHANNELS)),
        units="counts",
        labels=np.concatenate(labels),
        class_names=CLASS_NAMES,
        repetitions=np.concatenate(reps),
        segment_starts=np.asarray(starts, np.int64),
        cues=np.array(cues, dtype=CUE_DTYPE),
        metadata={
            "patient_id": "3dc-{}".format(participant.lower()),
            "session_id": "3dc-{}-{}".format(participant.lower(), part),
            "device": "3DC armband prototype, 10 bipolar EMG channels",
            "source": "3DC data set (Cote-Allard et al., IEEE TNSRE 27(4):760-771, 2019), {}".format(folder),
            "notes": "{} files; labels are the held gesture of each file".format(len(sigs)),
            "mains_hz": "60",  # recorded in Quebec, Canada
        },
    )
