"""Feature frames from raw samples: one streaming implementation for offline and online use.

Samples pass through the causal filter bank (:mod:`decoder.filters`), are cut into blocks of ``hop_ms``,
and every completed block emits one frame over the last ``window_ms`` (a whole number of blocks). Per block
the extractor keeps sums (of ``|x|``, ``x``, ``x**2``, ``|x[i]-x[i-1]|``, crossings, slope changes, Welch
band powers, ...); a frame adds the sums of its blocks. A recording processed in one call and the same recording
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
``iav``        integral of absolute value, sum of ``|x[i]|`` (LibEMG IAV)
``var``        population variance of ``x`` (LibEMG VAR)
``msr``        LibEMG's "mean square root": ``|mean(sqrt(x[i]))|`` with the complex square root, that is
               ``sqrt(P**2 + Q**2) / N`` with ``P`` the sum of ``sqrt(x[i])`` over ``x[i] > 0`` and ``Q`` that of
               ``sqrt(-x[i])`` over ``x[i] < 0`` (not the textbook mean of ``sqrt|x|``); scales with ``sqrt`` of gain
``wamp``       Willison amplitude: count of ``i`` with ``|x[i] - x[i-1]| > wamp_threshold`` (LibEMG WAMP), or, with
               ``wamp_relative``, ``> wamp_threshold * dasdv`` of the same window (see below)
``dasdv``      ``sqrt(mean((x[i] - x[i-1])**2))`` over the window's ``N`` differences (LibEMG DASDV)
``mfl``        LibEMG's maximum fractal length, ``log10(wl + log_floor)`` (LibEMG: ``log10`` of the sum of
               ``|x[i] - x[i-1]|``; the literature's ``sqrt`` of the sum of squares is not what LibEMG computes)
``lscore``     L-score: the second sample L-moment of the window's ``N`` samples, ``2 b1 - b0`` with ``b0`` their
               mean and ``b1 = (1/N) sum_j (j-1)/(N-1) x_(j)`` over the sorted samples (LibEMG LS; 0 when ``N = 1``)
``log_bandpower``  for each band ``(lo, hi)`` in ``bands_hz``: ``log(P + log_floor)`` with ``P`` the power in
               ``lo <= f < hi`` of a Welch estimate over the window with segments of one hop (Hann window,
               constant detrend, no overlap), equal to ``scipy.signal.welch(x, fs, nperseg=hop,
               noverlap=0)`` summed over the band times the bin width. Resolution is ``1000 / hop_ms`` Hz.

LibEMG differences a window of ``N`` samples within itself (``N - 1`` differences); here every difference-based
feature (``wl``, ``zc``, ``wamp``, ``dasdv``, ``mfl``) takes the ``N`` differences that end in the window, the first
one reaching back to ``x[a-1]``, so that the window's differences are the sum of its blocks'.

``wamp``'s threshold: a threshold in signal units depends on the amplifier (ADC counts, microvolts) and on the
electrode contact, so a value tuned on one armband counts nothing or everything on another. With
``wamp_relative`` the threshold is a multiple of the same window's RMS first difference (``dasdv``): the count is
then unchanged by any gain, needs no calibration, and uses only the window's own samples (causal, and the same offline
and online). It measures how heavy-tailed the differences are rather than how large. The default for EMG is chosen on
validation data (docs/results.md).

Two features do not decompose into block sums: ``lscore`` (it sorts the window) and a relative ``wamp`` (its
threshold is known only once the window is complete). For them the state keeps the last ``N + 1`` filtered samples
and each frame is computed from its window (:mod:`neurohand.decoder.feature_kinds`); a chunked stream therefore still
gives the same frames as one call.

Frame ``k`` covers samples ``[k*hop, k*hop + window)`` and is emitted when its last sample arrives.
Its features are laid out feature-major: all channels of the first feature, then the next.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .feature_config import FeatureConfig
from .feature_kinds import Spectrum, block_stats, frame_features, needed_stats, window_features, window_kinds
from .filters import DTYPE, CausalFilterBank
from .validation import check_int, check_positive, check_signal, invalid_value


@dataclass
class FeatureState:
    """Per-stream state of a :class:`FeatureExtractor`; treat as opaque. ``process`` returns a new one."""

    filter_state: np.ndarray  # (n_channels, n_sections, 2)
    pending: np.ndarray  # (n_channels, p) filtered samples of the unfinished block, p < hop
    prev: np.ndarray  # (n_channels, 2) the two filtered samples before ``pending``
    history: np.ndarray  # (k, n_stats, n_channels) float64 sums of the last k <= window_blocks - 1 blocks
    n_samples: int = 0  # samples consumed so far
    n_frames: int = 0  # frames emitted so far
    tail: Optional[np.ndarray] = None  # (n_channels, window + 1) last filtered samples of whole blocks, or None
    # when no feature needs the window's samples (lscore, relative wamp)


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
        stats = needed_stats(config)
        self._stats = stats
        self._window_kinds = window_kinds(config)
        masks: List[np.ndarray] = []
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
                masks.append(mask)
        self._spectrum = Spectrum(self.hop_samples, self.fs_hz, masks) if masks else None
        # Offsets of each statistic in the stats axis.
        self._stat_index: Dict[str, int] = {}
        i = 0
        for s in stats:
            self._stat_index[s] = i
            i += len(masks) if s == "bp" else 1
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
            tail=np.zeros((self.n_channels, self.window_samples + 1), dtype=DTYPE) if self._window_kinds else None,
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
                                     state.n_frames, state.tail)
            return np.zeros((0, self.n_features), dtype=np.float32), new_state
        ext = np.concatenate([state.prev, seg[:, :used]], axis=1)
        stats = block_stats(ext, nb, h, self._stat_index, self._n_stats, self.config, self._spectrum)
        combined = np.concatenate([state.history, stats], axis=0) if len(state.history) else stats
        W = self.window_blocks
        tail = state.tail
        buf = None
        if tail is not None:
            buf = np.concatenate([tail, seg[:, :used]], axis=1)
            tail = buf[:, -(self.window_samples + 1):].copy()
        if len(combined) >= W:
            n_new = len(combined) - W + 1
            sums = combined[:n_new].copy()  # (n_frames, n_stats, n_channels): frame k adds blocks k..k+W-1
            for i in range(1, W):
                sums += combined[i:i + n_new]
            per_frame = {} if buf is None else window_features(self.config, buf, n_new, h, self.window_samples)
            frames = frame_features(self.config, sums, self._stat_index, self.window_samples, W, per_frame)
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
            tail=tail,
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
