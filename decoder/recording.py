"""Recordings: raw signals with their rate and everything recorded alongside them.

A :class:`Recording` is what the importers, the simulator and a calibration session produce and what training reads.
On disk it is one HDF5 session file, read and written only through :mod:`neurohand.decoder.session_file`
(:func:`~neurohand.decoder.session_file.read_recording`, :func:`~neurohand.decoder.session_file.write_recording`,
:class:`~neurohand.decoder.session_file.SessionWriter`), so the schema lives in one place.
"""

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .errors import InvalidValueError
from .validation import check_option, check_positive, check_signal, invalid_value
from .vocabulary import SIGNAL_KINDS

METADATA_KEYS = ("patient_id", "session_id", "device", "date", "source", "notes")
CUE_DTYPE = np.dtype([("sample", "<i8"), ("label", "<i2"), ("duration_samples", "<i8"), ("name", "S64")])


INT16_MAX = 32767


def first_bad_integer(arr: np.ndarray, lo: int = 0, hi: int = INT16_MAX) -> Optional[int]:
    """Index of the first value of ``arr`` that is not an integer in ``lo..hi`` (None when all are)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iuf":
        return 0 if arr.size else None
    with np.errstate(invalid="ignore"):
        x = arr.astype(np.float64)
        bad = ~np.isfinite(x) | (x != np.round(x)) | (x < lo) | (x > hi)
    idx = np.flatnonzero(bad)
    return int(idx[0]) if idx.size else None


def int16_column(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as int16 after checking every value is an integer in 0..32767 (no silent wrap or truncation).

    Raises
    ------
    InvalidValueError
        Naming the column and the first sample that is not.
    """
    arr = np.asarray(arr)
    k = first_bad_integer(arr)
    if k is not None:
        raise invalid_value(name, "integers in 0..{}, got {!r} at sample {}".format(
            INT16_MAX, arr.ravel()[k].item() if arr.dtype.kind in "iufb" else str(arr.dtype), k))
    return arr.astype(np.int16)


