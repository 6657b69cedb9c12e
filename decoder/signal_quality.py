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
    """

    saturation: Optional[float] = None
    saturated_fraction: float = 0.2
    flat_std: float = 1e-6
    flat_window_s: float = 0.5


class QualityMonitor:
    """Checks each chunk; ``check`` returns a list of fault messages (empty when the signal is fine)."""

    def __init__(self, config: QualityConfig, *, fs_hz: float, n_channels: int) -> None:
        self.config = config
        self.n_flat = max(2, int(config.flat_window_s * fs_hz))
        self.n_channels = n_channels
        self._tail = np.zeros((0, n_channels), np.float32)

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
        self._tail = np.concatenate([self._tail, x])[-self.n_flat:]
        if len(self._tail) >= self.n_flat:
            flat = np.flatnonzero(self._tail.std(axis=0) < self.config.flat_std)
            if len(flat):
                faults.append("flat channel(s) {} for {:g} s (disconnected?)".format(
                    ", ".join(str(c) for c in flat), self.config.flat_window_s))
        return faults
