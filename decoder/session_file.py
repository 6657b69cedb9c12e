"""The session file format: one HDF5 file per recording session, read and written only here.

File layout (``format = "neurohand-session"``, ``format_version = 1``)::

    /                     attrs: format, format_version, fs_hz, signal_kind, units, created_utc
    /signals              (n_samples, n_channels) float32, attrs channel_names (JSON list)
    /positions            (n_positions, 5) float32 in 0..1: thumb, index, middle, ring, little;
                          0 open, 1 fully flexed
    /position_index       (n_positions,) int64: the signal sample each position belongs to
    /labels               (n_samples,) int16 movement or gesture class; attrs class_names (JSON, 0 = rest)
    /repetitions          (n_samples,) int16 repetition or trial index (0 = none)
    /segment_starts       (n_segments,) int64 first sample of each continuous stretch (always has 0)
    /cues                 (n_cues,) compound: sample int64, label int16, duration_samples int64, name S64
    /metadata             attrs: patient_id, session_id, device, date, source, notes, ... (strings)

Datasets without data are present with length 0 (positions, labels, repetitions may be absent from a
recording: ``has_positions`` etc. tell). Appending while recording goes through :class:`SessionWriter`,
which keeps the file in HDF5's single-writer/multiple-reader mode and flushes at least once a second: a
writer killed at any moment leaves a file that :func:`read_recording` reads back up to the last flush, and
:func:`recover_session` turns into a normal, appendable file again.
"""

import datetime
import json
import os
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidValueError
from .recording import CUE_DTYPE, Recording
from .validation import check_option, check_positive, check_signal
from .vocabulary import SIGNAL_KINDS

FORMAT_NAME = "neurohand-session"
FORMAT_VERSION = 1


class SessionFormatError(InvalidValueError):
    """A session file does not follow the neurohand session schema."""

def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a core dependency
        raise ImportError("Reading session files needs h5py: pip install h5py") from e
    return h5py


def _libver_bounds(h5py, swmr: bool) -> Tuple[str, str]:
    """HDF5 format bounds for a new session file: the 1.10 format at most, whatever HDF5 writes it.

    ``libver="latest"`` lets a new HDF5 (recent h5py wheels ship 1.14 or 2.0) use object versions that the HDF5 of
    a Jetson (1.10 on JetPack 4, 1.12 in h5py 3.1's wheels) cannot read ("bad version number for datatype
    message"). SWMR writing needs the 1.10 superblock, so a SWMR writer's lower bound is 1.10 as well; a plain
    file may use older object versions where they suffice. HDF5 before 1.10.2 has no "v110" bound: there the
    latest format is the 1.10 one.
    """
    if h5py.version.hdf5_version_tuple < (1, 10, 2):  # pragma: no cover - HDF5 1.10.0/1.10.1 (Ubuntu 18.04's)
        return ("latest", "latest") if swmr else ("earliest", "latest")
    return ("v110", "v110") if swmr else ("earliest", "v110")


def _open_for_read(path: str):
    h5py = _h5py()
    if not os.path.exists(path):
        raise FileNotFoundError("No session file at {!r}".format(path))
    try:
        return h5py.File(path, "r")
    except OSError as e:
        if "already open for write" in str(e) or "consistency flags" in str(e):
            # A writer still has it open, or was killed: SWMR read sees everything up to its last flush.
            return h5py.File(path, "r", swmr=True)
        raise SessionFormatError("{!r} is not a readable HDF5 session file: {}".format(path, e)) from e


def _json_attr(obj, key: str, default: Any) -> Any:
    if key not in obj.attrs:
        return default
    raw = obj.attrs[key]
    if isinstance(raw, bytes):
        raw = raw.decode()
    return json.loads(raw)