@dataclass(frozen=True)
class Recording:
    """Raw signals and everything recorded with them.

    Parameters
    ----------
    signals : np.ndarray, shape (n_samples, n_channels), float32
        Raw samples in ``units``.
    fs_hz : float
        Sample rate of ``signals``.
    signal_kind : {'nerve', 'emg', 'envelope'}
        What the signals are; picks the default feature configuration.
    channel_names : tuple of str
        One per channel.
    units : str
        Unit of the samples (``'uV'``, ``'counts'``, ``'V'``).
    positions : np.ndarray, shape (n_positions, 5), float32, optional
        Finger positions in 0..1 (thumb, index, middle, ring, little; 0 open, 1 flexed).
    position_index : np.ndarray, shape (n_positions,), int64, optional
        Signal sample of each position row (increasing).
    labels : np.ndarray, shape (n_samples,), int16, optional
        Movement class per sample, 0 = rest.
    class_names : tuple of str
        Name of each class; ``class_names[0]`` is rest.
    repetitions : np.ndarray, shape (n_samples,), int16, optional
        Repetition or trial index per sample (0 = none).
    segment_starts : np.ndarray, shape (n_segments,), int64
        First sample of each continuous stretch; filters and features restart at each.
    cues : np.ndarray, shape (n_cues,), :data:`CUE_DTYPE`
        Cue events shown to the patient.
    metadata : dict of str to str
        patient_id, session_id, device, date, source, notes, and any other string fields.
    path : str, optional
        The session file it was read from (:func:`decoder.session_file.read_recording`), for messages; not stored.
    """

    signals: np.ndarray
    fs_hz: float
    signal_kind: str = "nerve"
    channel_names: Tuple[str, ...] = ()
    units: str = "uV"
    positions: Optional[np.ndarray] = None
    position_index: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    class_names: Tuple[str, ...] = ("rest",)
    repetitions: Optional[np.ndarray] = None
    segment_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    cues: np.ndarray = field(default_factory=lambda: np.zeros(0, CUE_DTYPE))
    metadata: Dict[str, str] = field(default_factory=dict)
    path: Optional[str] = field(default=None, compare=False)  # the session file it was read from; never stored

    def __post_init__(self) -> None:
        sig = check_signal("signals", self.signals, allow_nonfinite=True)
        object.__setattr__(self, "signals", np.asarray(sig, dtype=np.float32))
        check_positive("fs_hz", self.fs_hz)
        object.__setattr__(self, "fs_hz", float(self.fs_hz))
        check_option("signal_kind", self.signal_kind, SIGNAL_KINDS)
        n, c = self.signals.shape
        names = tuple(self.channel_names) or tuple("ch{}".format(i) for i in range(c))
        if len(names) != c:
            raise InvalidValueError("'channel_names' must have one name per channel ({}), got {}".format(c, len(names)))
        object.__setattr__(self, "channel_names", names)
        if (self.positions is None) != (self.position_index is None):
            raise InvalidValueError("'positions' and 'position_index' must be given together")
        if self.positions is not None:
            pos = np.asarray(self.positions, dtype=np.float32)
            idx = np.asarray(self.position_index, dtype=np.int64)
            if pos.ndim != 2 or pos.shape[1] != 5:
                raise InvalidValueError("'positions' must have shape (n_positions, 5), got {}".format(pos.shape))
            if idx.shape != (len(pos),):
                raise InvalidValueError("'position_index' must have shape ({},), got {}".format(len(pos), idx.shape))
            if len(idx) and (idx.min() < 0 or idx.max() >= max(n, 1) or np.any(np.diff(idx) < 0)):
                raise InvalidValueError("'position_index' must be increasing sample indices in [0, {})".format(n))
            finite = pos[np.isfinite(pos)]
            if finite.size and (finite.min() < -1e-6 or finite.max() > 1 + 1e-6):
                raise InvalidValueError("'positions' must lie in 0..1, got range [{:.3g}, {:.3g}]".format(
                    finite.min(), finite.max()))
            object.__setattr__(self, "positions", pos)
            object.__setattr__(self, "position_index", idx)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        for name in ("labels", "repetitions"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr)
                if arr.shape != (n,):
                    raise InvalidValueError(
                        "{!r} must have shape ({},) (one per sample), got {}".format(name, n, arr.shape))
                object.__setattr__(self, name, int16_column(name, arr))
        if self.labels is not None and len(self.labels):
            lo, hi = int(self.labels.min()), int(self.labels.max())
            if lo < 0 or hi >= len(self.class_names):
                raise InvalidValueError("'labels' must be in 0..{} (one per class name), got {}..{}".format(
                    len(self.class_names) - 1, lo, hi))
        seg = np.asarray(self.segment_starts, dtype=np.int64).ravel()
        if len(seg) == 0 or seg[0] != 0 or np.any(np.diff(seg) <= 0) or (n and seg[-1] >= n and len(seg) > 1):
            raise InvalidValueError("'segment_starts' must start at 0 and increase strictly, got {}".format(seg[:10]))
        object.__setattr__(self, "segment_starts", seg)
        cues = np.asarray(self.cues)
        if cues.dtype != CUE_DTYPE:
            cues = np.array([tuple(c) for c in cues], dtype=CUE_DTYPE) if len(cues) else np.zeros(0, CUE_DTYPE)
        object.__setattr__(self, "cues", cues)
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in dict(self.metadata).items()})

    # ------------------------------------------------------------------ convenience
    @property
    def n_samples(self) -> int:
        """Number of samples."""
        return int(self.signals.shape[0])

    @property
    def n_channels(self) -> int:
        """Number of channels."""
        return int(self.signals.shape[1])

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.n_samples / self.fs_hz

    @property
    def has_positions(self) -> bool:
        """Whether finger positions were recorded."""
        return self.positions is not None and len(self.positions) > 0

    @property
    def has_labels(self) -> bool:
        """Whether per-sample movement labels were recorded."""
        return self.labels is not None

    def positions_at(self, samples: np.ndarray) -> np.ndarray:
        """Finger positions at signal sample indices, linearly interpolated between glove samples.

        Parameters
        ----------
        samples : np.ndarray, shape (k,)
            Signal sample indices.

        Returns
        -------
        np.ndarray, shape (k, 5), float32
        """
        if not self.has_positions:
            raise InvalidValueError("This recording has no finger positions (no glove or cue trajectory was recorded)")
        s = np.asarray(samples, dtype=np.float64)
        out = np.empty((len(s), 5), dtype=np.float32)
        for j in range(5):
            out[:, j] = np.interp(s, self.position_index, self.positions[:, j])
        return out

    def segments(self) -> List[Tuple[int, int]]:
        """(start, stop) sample ranges of the continuous segments."""
        bounds = list(self.segment_starts) + [self.n_samples]
        return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def select_samples(self, mask: np.ndarray) -> "Recording":
        """Return a recording of the samples where ``mask`` is true; each kept run becomes a segment.

        Parameters
        ----------
        mask : np.ndarray of bool, shape (n_samples,)
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.n_samples,):
            raise InvalidValueError("'mask' must have shape ({},), got {}".format(self.n_samples, mask.shape))
        keep = np.flatnonzero(mask)
        new_index = np.full(self.n_samples, -1, np.int64)
        new_index[keep] = np.arange(len(keep))
        # A new segment starts where the kept samples jump, or where an original segment started.
        starts_old = np.zeros(self.n_samples, bool)
        starts_old[self.segment_starts] = True
        if len(keep):
            is_start = np.ones(len(keep), bool)
            is_start[1:] = (np.diff(keep) > 1) | starts_old[keep[1:]]
            seg = np.flatnonzero(is_start).astype(np.int64)
        else:
            seg = np.zeros(1, np.int64)
        pos = idx = None
        if self.has_positions:
            ok = mask[self.position_index]
            pos = self.positions[ok]
            idx = new_index[self.position_index[ok]]
        cues = self.cues
        if len(cues):
            cues = cues[mask[np.clip(cues["sample"], 0, max(self.n_samples - 1, 0))]]
        if len(cues):
            cues = cues.copy()
            cues["sample"] = new_index[cues["sample"]]
        return replace(
            self,
            signals=self.signals[keep],
            positions=pos,
            position_index=idx,
            labels=None if self.labels is None else self.labels[keep],
            repetitions=None if self.repetitions is None else self.repetitions[keep],
            segment_starts=seg,
            cues=cues,
        )

    def summary(self) -> Dict[str, Any]:
        """Short JSON-ready description."""
        d: Dict[str, Any] = {
            "samples": self.n_samples,
            "channels": self.n_channels,
            "fs_hz": self.fs_hz,
            "duration_s": round(self.duration_s, 3),
            "signal_kind": self.signal_kind,
            "units": self.units,
            "segments": len(self.segment_starts),
            "positions": int(len(self.positions)) if self.has_positions else 0,
            "classes": list(self.class_names),
            "cues": int(len(self.cues)),
        }
        if self.repetitions is not None:
            d["repetitions"] = sorted(int(r) for r in np.unique(self.repetitions) if r > 0)
        d.update({k: v for k, v in self.metadata.items() if k in METADATA_KEYS})
        return d


# ---------------------------------------------------------------------- reading
