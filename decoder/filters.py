"""Causal streaming filter bank: band-pass and mains notches as one SOS cascade.

Filters are designed with :mod:`scipy.signal` and applied with the C loop behind :func:`scipy.signal.sosfilt`,
the state carried between calls, so filtering a recording in one block or in chunks of any size gives the same
samples. The phase is causal (forward only): no ``filtfilt`` anywhere on this path, the output at sample ``n``
depends only on samples ``<= n``.

On the device the designed sections come from the bundle (:class:`CausalFilterBank` takes ``sos``) and the C loop
is loaded on its own, so the runtime never imports :mod:`scipy.signal`, whose import pulls in most of SciPy (about
70 MB resident: stats, optimize, sparse, interpolate ...).
"""

import importlib.machinery
import importlib.util
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .errors import InvalidValueError
from .validation import check_int, check_positive, check_signal, invalid_value


def _load_sosfilt_kernel():
    """Return scipy's compiled in-place ``_sosfilt(sos, x, zi)`` without importing :mod:`scipy.signal`, or None.

    The extension module ``scipy/signal/_sosfilt`` depends on numpy alone; loading it from its file skips the
    package ``__init__``. Other scipy layouts fall back to the regular import, then to the public ``sosfilt``.
    """
    try:
        spec = importlib.util.find_spec("scipy")
        folder = os.path.join(os.path.dirname(spec.origin), "signal")
        for name in sorted(os.listdir(folder)):
            if name.startswith("_sosfilt.") and name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
                path = os.path.join(folder, name)
                loader = importlib.machinery.ExtensionFileLoader("scipy.signal._sosfilt", path)
                module = importlib.util.module_from_spec(
                    importlib.util.spec_from_file_location("scipy.signal._sosfilt", path, loader=loader))
                loader.exec_module(module)
                return module._sosfilt
    except Exception:  # pragma: no cover - unusual installs
        pass
    try:  # pragma: no cover - the loader above covers the usual wheels
        from scipy.signal._sosfilt import _sosfilt

        return _sosfilt
    except ImportError:  # pragma: no cover
        return None


_sosfilt_inplace = _load_sosfilt_kernel()

PHASE = "causal"
# Samples are filtered in float32: half the memory traffic of float64, ample for 16-24 bit ADC data.
DTYPE = np.float32


@dataclass(frozen=True)
class FilterConfig:
    """Filters applied to raw samples before features.

    Parameters
    ----------
    bandpass_hz : tuple of (float, float), optional
        Pass band ``(low_hz, high_hz)`` of a Butterworth band-pass. ``None`` applies none (for input that
        is already an envelope, such as NinaPro DB1).
    bandpass_order : int
        Butterworth order of each edge (the band-pass has ``bandpass_order`` SOS sections).
    notch_hz : float, optional
        Mains frequency to notch (50 or 60). ``None`` applies no notch.
    notch_harmonics : int
        How many mains multiples to notch, counting the fundamental (those at or above Nyquist are skipped).
    notch_q : float
        Quality factor of each notch (bandwidth = frequency / Q).
    """

    bandpass_hz: Optional[Tuple[float, float]] = None
    bandpass_order: int = 4
    notch_hz: Optional[float] = None
    notch_harmonics: int = 1
    notch_q: float = 30.0

    def __post_init__(self) -> None:
        if self.bandpass_hz is not None:
            band = tuple(float(b) for b in self.bandpass_hz)
            if len(band) != 2 or not (0 < band[0] < band[1]):
                raise invalid_value(
                    "bandpass_hz", "expected (low_hz, high_hz) with 0 < low < high, "
                    "got {!r}".format(self.bandpass_hz)
                )
            object.__setattr__(self, "bandpass_hz", band)
        check_int("bandpass_order", self.bandpass_order, minimum=1)
        if self.notch_hz is not None:
            check_positive("notch_hz", self.notch_hz)
        check_int("notch_harmonics", self.notch_harmonics, minimum=1)
        check_positive("notch_q", self.notch_q)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["bandpass_hz"] = list(self.bandpass_hz) if self.bandpass_hz is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FilterConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidValueError("Unknown filter config keys {}; allowed {}".format(
                sorted(unknown), sorted(cls.__dataclass_fields__)))
        d = dict(d)
        if d.get("bandpass_hz") is not None:
            d["bandpass_hz"] = tuple(d["bandpass_hz"])
        return cls(**d)


