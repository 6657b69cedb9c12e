"""Feature frames and targets from recordings, and the validation split by repetition.

Frames come from :func:`decoder.features.frames_for_config`, the device's own code, so a model is trained on
exactly the features it sees live. Each frame's targets are taken at its last sample (causal alignment).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.adaptation import FeatureAdapter
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.feature_config import FeatureConfig
from neurohand.decoder.features import FeatureExtractor, frames_for_config
from neurohand.decoder.recording import Recording


class TrainingDataError(InvalidValueError):
    """The recordings cannot be used for training as given; the message says what to do."""


@dataclass(frozen=True)
class FrameSet:
    """Feature frames with their targets.

    Attributes
    ----------
    features : np.ndarray, shape (n_frames, n_features), float32
        Raw (not normalised) features.
    positions : np.ndarray, shape (n_frames, 5), float32, or None
    labels : np.ndarray, shape (n_frames,), int64, or None
    repetitions : np.ndarray, shape (n_frames,), int64 (0 where unknown)
    segment : np.ndarray, shape (n_frames,), int64
        Continuous stretch each frame belongs to; the recurrent state restarts at each new segment.
    hop_ms : float
    class_names : tuple of str
    recording : np.ndarray, shape (n_frames,), int64, or None
        Index of the recording each frame came from (None: one recording); feature adaptation restarts at each.
    """

    features: np.ndarray
    positions: Optional[np.ndarray]
    labels: Optional[np.ndarray]
    repetitions: np.ndarray
    segment: np.ndarray
    hop_ms: float
    class_names: Tuple[str, ...]
    recording: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(len(self.features))

    @property
    def n_features(self) -> int:
        """Length of a frame."""
        return int(self.features.shape[1])

    def subset(self, mask: np.ndarray) -> "FrameSet":
        """Frames where ``mask`` is true; a segment the mask cuts into pieces becomes one segment per piece.

        Segments are renumbered 0, 1, ... in order: frames on either side of removed frames are not continuous, so
        no training window and no carried state may span the gap.
        """
        m = np.asarray(mask, bool)
        idx = np.flatnonzero(m)
        segment = np.zeros(len(idx), np.int64)
        if len(idx) > 1:
            segment[1:] = np.cumsum((np.diff(self.segment[idx]) != 0) | (np.diff(idx) > 1))
        return replace(
            self,
            features=self.features[m],
            positions=None if self.positions is None else self.positions[m],
            labels=None if self.labels is None else self.labels[m],
            repetitions=self.repetitions[m],
            segment=segment,
            recording=None if self.recording is None else self.recording[m],
        )

    def segment_slices(self) -> List[slice]:
        """Contiguous runs of equal ``segment`` id, in order."""
        if len(self) == 0:
            return []
        cut = np.flatnonzero(np.diff(self.segment) != 0) + 1
        bounds = np.concatenate([[0], cut, [len(self)]])
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]

    def longest_segment(self) -> int:
        """Frames in the longest contiguous run (0 when empty)."""
        return max((s.stop - s.start for s in self.segment_slices()), default=0)


def check_compatible(recordings: Sequence[Recording]) -> None:
    """Raise :class:`TrainingDataError` unless all recordings share channels, rate, kind and classes."""
    if not recordings:
        raise TrainingDataError("No recordings given; pass at least one session file")
    first = recordings[0]
    for i, r in enumerate(recordings[1:], start=1):
        if r.n_channels != first.n_channels:
            raise TrainingDataError(
                "Recording {} has {} channels but recording 0 has {}; train on sessions recorded with the same "
                "electrode layout".format(i, r.n_channels, first.n_channels))
        if r.fs_hz != first.fs_hz:
            raise TrainingDataError("Recording {} is sampled at {} Hz but recording 0 at {} Hz".format(
                i, r.fs_hz, first.fs_hz))
        if r.signal_kind != first.signal_kind:
            raise TrainingDataError("Recording {} is '{}' but recording 0 is '{}'".format(
                i, r.signal_kind, first.signal_kind))
        if r.has_labels and first.has_labels and r.class_names != first.class_names:
            raise TrainingDataError(class_mismatch(
                "Recording {}".format(i), r.class_names, "recording 0 has", first.class_names,
                other="re-import recording 0 with --class-names {}"))


def class_mismatch(name: str, theirs: Sequence[str], reference_is: str, reference: Sequence[str], *,
                   other: str) -> str:
    """One line saying how ``name``'s class names differ from ``reference`` and how to make them agree.

    ``reference_is``: e.g. ``"the model was trained on"``; ``other``: the other fix, ``{}`` standing for ``name``'s
    class names, e.g. ``"re-import the training data with --class-names {} and train again"``.
    """
    theirs, reference = list(theirs), list(reference)
    if len(theirs) == len(reference):
        fix = ("if they are the same movements in the same order, re-import it with --class-names {} (or {})".format(
                   ",".join(reference), other.format(",".join(theirs))))
    else:
        fix = ("they are different movement sets ({} classes against {}); use data recorded with the same "
               "protocol".format(len(theirs), len(reference)))
    return "{} has classes {}; {} {}: {}".format(name, ", ".join(theirs), reference_is, ", ".join(reference), fix)


def build_frames(recordings: Sequence[Recording], config: FeatureConfig, *, target_lead_ms: float = 0.0) -> FrameSet:
    """Frames and targets of one or more compatible recordings.

    ``target_lead_ms`` takes each frame's positions and class that long after the frame's end (the recording's
    last ones past its end): targets for a network that outputs where the hand is going. Evaluations use 0.

    Raises
    ------
    TrainingDataError
        Mismatched recordings, or no usable labels (neither finger positions nor movement classes).
    """
    check_compatible(recordings)
    has_pos = all(r.has_positions for r in recordings)
    has_lab = all(r.has_labels and len(r.class_names) > 1 for r in recordings)
    if not has_pos and not has_lab:
        raise TrainingDataError(
            "No usable labels: the recordings have neither finger positions (a data glove or cue trajectory) "
            "nor movement classes. Record with --labels glove:PORT or cue, or import labels with the data")
    for i, r in enumerate(recordings):
        check_signal_range(r, i)
    feats, pos, lab, reps, segs, recs = [], [], [], [], [], []
    seg_offset = 0
    for i, r in enumerate(recordings):
        x, ends = frames_for_config(config, r.signals, r.fs_hz, segment_starts=r.segment_starts)
        if len(x) == 0:
            continue
        feats.append(x)
        ahead = np.minimum(ends + int(round(target_lead_ms * r.fs_hz / 1000.0)), r.n_samples - 1)
        if has_pos:
            pos.append(r.positions_at(ahead))
        if has_lab:
            lab.append(r.labels[ahead].astype(np.int64))
        reps.append(r.repetitions[ends].astype(np.int64) if r.repetitions is not None else np.zeros(len(x), np.int64))
        seg = np.searchsorted(r.segment_starts, ends, side="right") - 1
        segs.append(seg + seg_offset)
        recs.append(np.full(len(x), i, np.int64))
        seg_offset += len(r.segment_starts)
    if not feats:
        win = FeatureExtractor(config, fs_hz=recordings[0].fs_hz, n_channels=recordings[0].n_channels).window_samples
        raise TrainingDataError("The recordings are shorter than one feature window ({} samples)".format(win))
    features = np.concatenate(feats)
    bad = np.flatnonzero(~np.all(np.isfinite(features), axis=1))
    if bad.size:
        raise TrainingDataError("{} of {} feature frames are not finite (first at frame {}): the signals are too "
                                "large for float32 features; check their units".format(bad.size, len(features),
                                                                                       bad[0]))
    return FrameSet(
        features=features,
        positions=np.concatenate(pos) if has_pos else None,
        labels=np.concatenate(lab) if has_lab else None,
        repetitions=np.concatenate(reps),
        segment=np.concatenate(segs),
        hop_ms=float(config.hop_ms),
        class_names=tuple(recordings[0].class_names) if has_lab else ("rest",),
        recording=np.concatenate(recs),
    )


ABSURD_SAMPLE = 1e9
"""No electrode signal in any unit (V, mV, uV, raw ADC counts) reaches this magnitude: a sample beyond it is a
corrupted file or a unit error, and would drive training to non-finite weights."""


def check_signal_range(rec: Recording, index: int = 0) -> None:
    """Refuse a recording with non-finite or absurd samples, naming the first few (sample, channel).

    Raises
    ------
    TrainingDataError
    """
    x = np.asarray(rec.signals)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(x) | (np.abs(x) > ABSURD_SAMPLE)
    if not bad.any():
        return
    where = np.argwhere(bad)
    shown = ", ".join("sample {} channel {} = {:g}".format(s, c, float(x[s, c])) for s, c in where[:5])
    raise TrainingDataError("Recording {} ({}) has {} non-finite or absurd samples (|x| > {:g}): {}{}; fix or "
                            "re-import the session before training".format(
                                index, rec.metadata.get("source") or rec.metadata.get("session_id") or "in memory",
                                len(where), ABSURD_SAMPLE, shown, ", ..." if len(where) > 5 else ""))


def adapt_frames(frames: FrameSet, adapter: Optional[FeatureAdapter]) -> FrameSet:
    """Run ``adapter`` over each recording's frames in order, from a new state per recording (None: unchanged).

    The same :meth:`decoder.adaptation.FeatureAdapter.process` the runtime calls frame by frame.
    """
    if adapter is None or len(frames) == 0:
        return frames
    rec = frames.recording if frames.recording is not None else np.zeros(len(frames), np.int64)
    out = np.empty_like(frames.features)
    cut = np.flatnonzero(np.diff(rec) != 0) + 1
    for a, b in zip(np.concatenate([[0], cut]), np.concatenate([cut, [len(frames)]])):
        out[a:b], _ = adapter.process(adapter.new_state(), frames.features[a:b])
    return replace(frames, features=out)


def split_last_repetitions(rec: Recording, n: int = 1) -> Tuple[Recording, Recording, List[int]]:
    """Split a recording into its earlier repetitions and its last ``n`` (a held-out test set).

    Returns
    -------
    train, test : Recording
        Samples of the earlier repetitions, of the last ``n`` (samples outside any repetition belong to neither).
    test_repetitions : list of int

    Raises
    ------
    TrainingDataError
        ``n`` or fewer repetitions: nothing would be left to train on.
    """
    reps = sorted(int(r) for r in np.unique(rec.repetitions) if r > 0)
    if len(reps) <= n:
        raise TrainingDataError("The session has {} repetition(s); at least {} are needed (the last {} to test, the "
                                "rest to train on). Record more of the protocol.".format(len(reps), n + 1, n))
    test = reps[-n:]
    return (rec.select_samples(np.isin(rec.repetitions, reps[:-n])), rec.select_samples(np.isin(rec.repetitions, test)),
            test)


def select_repetitions(rec: Recording, reps: Sequence[int], *, name: str = "the session",
                       flag: str = "--reps") -> Recording:
    """Return the samples of ``rec`` in repetitions ``reps`` (samples outside any repetition, 0, are dropped).

    Repetitions ``reps`` lists that the session lacks are ignored; each kept stretch becomes a segment.

    Raises
    ------
    TrainingDataError
        None of ``reps`` is in the session (the message names the repetitions it has).
    """
    wanted = sorted(set(int(r) for r in reps))
    has = sorted(int(r) for r in np.unique(rec.repetitions) if r > 0) if rec.repetitions is not None else []
    keep = np.isin(rec.repetitions, [r for r in wanted if r > 0]) if has else np.zeros(rec.n_samples, bool)
    if not keep.any():
        raise TrainingDataError("Invalid value for {!r}: {} has none of repetitions {}; it has {}".format(
            flag, name, format_ranges(wanted), "repetitions " + format_ranges(has) if has else
            "no repetition numbers (import its repetition column)"))
    return rec.select_samples(keep)


def format_ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` as ``"1-3,5"`` (the form ``--reps`` takes)."""
    out: List[str] = []
    vals = sorted(set(int(v) for v in values))
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        out.append(str(vals[i]) if i == j else "{}-{}".format(vals[i], vals[j]))
        i = j + 1
    return ",".join(out)