def read_recording(path: str) -> Recording:
    """Read and validate a session file.

    Parameters
    ----------
    path : str
        An HDF5 file written by :func:`write_recording` or :class:`SessionWriter` (also one whose writer was
        killed: everything up to its last flush is returned).

    Raises
    ------
    SessionFormatError
        The file is not a neurohand session, is from a newer format version, or a dataset is missing or has
        the wrong shape. The message names what is wrong.
    """
    with _open_for_read(str(path)) as f:
        try:
            return _read_open(f, path)
        except SessionFormatError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, MemoryError) as e:
            raise SessionFormatError("{!r} does not follow the session schema ({}: {})".format(
                path, type(e).__name__, e)) from None


MAX_SESSION_BYTES = 16 << 30
"""The most a session's datasets may declare (16 GiB: over an hour of 64 channels at 30 kHz)."""


def _dataset(f, path: str, name: str, ndim: Optional[Tuple[int, ...]] = None):
    """Return ``f[name]`` after checking it is a dataset (not a group) of plausible size.

    The declared shape is checked against what the file stores before anything is read (an 8 KB file can declare
    1e12 samples); a compressed dataset only against :data:`MAX_SESSION_BYTES`.
    """
    h5py = _h5py()
    obj = f[name]
    if not isinstance(obj, h5py.Dataset):
        raise SessionFormatError("{!r}: '/{}' must be a dataset, got a {}".format(path, name, type(obj).__name__))
    if ndim is not None and obj.ndim not in ndim:
        raise SessionFormatError("{!r}: '/{}' must have {} dimension(s), got shape {}".format(
            path, name, " or ".join(str(d) for d in ndim), obj.shape))
    declared = int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize
    stored = obj.id.get_storage_size()
    sparse = obj.compression is None and declared > max(64 << 20, 2 * stored)
    if declared > MAX_SESSION_BYTES or sparse:
        raise SessionFormatError("{!r}: '/{}' declares shape {} ({:.3g} bytes) but the file stores {} bytes of it; "
                                 "the file is corrupted or not a session".format(path, name, obj.shape,
                                                                                float(declared), stored))
    return obj


def _read_open(f, path: str) -> Recording:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT_NAME:
        raise SessionFormatError(
            "{!r} is not a neurohand session file: attribute 'format' is {!r}, expected {!r}".format(
                path, fmt, FORMAT_NAME))
    version = f.attrs.get("format_version", -1)
    if np.ndim(version) != 0 or np.asarray(version).dtype.kind not in "iu":
        raise SessionFormatError("{!r} has an invalid format_version {!r} (expected an integer)".format(
            path, version))
    version = int(version)
    if version > FORMAT_VERSION:
        raise SessionFormatError(
            "{!r} has session format version {}, newer than this neurohand reads ({}); upgrade neurohand".format(
                path, version, FORMAT_VERSION))
    if version < 1:
        raise SessionFormatError("{!r} has an invalid format_version {}".format(path, version))
    dims = {"signals": (2,), "positions": (2,), "position_index": (1,), "labels": (1,), "repetitions": (1,),
            "segment_starts": (1,), "cues": (1,)}
    for name in dims:
        if name not in f:
            raise SessionFormatError("{!r} is missing dataset '/{}'".format(path, name))
        _dataset(f, path, name, dims[name] if name != "signals" else None)
    sig = f["signals"]
    if sig.dtype.kind not in "iuf":
        raise SessionFormatError("{!r}: '/signals' must hold numbers, got {}".format(path, sig.dtype))
    if sig.ndim != 2:
        raise SessionFormatError("{!r}: '/signals' must be 2-D (n_samples, n_channels), got shape {}".format(
            path, sig.shape))
    signals = sig[()]
    n = len(signals)
    meta = {}
    if "metadata" in f:
        for k, v in f["metadata"].attrs.items():
            meta[k] = v.decode() if isinstance(v, bytes) else str(v)
    pos = f["positions"][()]
    pidx = f["position_index"][()]
    # A killed writer may have flushed one dataset further than another: keep what is consistent.
    m = min(len(pos), len(pidx))
    pos, pidx = pos[:m], pidx[:m]
    keep = pidx < n
    pos, pidx = pos[keep], pidx[keep]
    labels = f["labels"][()]
    reps = f["repetitions"][()]
    has_labels = bool(f["labels"].attrs.get("present", len(labels) > 0))
    has_reps = bool(f["repetitions"].attrs.get("present", len(reps) > 0))
    labels = _fit_length(labels, n) if has_labels else None
    reps = _fit_length(reps, n) if has_reps else None
    seg = f["segment_starts"][()]
    seg = seg[(seg < max(n, 1))] if len(seg) else np.zeros(1, np.int64)
    if len(seg) == 0 or seg[0] != 0:
        seg = np.concatenate([[0], seg]).astype(np.int64)
    cues = f["cues"][()]
    try:
        return Recording(
            signals=signals,
            fs_hz=float(f.attrs["fs_hz"]),
            signal_kind=_str_attr(f, "signal_kind", "nerve"),
            channel_names=tuple(_json_attr(sig, "channel_names", [])),
            units=_str_attr(f, "units", ""),
            positions=pos if len(pos) else None,
            position_index=pidx if len(pos) else None,
            labels=labels,
            class_names=tuple(_json_attr(f["labels"], "class_names", ["rest"])),
            repetitions=reps,
            segment_starts=seg,
            cues=cues[cues["sample"] < max(n, 1)] if len(cues) else np.zeros(0, CUE_DTYPE),
            metadata=meta,
            path=str(path),
        )
    except (ValueError, TypeError, KeyError) as e:
        raise SessionFormatError("{!r} does not follow the session schema: {}".format(path, e)) from e