def design_sos(config: FilterConfig, fs_hz: float) -> np.ndarray:
    """Design the SOS cascade for ``config`` at ``fs_hz``.

    Returns
    -------
    np.ndarray, shape (n_sections, 6)
        Second-order sections, band-pass first then notches. Zero sections when no filter is configured.

    Raises
    ------
    ValueError
        If a band edge or the notch is at or above Nyquist, or a designed section is unstable.
    """
    from scipy import signal

    fs_hz = check_positive("fs_hz", fs_hz)
    nyq = fs_hz / 2.0
    sections = []
    if config.bandpass_hz is not None:
        lo, hi = config.bandpass_hz
        if hi >= nyq:
            raise invalid_value(
                "bandpass_hz", "high edge {} Hz must be below Nyquist ({} Hz at fs_hz={})".format(
                    hi, nyq, fs_hz)
            )
        sections.append(signal.butter(config.bandpass_order, [lo, hi], btype="bandpass", output="sos", fs=fs_hz))
    if config.notch_hz is not None:
        if config.notch_hz >= nyq:
            raise invalid_value(
                "notch_hz", "{} Hz must be below Nyquist ({} Hz at fs_hz={})".format(
                    config.notch_hz, nyq, fs_hz)
            )
        for k in range(1, config.notch_harmonics + 1):
            f0 = config.notch_hz * k
            if f0 >= nyq * 0.98:
                break
            b, a = signal.iirnotch(f0, config.notch_q, fs=fs_hz)
            sections.append(signal.tf2sos(b, a))
    if not sections:
        return np.zeros((0, 6))
    sos = np.concatenate(sections, axis=0)
    check_stable(sos)
    return sos


def check_stable(sos: np.ndarray) -> None:
    """Raise ``ValueError`` if any section has a pole on or outside the unit circle."""
    for i, sec in enumerate(np.asarray(sos, dtype=float)):
        poles = np.roots(sec[3:])
        if poles.size and np.max(np.abs(poles)) >= 1.0:
            raise InvalidValueError(
                "Unstable filter: section {} has a pole of magnitude {:.6f} (must be < 1); lower the order "
                "or widen the band".format(i, float(np.max(np.abs(poles))))
            )


def group_delay_ms(sos: np.ndarray, fs_hz: float, freq_hz: float) -> float:
    """Group delay of the cascade at ``freq_hz``, in milliseconds (0 for an empty cascade)."""
    if len(sos) == 0:
        return 0.0
    from scipy import signal

    total = 0.0
    for sec in sos:
        _, gd = signal.group_delay((sec[:3], sec[3:]), w=[freq_hz], fs=fs_hz)
        total += float(gd[0])
    return 1000.0 * total / fs_hz


class CausalFilterBank:
    """A multi-channel SOS cascade with explicit carried state.

    Parameters
    ----------
    config : FilterConfig
        What to apply.
    fs_hz : float
        Sample rate of the input.
    n_channels : int
        Number of channels of every block.
    sos : np.ndarray, shape (n_sections, 6), optional
        The cascade already designed from ``config`` (what a bundle stores); designed here when omitted.

    Examples
    --------
    >>> bank = CausalFilterBank(FilterConfig(bandpass_hz=(20, 450)), fs_hz=1000, n_channels=2)
    >>> state = bank.new_state()
    >>> y, state = bank.process(state, np.zeros((10, 2)))
    """

    phase = PHASE

    def __init__(self, config: FilterConfig, *, fs_hz: float, n_channels: int,
                 sos: Optional[np.ndarray] = None) -> None:
        self.config = config
        self.fs_hz = check_positive("fs_hz", fs_hz)
        self.n_channels = check_int("n_channels", n_channels, minimum=1)
        if sos is None:
            self.sos = design_sos(config, self.fs_hz)
        else:  # designed earlier (a bundle carries its sections): no scipy.signal needed here
            self.sos = np.asarray(sos, dtype=float).reshape(-1, 6)
            check_stable(self.sos)
        self._sos32 = self.sos.astype(DTYPE)

    def new_state(self) -> np.ndarray:
        """Zero state (the signal was at rest before the first sample), shape (n_channels, n_sections, 2)."""
        return np.zeros((self.n_channels, len(self.sos), 2), dtype=DTYPE)

    def process(self, state: np.ndarray, block: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Filter one block.

        Parameters
        ----------
        state : np.ndarray, shape (n_channels, n_sections, 2)
            From :meth:`new_state` or the previous call; not modified.
        block : array_like, shape (n_samples, n_channels)
            New samples; not modified.

        Returns
        -------
        filtered : np.ndarray, shape (n_samples, n_channels), float32
        state : np.ndarray, shape (n_channels, n_sections, 2)
        """
        x = check_signal("block", block, n_channels=self.n_channels)
        y, zf = self.process_channel_major(state, x.T)
        return y.T, zf

    def process_channel_major(self, state: np.ndarray, x_cm: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Filter a validated block laid out channel-major, shape (n_channels, n_samples).

        Returns
        -------
        filtered : np.ndarray, shape (n_channels, n_samples), float32, C-contiguous
        state : np.ndarray, shape (n_channels, n_sections, 2)
        """
        y = np.array(x_cm, dtype=DTYPE, order="C")  # a copy: the caller's samples are never touched
        if len(self.sos) == 0 or y.shape[1] == 0:
            return y, state
        if _sosfilt_inplace is not None:
            zf = np.array(state, dtype=DTYPE, order="C")
            _sosfilt_inplace(self._sos32, y, zf)
            return y, zf
        from scipy import signal  # pragma: no cover - only without the compiled kernel

        y, zf = signal.sosfilt(self._sos32, y, axis=-1, zi=np.transpose(state, (1, 0, 2)))
        return y, np.ascontiguousarray(np.transpose(zf, (1, 0, 2)))