def read_sessions(paths: Sequence[str], *, reps: Optional[str] = None, flag: str = "--reps",
                  min_repetitions: int = 1, purpose: str = "") -> List[Recording]:
    """Read session files, keeping only repetitions ``reps`` (e.g. ``"1"``, ``"1-3,5"``; None: all) of each.

    Parameters
    ----------
    min_repetitions : int
        With ``reps``: refuse a selection that leaves fewer distinct repetitions (``purpose`` says why they are
        needed).
    """
    from neurohand.decoder.session_file import read_recording
    from neurohand.decoder.validation import parse_index_ranges

    wanted = None if reps is None else parse_index_ranges(flag, reps)
    recs = []
    for p in paths:
        rec = read_recording(p)
        recs.append(rec if wanted is None else select_repetitions(rec, wanted, name=repr(p), flag=flag))
    if wanted is not None:
        kept = sorted(set(int(r) for rec in recs for r in np.unique(rec.repetitions) if r > 0))
        if len(kept) < min_repetitions:
            raise TrainingDataError("Invalid value for {!r}: {!r} leaves {} repetition(s) ({}); {} needs at least "
                                    "{}".format(flag, reps, len(kept), format_ranges(kept), purpose or "this",
                                                min_repetitions))
    return recs


def validation_split(frames: FrameSet, *, fraction: float = 0.15) -> Tuple[FrameSet, FrameSet, List[int]]:
    """Hold out the last repetitions (about ``fraction`` of them, at least one) for validation.

    Returns
    -------
    train, val : FrameSet
    val_repetitions : list of int

    Raises
    ------
    TrainingDataError
        Fewer than two repetitions: there is nothing to validate on without touching the test set.
    """
    reps = sorted(int(r) for r in np.unique(frames.repetitions) if r > 0)
    if len(reps) < 2:
        raise TrainingDataError(
            "Too little data for a validation split: found {} repetition(s) ({}); record at least 2 repetitions "
            "of the protocol (3 or more recommended), or import the repetitions: a repetition column, {{repetition}} "
            "in an import pattern, or several sessions imported into one file (each becomes a repetition)".format(
                len(reps), reps))
    n_val = max(1, int(round(fraction * len(reps))))
    val_reps = reps[-n_val:]
    is_val = np.isin(frames.repetitions, val_reps)
    train, val = frames.subset(~is_val), frames.subset(is_val)
    return train, val, val_reps