def _fit_length(arr: np.ndarray, n: int) -> np.ndarray:
    """Trim or pad (with zeros) a per-sample array to ``n`` (after a killed writer's partial flush)."""
    if len(arr) >= n:
        return arr[:n]
    return np.concatenate([arr, np.zeros(n - len(arr), arr.dtype)])


def _str_attr(f, key: str, default: str) -> str:
    v = f.attrs.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


# ---------------------------------------------------------------------- writing
def write_recording(recording: Recording, path: str) -> None:
    """Write a whole recording to a new session file (atomically: a temporary file, then a rename).

    A ``PATH.partial`` left by a write that crashed is this function's own temporary file, never a recording: it is
    replaced.
    """
    tmp = str(path) + ".partial"
    if os.path.isfile(tmp):
        os.remove(tmp)
    with SessionWriter(
        tmp,
        fs_hz=recording.fs_hz,
        n_channels=recording.n_channels,
        signal_kind=recording.signal_kind,
        channel_names=recording.channel_names,
        units=recording.units,
        class_names=recording.class_names,
        metadata=recording.metadata,
        has_labels=recording.labels is not None,
        has_repetitions=recording.repetitions is not None,
        swmr=False,
    ) as w:
        w.append_recording(recording)
    os.replace(tmp, str(path))


