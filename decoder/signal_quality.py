"""Signal faults the runtime must catch before decoding: NaN/inf, saturation, flat (disconnected) channels."""

from collections import deque
from dataclasses import dataclass
from typing import List, Optional

import numpy as np


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds.

    Parameters
    ----------
    saturation : float, optional
        Absolute value at or above which a sample counts as saturated (the ADC's full scale); None disables.
    saturated_fraction : float
        Share of a chunk's samples on one channel that must be saturated to call a fault.
    flat_std : float
        A channel whose standard deviation over ``flat_window_s`` (the latest whole chunks covering it) stays below
        this is flat (disconnected).
    flat_window_s : float
    rail_fraction : float
        Rail detector for sources whose full scale is unknown: a channel on which at least this share of a chunk's
        (8 or more) samples sit at exactly the chunk's extreme value (in absolute value) is railed, when that
        extreme is also more than ``rail_factor`` times the channel's usual level (the running mean of clean
        chunks' median absolute value); before any level is known, ``rail_fraction_cold`` of the samples must sit
        there. None disables.
    rail_factor : float
    rail_fraction_cold : float
    """

    saturation: Optional[float] = None
    saturated_fraction: float = 0.2
    flat_std: float = 1e-6
    flat_window_s: float = 0.5
    rail_fraction: Optional[float] = 0.5
    rail_factor: float = 8.0
    rail_fraction_cold: float = 0.9


class QualityMonitor:
    """Checks each chunk; ``check`` returns a list of fault messages (empty when the signal is fine)."""

    def __init__(self, config: QualityConfig, *, fs_hz: float, n_channels: int) -> None:
        self.config = config
        self.n_flat = max(2, int(config.flat_window_s * fs_hz))
        self.n_channels = n_channels
        # per chunk of the flat window: (samples, mean, centred sum of squares), combined exactly (Chan et al.)
        self._chunks = deque()
        self._window_n = 0
        self._level = None  # per channel: running mean of clean chunks' median |x|
        self._level_n = 0

    def _railed(self, x: np.ndarray) -> np.ndarray:
        """Channels stuck at one extreme value in this chunk (the rail detector); updates the usual level."""
        c = self.config
        if c.rail_fraction is None or len(x) < 8:
            return np.zeros(0, int)
        a = np.abs(x)
        peak = a.max(axis=0)
        at_peak = np.mean(a == peak, axis=0)
        if self._level is None:
            railed = (at_peak >= c.rail_fraction_cold) & (peak > 0)
        else:
            railed = ((at_peak >= c.rail_fraction) & (peak > c.rail_factor * self._level)) | (
                (at_peak >= c.rail_fraction_cold) & (peak > 0) & (peak > 2 * self._level))
        ch = np.flatnonzero(railed)
        if not len(ch) and np.all(np.isfinite(a)):
            med = np.median(a, axis=0)
            self._level_n = min(self._level_n + 1, 1000)
            self._level = med if self._level is None else self._level + (med - self._level) / self._level_n
        return ch

    def _window_std(self, x: np.ndarray) -> Optional[np.ndarray]:
        """Per-channel standard deviation over the latest whole chunks covering ``n_flat`` samples, shape (C,).

        None until the window is full. Each chunk is summarised once (count, mean, centred sum of squares) and
        the summaries are combined, so the cost does not grow with the window.
        """
        if len(x):
            x64 = np.asarray(x, np.float64)
            mean = x64.mean(axis=0)
            self._chunks.append((len(x), mean, ((x64 - mean) ** 2).sum(axis=0)))
            self._window_n += len(x)
        while self._chunks and self._window_n - self._chunks[0][0] >= self.n_flat:
            self._window_n -= self._chunks.popleft()[0]
        if self._window_n < self.n_flat:
            return None
        n = np.array([c[0] for c in self._chunks], np.float64)[:, None]
        means = np.array([c[1] for c in self._chunks])
        m2 = np.array([c[2] for c in self._chunks])
        grand = (n * means).sum(axis=0) / self._window_n
        total = m2.sum(axis=0) + (n * (means - grand) ** 2).sum(axis=0)
        return np.sqrt(total / self._window_n)

    def check(self, chunk: np.ndarray) -> List[str]:
        """Faults of this chunk, each a clear message naming the channel."""
        x = np.asarray(chunk, np.float32)
        faults = []
        bad = ~np.isfinite(x)
        if bad.any():
            ch = np.flatnonzero(bad.any(axis=0))
            faults.append("NaN or inf samples on channel(s) {}".format(", ".join(str(c) for c in ch)))
            x = np.where(bad, 0.0, x)
        if self.config.saturation is not None and len(x):
            frac = np.mean(np.abs(x) >= self.config.saturation, axis=0)
            ch = np.flatnonzero(frac >= self.config.saturated_fraction)
            if len(ch):
                faults.append("saturated channel(s) {} (|x| >= {:g})".format(
                    ", ".join(str(c) for c in ch), self.config.saturation))
        railed = self._railed(x)
        if len(railed):
            faults.append("railed channel(s) {} (samples stuck at one extreme value)".format(
                ", ".join(str(c) for c in railed)))
        std = self._window_std(x)
        if std is not None:
            flat = np.flatnonzero(std < self.config.flat_std)
            if len(flat):
                faults.append("flat channel(s) {} for {:g} s (disconnected?)".format(
                    ", ".join(str(c) for c in flat), self.config.flat_window_s))
        return faults