def overlap_frames(config: FeatureConfig) -> int:
    """Frames before a given frame whose windows overlap its window: ``window_ms / hop_ms - 1``."""
    return max(int(round(config.window_ms / config.hop_ms)) - 1, 0)


def holdout_mask(frames: FrameSet, *, fraction: float, gap_frames: int) -> Tuple[np.ndarray, np.ndarray, str]:
    """Split frames into a part to learn from and a part to check on (recalibration; adapting a base to one repetition).

    With two or more repetitions the last one is held out. With one, the last ``fraction`` of every continuous
    stretch is, and the ``gap_frames`` frames before each held stretch belong to neither (their windows overlap it).

    Returns
    -------
    fit, held : np.ndarray, shape (n_frames,), bool
    description : str

    Raises
    ------
    TrainingDataError
        Either part would be empty.
    """
    reps = sorted(int(r) for r in np.unique(frames.repetitions) if r > 0)
    if len(reps) >= 2:
        held = frames.repetitions == reps[-1]
        fit_mask = (frames.repetitions > 0) & ~held
        what = "repetition {}".format(reps[-1])
    else:
        held = np.zeros(len(frames), bool)
        fit_mask = np.zeros(len(frames), bool)
        for s in frames.segment_slices():
            n = s.stop - s.start
            k = int(round(fraction * n))
            if k < 1 or n - k - gap_frames < 1:
                continue  # too short to split: used by neither part
            held[s.stop - k:s.stop] = True
            fit_mask[s.start:s.stop - k - gap_frames] = True
        what = "the last {:.0f} % of each continuous stretch".format(100 * fraction)
    if not held.any() or not fit_mask.any():
        raise TrainingDataError("Too little data to recalibrate: {} leaves {} frames to adapt on and {} to check the "
                                "result on; record more".format(what, int(fit_mask.sum()), int(held.sum())))
    return fit_mask, held, what