class SessionWriter:
    """Crash-safe appending writer of a session file.

    Parameters
    ----------
    path : str
        New file to create (an existing file is refused; see :func:`recover_session` to continue one).
    fs_hz, n_channels, signal_kind, channel_names, units, class_names, metadata
        As in :class:`Recording`.
    has_labels, has_repetitions : bool
        Whether per-sample labels and repetitions will be appended with the signals.
    flush_interval_s : float
        Data is flushed to disk at least this often (default 1 s): a killed process loses at most this much.
    swmr : bool
        Keep the file in single-writer/multiple-reader mode (default), so that it stays readable while
        written and after a crash.

    Examples
    --------
    >>> with SessionWriter("s.h5", fs_hz=1000, n_channels=2) as w:  # doctest: +SKIP
    ...     w.append(np.zeros((100, 2)))
    """

    def __init__(
        self,
        path: str,
        *,
        fs_hz: float,
        n_channels: int,
        signal_kind: str = "nerve",
        channel_names: Sequence[str] = (),
        units: str = "uV",
        class_names: Sequence[str] = ("rest",),
        metadata: Optional[Dict[str, str]] = None,
        has_labels: bool = True,
        has_repetitions: bool = True,
        flush_interval_s: float = 1.0,
        swmr: bool = True,
    ) -> None:
        h5py = _h5py()
        check_positive("fs_hz", fs_hz)
        check_option("signal_kind", signal_kind, SIGNAL_KINDS)
        if os.path.exists(str(path)):
            raise FileExistsError("Refusing to overwrite existing session file {!r}".format(path))
        self.path = str(path)
        self.n_channels = int(n_channels)
        self.fs_hz = float(fs_hz)
        self.flush_interval_s = check_positive("flush_interval_s", flush_interval_s)
        self.has_labels = bool(has_labels)
        self.has_repetitions = bool(has_repetitions)
        self.class_names = tuple(class_names)
        names = list(channel_names) or ["ch{}".format(i) for i in range(self.n_channels)]
        if len(names) != self.n_channels:
            raise InvalidValueError("'channel_names' must have {} names, got {}".format(self.n_channels, len(names)))
        f = h5py.File(self.path, "w", libver=_libver_bounds(h5py, swmr))
        self._f = f
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["fs_hz"] = self.fs_hz
        f.attrs["signal_kind"] = signal_kind
        f.attrs["units"] = units
        f.attrs["created_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        chunk_rows = max(256, int(self.fs_hz // 4))
        self._sig = f.create_dataset("signals", shape=(0, self.n_channels), maxshape=(None, self.n_channels),
                                     dtype="<f4", chunks=(chunk_rows, self.n_channels))
        self._sig.attrs["channel_names"] = json.dumps(names)
        self._pos = f.create_dataset("positions", shape=(0, 5), maxshape=(None, 5), dtype="<f4", chunks=(1024, 5))
        self._pidx = f.create_dataset("position_index", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(1024,))
        self._lab = f.create_dataset("labels", shape=(0,), maxshape=(None,), dtype="<i2", chunks=(chunk_rows,))
        self._lab.attrs["class_names"] = json.dumps(list(self.class_names))
        self._lab.attrs["present"] = self.has_labels
        self._rep = f.create_dataset("repetitions", shape=(0,), maxshape=(None,), dtype="<i2", chunks=(chunk_rows,))
        self._rep.attrs["present"] = self.has_repetitions
        self._seg = f.create_dataset("segment_starts", data=np.zeros(1, np.int64), maxshape=(None,), chunks=(256,))
        self._cues = f.create_dataset("cues", shape=(0,), maxshape=(None,), dtype=CUE_DTYPE, chunks=(256,))
        g = f.create_group("metadata")
        meta = dict(metadata or {})
        meta.setdefault("date", datetime.date.today().isoformat())
        for k, v in meta.items():
            g.attrs[str(k)] = str(v)
        if swmr:
            f.swmr_mode = True
        self.n_samples = 0
        self._last_flush = time.monotonic()
        self._closed = False

    # -- appending
    def append(
        self,
        samples: np.ndarray,
        *,
        labels: Optional[np.ndarray] = None,
        repetitions: Optional[np.ndarray] = None,
    ) -> None:
        """Append samples (and their per-sample labels and repetitions).

        Parameters
        ----------
        samples : array_like, shape (n, n_channels)
            NaN is stored as recorded (nothing recorded is dropped).
        labels, repetitions : array_like, shape (n,), optional
            Required when the writer was created with ``has_labels`` / ``has_repetitions``.
        """
        x = check_signal("samples", samples, n_channels=self.n_channels, allow_nonfinite=True)
        k = len(x)
        for name, arr, present in (("labels", labels, self.has_labels), ("repetitions", repetitions,
                                                                         self.has_repetitions)):
            if present and arr is None:
                raise InvalidValueError(
                    "{!r} are required with every append (the writer was created with them)".format(name))
            if arr is not None and np.shape(arr) != (k,):
                raise InvalidValueError("{!r} must have shape ({},), got {}".format(name, k, np.shape(arr)))
        n0, n1 = self.n_samples, self.n_samples + k
        if self.has_labels:
            self._lab.resize((n1,))
            self._lab[n0:n1] = np.asarray(labels, dtype=np.int16)
        if self.has_repetitions:
            self._rep.resize((n1,))
            self._rep[n0:n1] = np.asarray(repetitions, dtype=np.int16)
        # Signals last: a reader trusts the signal length and fits the others to it.
        self._sig.resize((n1, self.n_channels))
        self._sig[n0:n1] = x.astype(np.float32)
        self.n_samples = n1
        self._maybe_flush()

    def append_positions(self, positions: np.ndarray, sample_index: np.ndarray) -> None:
        """Append finger positions (n, 5) in 0..1 taken at the given signal sample indices (n,)."""
        pos = np.asarray(positions, dtype=np.float32)
        idx = np.asarray(sample_index, dtype=np.int64)
        if pos.ndim != 2 or pos.shape[1] != 5 or idx.shape != (len(pos),):
            raise InvalidValueError("positions must have shape (n, 5) and sample_index (n,), got {} and {}".format(
                pos.shape, idx.shape))
        m0 = len(self._pos)
        self._pidx.resize((m0 + len(idx),))
        self._pidx[m0:] = idx
        self._pos.resize((m0 + len(pos), 5))
        self._pos[m0:] = pos
        self._maybe_flush()

    def append_recording(self, recording: Recording) -> None:
        """Append a whole recording (signals, labels, repetitions, positions, segments, cues) and flush."""
        offset = self.n_samples
        self.append(recording.signals, labels=recording.labels, repetitions=recording.repetitions)
        if recording.has_positions:
            self.append_positions(recording.positions, recording.position_index + offset)
        for s in recording.segment_starts[1:]:
            self.mark_segment(offset + int(s))
        for c in recording.cues:
            self.add_cue(offset + int(c["sample"]), str(c["name"], "utf-8"), label=int(c["label"]),
                         duration_samples=int(c["duration_samples"]))
        self.flush()

    def mark_segment(self, sample: Optional[int] = None) -> None:
        """Start a new continuous segment at ``sample`` (default: the next appended sample)."""
        s = self.n_samples if sample is None else int(sample)
        if s <= int(self._seg[-1]):
            return
        k = len(self._seg)
        self._seg.resize((k + 1,))
        self._seg[k] = s

    def add_cue(self, sample: int, name: str, *, label: int = 0, duration_samples: int = 0) -> None:
        """Record a cue event shown to the patient at signal sample ``sample``."""
        k = len(self._cues)
        self._cues.resize((k + 1,))
        self._cues[k] = (int(sample), int(label), int(duration_samples), str(name).encode()[:64])
        self._maybe_flush()

    # -- durability
    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Write everything appended so far to disk."""
        self._f.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close the file."""
        if not self._closed:
            self._f.flush()
            self._f.close()
            self._closed = True

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def recover_session(path: str) -> Recording:
    """Make a session file left by a killed writer whole again and return its recording.

    The file is read in SWMR mode (everything up to the writer's last flush), rewritten to a temporary
    file, and atomically swapped in; the original is kept as ``path + '.crashed'`` until the rewrite is
    verified, then removed. Nothing that reached the disk is lost.
    """
    rec = read_recording(path)
    tmp = str(path) + ".recovered"
    if os.path.exists(tmp):
        os.remove(tmp)
    write_recording(rec, tmp)
    back = read_recording(tmp)
    if back.n_samples != rec.n_samples:
        raise SessionFormatError("Recovery of {!r} lost samples ({} of {}); original kept".format(
            path, back.n_samples, rec.n_samples))
    os.replace(str(path), str(path) + ".crashed")
    os.replace(tmp, str(path))
    os.remove(str(path) + ".crashed")
    return back
