"""Signal faults the runtime must catch before decoding: NaN/inf, saturation, flat (disconnected) channels."""

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
        A channel whose standard deviation over ``flat_window_s`` stays below this is flat (disconnected).
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
        self._tail = np.zeros((0, n_channels), np.float32)
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
        self._tail = np.concatenate([self._tail, x])[-self.n_flat:]
        if len(self._tail) >= self.n_flat:
            flat = np.flatnonzero(self._tail.std(axis=0) < self.config.flat_std)
            if len(flat):
                faults.append("flat channel(s) {} for {:g} s (disconnected?)".format(
                    ", ".join(str(c) for c in flat), self.config.flat_window_s))
        return faults