def normalisation(features: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (floored), float32, shape (n_features,) each."""
    mean = features.mean(axis=0).astype(np.float32)
    std = features.std(axis=0).astype(np.float32)
    std = np.maximum(std, 1e-6 * np.maximum(np.abs(mean), 1.0)).astype(np.float32)
    return mean, std


def movement_mix_drift(labels: np.ndarray, n_classes: int, *, window_frames: int) -> float:
    """How far the mix of movements over a stretch of ``window_frames`` strays from the whole session's.

    The mean, over windows of ``window_frames`` frames stepped by a tenth of that, of the total-variation distance
    ``0.5 * sum_c |p_window(c) - p_session(c)|`` between the class frequencies in the window and in the session:
    0 when every stretch holds the session's mix, near 1 when each holds one class.

    Parameters
    ----------
    labels : np.ndarray, shape (n_frames,), int
    n_classes : int
    window_frames : int
        Longer than the session: the whole session is one window (0).
    """
    lab = np.asarray(labels, np.int64)
    n = len(lab)
    w = int(min(max(1, window_frames), n))
    if n == 0:
        return 0.0
    starts = np.arange(0, n - w + 1, max(1, w // 10))
    distance = np.zeros(len(starts))
    counts = np.zeros(n + 1)
    for c in range(n_classes):  # one class at a time: memory O(n), not O(n * n_classes)
        np.cumsum(lab == c, out=counts[1:])
        distance += np.abs((counts[starts + w] - counts[starts]) / w - counts[-1] / n)
    return float(0.5 * distance.mean())
