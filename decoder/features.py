"""Feature frames from raw samples: one streaming implementation for offline and online use.

Samples pass through the causal filter bank (:mod:`decoder.filters`), are cut into blocks of ``hop_ms``,
and every completed block emits one frame over the last ``window_ms`` (a whole number of blocks). Per block
the extractor keeps sums (of ``|x|``, ``x``, ``x**2``, ``|x[i]-x[i-1]|``, crossings, slope changes, Welch
band powers); a frame adds the sums of its blocks. A recording processed in one call and the same recording
fed in chunks of any size therefore produce the same frames.

Definitions, for a window of ``N`` filtered samples ``x[a] .. x[a+N-1]`` of one channel, where ``x[i]``
for ``i < 0`` is 0 (the filters start at rest):

``mav``        mean of ``|x[i]|``
``rms``        ``sqrt(mean(x[i]**2))``
``wl``         waveform length, sum over the window of ``|x[i] - x[i-1]|``
``zc``         zero crossings: count of ``i`` with ``x[i] * x[i-1] < 0`` and ``|x[i] - x[i-1]| >= zc_threshold``
``ssc``        slope sign changes: count of ``i`` with ``(x[i-1]-x[i-2]) * (x[i-1]-x[i]) > 0`` and
               ``max(|x[i-1]-x[i-2]|, |x[i-1]-x[i]|) >= ssc_threshold``
``logvar``     ``log(var(x) + log_floor)`` (population variance)
``mean``       mean of ``x[i]`` (for envelope input)
``logmean``    ``log(max(mean, 0) + log_floor)`` (for envelope input)
``log_mav``, ``log_wl``  ``log(mav + log_floor)``, ``log(wl + log_floor)``: amplitude on a log scale, where a
               change of electrode gain is a shift
``log_bandpower``  for each band ``(lo, hi)`` in ``bands_hz``: ``log(P + log_floor)`` with ``P`` the power in
               ``lo <= f < hi`` of a Welch estimate over the window with segments of one hop (Hann window,
               constant detrend, no overlap), equal to ``scipy.signal.welch(x, fs, nperseg=hop,
               noverlap=0)`` summed over the band times the bin width. Resolution is ``1000 / hop_ms`` Hz.

Frame ``k`` covers samples ``[k*hop, k*hop + window)`` and is emitted when its last sample arrives.
Its features are laid out feature-major: all channels of the first feature, then the next.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .feature_config import FeatureConfig
from .filters import DTYPE, CausalFilterBank
from .validation import check_int, check_positive, check_signal, invalid_value

# Block statistics and which features need them.
_STATS_FOR = {
    "mav": ("abs",),
    "rms": ("sq",),
    "wl": ("wl",),
    "zc": ("zc",),
    "ssc": ("ssc",),
    "logvar": ("sum", "sq"),
    "mean": ("sum",),
    "logmean": ("sum",),
    "log_mav": ("abs",),
    "log_wl": ("wl",),
    "log_bandpower": ("bp",),
}


@dataclass
class FeatureState:
    """Per-stream state of a :class:`FeatureExtractor`; treat as opaque. ``process`` returns a new one."""

    filter_state: np.ndarray  # (n_channels, n_sections, 2)
    pending: np.ndarray  # (n_channels, p) filtered samples of the unfinished block, p < hop
    prev: np.ndarray  # (n_channels, 2) the two filtered samples before ``pending``
    history: np.ndarray  # (k, n_stats, n_channels) float64 sums of the last k <= window_blocks - 1 blocks
    n_samples: int = 0  # samples consumed so far
    n_frames: int = 0  # frames emitted so far


class FeatureExtractor:
    """Streaming feature extractor; the offline path is the same call on a whole recording.

    Parameters
    ----------
    config : FeatureConfig
        Filters, window, hop, features.
    fs_hz : float
        Sample rate of the input.
    n_channels : int
        Channels of every chunk.
    sos : np.ndarray, shape (n_sections, 6), optional
        The filter cascade already designed from ``config.filters`` (a bundle carries it).
    """

    def __init__(self, config: FeatureConfig, *, fs_hz: float, n_channels: int,
                 sos: Optional[np.ndarray] = None) -> None:
        self.config = config
        self.fs_hz = check_positive("fs_hz", fs_hz)
        self.n_channels = check_int("n_channels", n_channels, minimum=1)
        self.hop_samples, self.window_samples = config.samples_at(self.fs_hz)
        self.window_blocks = self.window_samples // self.hop_samples
        self.filter_bank = CausalFilterBank(config.filters, fs_hz=self.fs_hz, n_channels=self.n_channels, sos=sos)
        stats: List[str] = []
        for f in config.features:
            for s in _STATS_FOR[f]:
                if s not in stats:
                    stats.append(s)
        self._stats = stats
        self._bp_masks: List[np.ndarray] = []
        if "bp" in stats:
            freqs = np.fft.rfftfreq(self.hop_samples, d=1.0 / self.fs_hz)
            for lo, hi in config.bands_hz:
                mask = (freqs >= lo) & (freqs < hi)
                if not mask.any():
                    raise invalid_value(
                        "bands_hz", "band ({}, {}) Hz holds no frequency bin at a resolution "
                        "of {:.3g} Hz (hop_ms={}); widen the band or lengthen hop_ms".format(
                            lo, hi, self.fs_hz / self.hop_samples, config.hop_ms)
                    )
                self._bp_masks.append(mask)
            win = np.hanning(self.hop_samples + 1)[:-1] if self.hop_samples > 1 else np.ones(1)
            # scipy.signal.get_window('hann', n) is the periodic Hann window, as used by welch.
            self._hann = win
            scale = 1.0 / (self.fs_hz * np.sum(win**2))
            onesided = np.full(len(freqs), 2.0 * scale)
            onesided[0] = scale
            if self.hop_samples % 2 == 0:
                onesided[-1] = scale
            self._psd_scale = onesided * (self.fs_hz / self.hop_samples)  # density times bin width
        self._n_bp = len(self._bp_masks)
        # Offsets of each statistic in the stats axis.
        self._stat_index: Dict[str, int] = {}
        i = 0
        for s in stats:
            self._stat_index[s] = i
            i += self._n_bp if s == "bp" else 1
        self._n_stats = i
        self.feature_kinds = config.features

    # ------------------------------------------------------------------ public API
    @property
    def n_features(self) -> int:
        """Length of one frame."""
        return len(self.feature_names)

    @property
    def feature_names(self) -> List[str]:
        """Names of the frame's entries, ``'<feature>:ch<k>'``, feature-major."""
        names = []
        for f in self.config.features:
            if f == "log_bandpower":
                for lo, hi in self.config.bands_hz:
                    names += ["log_bandpower_{:g}-{:g}Hz:ch{}".format(lo, hi, c) for c in range(self.n_channels)]
            else:
                names += ["{}:ch{}".format(f, c) for c in range(self.n_channels)]
        return names

    def new_state(self) -> FeatureState:
        """State of a stream that has seen no samples (signal at rest before it)."""
        return FeatureState(
            filter_state=self.filter_bank.new_state(),
            pending=np.zeros((self.n_channels, 0), dtype=DTYPE),
            prev=np.zeros((self.n_channels, 2), dtype=DTYPE),
            history=np.zeros((0, self._n_stats, self.n_channels)),
        )

    def frame_end_samples(self, first_frame: int, n_frames: int) -> np.ndarray:
        """Sample index of the last sample of frames ``first_frame .. first_frame + n_frames - 1``.

        Returns
        -------
        np.ndarray, shape (n_frames,), int64
        """
        k = np.arange(first_frame, first_frame + n_frames, dtype=np.int64)
        return k * self.hop_samples + self.window_samples - 1

    def process(self, state: FeatureState, chunk: np.ndarray) -> Tuple[np.ndarray, FeatureState]:
        """Consume a chunk of raw samples and return the frames it completes.

        Parameters
        ----------
        state : FeatureState
            From :meth:`new_state` or the previous call; not modified.
        chunk : array_like, shape (n_samples, n_channels)
            Raw samples, any length (also 0); not modified. NaN or inf raise ``ValueError``.

        Returns
        -------
        frames : np.ndarray, shape (n_new_frames, n_features), float32
        state : FeatureState
        """
        x = check_signal("chunk", chunk, n_channels=self.n_channels)
        y, filter_state = self.filter_bank.process_channel_major(state.filter_state, x.T)  # (C, n)
        seg = np.concatenate([state.pending, y], axis=1) if state.pending.shape[1] else y
        h = self.hop_samples
        nb = seg.shape[1] // h
        used = nb * h
        if nb == 0:
            new_state = FeatureState(filter_state, seg, state.prev, state.history, state.n_samples + len(x),
                                     state.n_frames)
            return np.zeros((0, self.n_features), dtype=np.float32), new_state
        ext = np.concatenate([state.prev, seg[:, :used]], axis=1)
        stats = self._block_stats(ext, nb)
        combined = np.concatenate([state.history, stats], axis=0) if len(state.history) else stats
        W = self.window_blocks
        if len(combined) >= W:
            n_new = len(combined) - W + 1
            sums = combined[:n_new].copy()  # (n_frames, n_stats, n_channels): frame k adds blocks k..k+W-1
            for i in range(1, W):
                sums += combined[i:i + n_new]
            frames = self._features_from_sums(sums)
        else:
            frames = np.zeros((0, self.n_features), dtype=np.float32)
        keep = W - 1
        new_state = FeatureState(
            filter_state=filter_state,
            pending=seg[:, used:].copy(),
            prev=ext[:, -2:].copy(),
            history=combined[max(len(combined) - keep, 0):].copy() if keep else combined[:0].copy(),
            n_samples=state.n_samples + len(x),
            n_frames=state.n_frames + len(frames),
        )
        return frames, new_state

    def transform(self, signals: np.ndarray) -> np.ndarray:
        """Offline: frames of a whole recording, ``process(new_state(), signals)``.

        Returns
        -------
        np.ndarray, shape (n_frames, n_features), float32
        """
        frames, _ = self.process(self.new_state(), signals)
        return frames

    # ------------------------------------------------------------------ internals
    def _block_stats(self, ext: np.ndarray, nb: int) -> np.ndarray:
        """Per-block float64 sums, shape (nb, n_stats, n_channels).

        ``ext`` is channel-major, shape (n_channels, 2 + nb * hop): two history samples, then the new ones.
        """
        h, C = self.hop_samples, self.n_channels
        x = ext[:, 2:]
        xb = x.reshape(C, nb, h)
        out = np.empty((nb, self._n_stats, C))
        idx = self._stat_index
        f64 = np.float64
        # Non-negative sums and counts accumulate in float32 (pairwise: relative error ~1e-7 * log2(hop));
        # the signed sum, whose square is subtracted in logvar, in float64.
        if "abs" in idx:
            out[:, idx["abs"]] = np.abs(xb).sum(axis=-1).T
        if "sq" in idx:
            out[:, idx["sq"]] = np.square(xb).sum(axis=-1).T
        if "sum" in idx:
            out[:, idx["sum"]] = xb.sum(axis=-1, dtype=f64).T
        if "wl" in idx or "zc" in idx or "ssc" in idx:
            d = ext[:, 1:] - ext[:, :-1]  # d[:, j] = ext[:, j+1] - ext[:, j]; the new samples' diffs are d[:, 1:]
            absd = np.abs(d)
            if "wl" in idx:
                out[:, idx["wl"]] = absd[:, 1:].reshape(C, nb, h).sum(axis=-1).T
            if "zc" in idx:
                crossing = (x * ext[:, 1:-1]) < 0
                if self.config.zc_threshold > 0:
                    crossing &= absd[:, 1:] >= self.config.zc_threshold
                out[:, idx["zc"]] = np.count_nonzero(crossing.reshape(C, nb, h), axis=-1).T
            if "ssc" in idx:
                # Centre sample ext[j+1] has slopes d[j] in and d[j+1] out; a local extremum when they differ in sign.
                change = (d[:, :-1] * d[:, 1:]) < 0
                if self.config.ssc_threshold > 0:
                    big = absd >= self.config.ssc_threshold
                    change &= big[:, :-1] | big[:, 1:]
                out[:, idx["ssc"]] = np.count_nonzero(change.reshape(C, nb, h), axis=-1).T
        if "bp" in idx:
            blocks = xb.astype(f64)
            blocks = blocks - blocks.mean(axis=-1, keepdims=True)
            spec = np.fft.rfft(blocks * self._hann, axis=-1)
            psd = (spec.real**2 + spec.imag**2) * self._psd_scale  # (C, nb, n_freqs)
            i0 = idx["bp"]
            for b, mask in enumerate(self._bp_masks):
                out[:, i0 + b] = psd[:, :, mask].sum(axis=-1).T
        return out

    def _features_from_sums(self, sums: np.ndarray) -> np.ndarray:
        N = float(self.window_samples)
        idx = self._stat_index
        floor = self.config.log_floor
        parts = []
        for f in self.config.features:
            if f == "mav":
                parts.append(sums[:, idx["abs"]] / N)
            elif f == "rms":
                parts.append(np.sqrt(sums[:, idx["sq"]] / N))
            elif f == "wl":
                parts.append(sums[:, idx["wl"]])
            elif f == "log_mav":
                parts.append(np.log(sums[:, idx["abs"]] / N + floor))
            elif f == "log_wl":
                parts.append(np.log(sums[:, idx["wl"]] + floor))
            elif f == "zc":
                parts.append(sums[:, idx["zc"]])
            elif f == "ssc":
                parts.append(sums[:, idx["ssc"]])
            elif f == "logvar":
                m = sums[:, idx["sum"]] / N
                var = np.maximum(sums[:, idx["sq"]] / N - m * m, 0.0)
                parts.append(np.log(var + floor))
            elif f == "mean":
                parts.append(sums[:, idx["sum"]] / N)
            elif f == "logmean":
                parts.append(np.log(np.maximum(sums[:, idx["sum"]] / N, 0.0) + floor))
            elif f == "log_bandpower":
                i0 = idx["bp"]
                for b in range(self._n_bp):
                    parts.append(np.log(sums[:, i0 + b] / self.window_blocks + floor))
        return np.concatenate(parts, axis=1).astype(np.float32)


def frames_for_config(
    config: FeatureConfig, signals: np.ndarray, fs_hz: float, *, segment_starts: Optional[Sequence[int]] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Offline frames of a recording made of independent segments, each from a fresh state.

    Parameters
    ----------
    config : FeatureConfig
    signals : np.ndarray, shape (n_samples, n_channels)
    fs_hz : float
    segment_starts : sequence of int, optional
        First sample of each continuous segment (default: one segment).

    Returns
    -------
    frames : np.ndarray, shape (n_frames, n_features), float32
    end_samples : np.ndarray, shape (n_frames,), int64
        Index into ``signals`` of each frame's last sample.
    """
    signals = check_signal("signals", signals)
    ex = FeatureExtractor(config, fs_hz=fs_hz, n_channels=signals.shape[1])
    starts = list(segment_starts) if segment_starts is not None else [0]
    bounds = starts + [len(signals)]
    frames, ends = [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        f = ex.transform(signals[a:b])
        frames.append(f)
        ends.append(a + ex.frame_end_samples(0, len(f)))
    if not frames:
        return np.zeros((0, ex.n_features), np.float32), np.zeros(0, np.int64)
    return np.concatenate(frames), np.concatenate(ends)
