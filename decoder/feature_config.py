"""Feature configuration: how raw samples become feature frames, and the choice for each kind of recording.

:class:`FeatureConfig` is saved with every model and bundle; :func:`default_feature_config` picks one per signal kind.

The features themselves are defined in :mod:`neurohand.decoder.features`.
"""

import math
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional, Tuple

from .errors import InvalidTypeError, InvalidValueError
from .filters import FilterConfig
from .validation import check_option, check_positive, invalid_value
from .vocabulary import SIGNAL_KINDS

SAMPLE_TOLERANCE = 1e-6
"""Relative tolerance within which a duration counts as a whole number of samples (float rounding of exact values)."""

FEATURES = ("mav", "rms", "wl", "zc", "ssc", "logvar", "mean", "logmean", "log_bandpower", "log_mav", "log_wl",
            "iav", "var", "msr", "wamp", "dasdv", "mfl", "lscore")


@dataclass(frozen=True)
class FeatureConfig:
    """How raw samples become feature frames; saved with every model and bundle.

    Parameters
    ----------
    filters : FilterConfig
        Causal filters applied first.
    window_ms : float
        Window of each frame; a whole multiple of ``hop_ms``.
    hop_ms : float
        Time between frames; must be a whole number of samples at the recording's rate (:meth:`at_rate` rounds it).
    features : tuple of str
        Feature kinds, from :data:`FEATURES`, in output order.
    zc_threshold : float
        Noise threshold of ``zc``, in signal units.
    ssc_threshold : float
        Noise threshold of ``ssc``, in signal units.
    wamp_threshold : float
        Threshold of ``wamp`` (Willison amplitude): a first difference counts when its magnitude exceeds it. In signal
        units when ``wamp_relative`` is false; otherwise dimensionless, a multiple of the window's own RMS first
        difference (``dasdv``), so that the count does not change with electrode gain.
    wamp_relative : bool
        Whether ``wamp_threshold`` is relative to the window's RMS first difference (see above).
    bands_hz : tuple of (float, float)
        Bands of ``log_bandpower``.
    log_floor : float
        Added inside every logarithm, in the feature's units.
    signal_kind : str
        The input this config is meant for: ``'nerve'``, ``'emg'`` or ``'envelope'``.
    """

    filters: FilterConfig = field(default_factory=FilterConfig)
    window_ms: float = 100.0
    hop_ms: float = 10.0
    features: Tuple[str, ...] = ("mav", "rms", "wl", "zc", "ssc", "logvar")
    zc_threshold: float = 0.0
    ssc_threshold: float = 0.0
    wamp_threshold: float = 0.0
    wamp_relative: bool = False
    bands_hz: Tuple[Tuple[float, float], ...] = ()
    log_floor: float = 1e-6
    signal_kind: str = "emg"

    def __post_init__(self) -> None:
        if not isinstance(self.filters, FilterConfig):
            raise InvalidTypeError("'filters' must be a FilterConfig, got {!r}".format(type(self.filters).__name__))
        check_positive("window_ms", self.window_ms)
        check_positive("hop_ms", self.hop_ms)
        ratio = self.window_ms / self.hop_ms
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise invalid_value(
                "window_ms", "expected a whole multiple of hop_ms={}, got {}".format(
                    self.hop_ms, self.window_ms)
            )
        feats = tuple(self.features)
        if not feats:
            raise invalid_value("features", "expected at least one of {}".format(FEATURES))
        for f in feats:
            check_option("features", f, FEATURES)
        if len(set(feats)) != len(feats):
            raise invalid_value("features", "duplicates in {}".format(feats))
        object.__setattr__(self, "features", feats)
        bands = tuple((float(lo), float(hi)) for lo, hi in self.bands_hz)
        for lo, hi in bands:
            if not (0 <= lo < hi):
                raise invalid_value(
                    "bands_hz", "expected 0 <= low < high, got ({}, {})".format(lo, hi))
        if "log_bandpower" in feats and not bands:
            raise invalid_value("bands_hz", "'log_bandpower' needs at least one band")
        object.__setattr__(self, "bands_hz", bands)
        check_positive("zc_threshold", self.zc_threshold, allow_zero=True)
        check_positive("ssc_threshold", self.ssc_threshold, allow_zero=True)
        check_positive("wamp_threshold", self.wamp_threshold, allow_zero=True)
        if not isinstance(self.wamp_relative, bool):
            raise InvalidTypeError("'wamp_relative' must be a bool, got {!r}".format(type(self.wamp_relative).__name__))
        check_positive("log_floor", self.log_floor)
        check_option("signal_kind", self.signal_kind, SIGNAL_KINDS)

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-ready dict (round-trips through :meth:`from_dict`).

        The WAMP settings (added 2026-12) are left out while at their defaults, so a config that does not use them
        still loads in device software from before them.
        """
        d = {
            "filters": self.filters.to_dict(),
            "window_ms": float(self.window_ms),
            "hop_ms": float(self.hop_ms),
            "features": list(self.features),
            "zc_threshold": float(self.zc_threshold),
            "ssc_threshold": float(self.ssc_threshold),
            "bands_hz": [list(b) for b in self.bands_hz],
            "log_floor": float(self.log_floor),
            "signal_kind": self.signal_kind,
        }
        if self.wamp_threshold != 0.0 or self.wamp_relative:
            d["wamp_threshold"] = float(self.wamp_threshold)
            d["wamp_relative"] = bool(self.wamp_relative)
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "FeatureConfig":
        """Build from :meth:`to_dict` output; unknown keys raise, missing ones (an older config) take their defaults."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidValueError("Unknown feature config keys {}; allowed {}".format(
                sorted(unknown), sorted(cls.__dataclass_fields__)))
        d = dict(d)
        if "filters" in d:
            d["filters"] = FilterConfig.from_dict(d["filters"])
        if "features" in d:
            d["features"] = tuple(d["features"])
        if "bands_hz" in d:
            d["bands_hz"] = tuple(tuple(b) for b in d["bands_hz"])
        return cls(**d)

    def samples_at(self, fs_hz: float) -> Tuple[int, int]:
        """Hop and window in samples at ``fs_hz``: ``(hop_samples, window_samples)``.

        Raises
        ------
        InvalidValueError
            ``hop_ms`` is not a whole number of samples at ``fs_hz``; the message names the nearest valid values.
        """
        hop = ms_to_samples("hop_ms", self.hop_ms, fs_hz)
        return hop, hop * int(round(self.window_ms / self.hop_ms))

    def at_rate(self, fs_hz: float) -> "FeatureConfig":
        """Return this configuration with ``hop_ms`` rounded to whole samples at ``fs_hz``, the window to as many hops.

        ``hop_ms`` becomes ``round(hop_ms * fs_hz / 1000)`` samples (at least 1) in exact milliseconds
        (``hop_samples * 1000 / fs_hz``, 20.01953125 ms for 20 ms at 2048 Hz) and ``window_ms`` the same number of hops
        as before. A configuration already in whole samples is returned unchanged.
        """
        fs = check_positive("fs_hz", fs_hz)
        hop = max(1, int(round(self.hop_ms * fs / 1000.0)))
        blocks = int(round(self.window_ms / self.hop_ms))
        if _is_whole(self.hop_ms * fs / 1000.0):
            return self
        hop_ms = hop * 1000.0 / fs
        return replace(self, hop_ms=hop_ms, window_ms=blocks * hop_ms)

    def timing(self, fs_hz: float) -> Dict[str, float]:
        """Return the frame timing at ``fs_hz`` recorded in ``model.json`` and the bundle contract (``frame_timing``).

        Returns
        -------
        dict
            ``{"fs_hz", "hop_samples", "window_samples", "hop_ms", "window_ms"}``, the durations exact
            (``samples * 1000 / fs_hz``).
        """
        fs = check_positive("fs_hz", fs_hz)
        hop, window = self.samples_at(fs)
        return {"fs_hz": fs, "hop_samples": hop, "window_samples": window, "hop_ms": hop * 1000.0 / fs,
                "window_ms": window * 1000.0 / fs}


def _is_whole(n: float) -> bool:
    return abs(n - round(n)) <= SAMPLE_TOLERANCE * max(1.0, abs(n)) and round(n) >= 1


def ms_to_samples(name: str, ms: float, fs_hz: float, *, step: int = 1) -> int:
    """Return ``ms`` at ``fs_hz`` in samples, refusing a duration that is not a whole number of ``step`` samples.

    Parameters
    ----------
    name : str
        The setting, for the message (``'hop_ms'``, ``'--window-ms'``).
    ms : float
        Duration in milliseconds.
    fs_hz : float
        Sample rate.
    step : int
        The duration must be a whole multiple of this many samples (a window: of the hop).

    Raises
    ------
    InvalidValueError
        ``Invalid value for 'hop_ms': 20.0 ms at fs_hz=2048.0 is 40.96 samples; expected a whole number >= 1;
        nearest valid: 19.53125 ms (40 samples) or 20.01953125 ms (41 samples)``.
    """
    fs = check_positive("fs_hz", fs_hz)
    n = check_positive(name, ms) * fs / 1000.0
    k = n / step
    if _is_whole(k):
        return int(round(k)) * step
    options = sorted({max(1, int(math.floor(k))), max(1, int(math.ceil(k)))})
    unit = "samples" if step == 1 else "hops of {} samples".format(step)
    nearest = " or ".join("{:.10g} ms ({} {})".format(m * step * 1000.0 / fs, m, "samples" if step == 1 else "hops")
                          for m in options)
    raise invalid_value(name, "{} ms at fs_hz={} is {:.10g} {}; expected a whole number >= 1".format(
        ms, fs, k, unit), extra="nearest valid: {}".format(nearest))


def default_feature_config(signal_kind: str, *, mains_hz: float = 50.0, fs_hz: Optional[float] = None) -> FeatureConfig:
    """Return the feature configuration chosen for a kind of recording.

    Parameters
    ----------
    signal_kind : {'nerve', 'emg', 'envelope'}
        ``'nerve'``: intrafascicular recordings at 10-30 kHz (300-3000 Hz band, spike-sensitive features,
        thresholds in microvolts). ``'emg'``: raw surface EMG at about 1 kHz (20-450 Hz band, mains notches,
        log-scaled time-domain features, band powers, L-score, MSR and a WAMP relative to the window, none with a
        threshold in signal units). ``'envelope'``: already rectified and smoothed EMG such as
        NinaPro DB1 at 100 Hz (no filters; windowed mean and its logarithm).
    mains_hz : float
        Mains frequency notched for ``'emg'`` (50 in Europe, 60 in the Americas).
    fs_hz : float, optional
        Sample rate the config is for; band edges above 0.45 * fs_hz are lowered to it, and the hop and window are
        rounded to whole samples (:meth:`FeatureConfig.at_rate`: 20 ms at 2048 Hz is 41 samples, 20.01953125 ms).
    """
    check_option("signal_kind", signal_kind, SIGNAL_KINDS)
    config = _default_for(signal_kind, mains_hz=mains_hz, fs_hz=fs_hz)
    return config if fs_hz is None else config.at_rate(fs_hz)


def _default_for(signal_kind: str, *, mains_hz: float, fs_hz: Optional[float]) -> FeatureConfig:
    def top(hz: float) -> float:
        return hz if fs_hz is None else min(hz, 0.45 * float(fs_hz))

    if signal_kind == "nerve":
        return FeatureConfig(
            filters=FilterConfig(bandpass_hz=(300.0, top(3000.0)), bandpass_order=2),
            window_ms=50.0,  # 100 ms until 2026-12: as accurate, 25 ms less delay (docs/results.md, latency)
            hop_ms=10.0,
            features=("mav", "wl", "zc", "ssc", "logvar"),
            zc_threshold=10.0,
            ssc_threshold=5.0,
            log_floor=1e-3,
            signal_kind="nerve",
        )
    if signal_kind == "emg":
        return FeatureConfig(
            filters=FilterConfig(bandpass_hz=(20.0, top(450.0)), bandpass_order=4, notch_hz=mains_hz,
                                 notch_harmonics=3),
            window_ms=200.0,
            hop_ms=20.0,
            # Log-scaled amplitudes, L-score, MSR and a gain-free WAMP since 2026-12 (were mav, rms, wl, zc, ssc,
            # logvar, log band powers): LDA validation accuracy 0.925 against 0.921 on the 14 3DC people, higher on
            # 11 of them (docs/results.md, raw-EMG features).
            features=("log_mav", "log_wl", "logvar", "zc", "ssc", "log_bandpower", "lscore", "msr", "wamp"),
            wamp_threshold=0.5,  # differences above half the window's RMS difference
            wamp_relative=True,
            bands_hz=((20.0, 100.0), (100.0, 200.0), (200.0, 450.0)),
            log_floor=1e-3,
            signal_kind="emg",
        )
    return FeatureConfig(
        filters=FilterConfig(),
        window_ms=50.0,  # 100 ms until 2026-12, as for nerve
        hop_ms=10.0,
        features=("mean", "logmean"),
        log_floor=1e-4,
        signal_kind="envelope",
    )


def config_for_recording(recording: Any) -> FeatureConfig:
    """Return :func:`default_feature_config` for a :class:`~neurohand.decoder.recording.Recording`.

    Uses its ``signal_kind``, ``fs_hz`` (the hop and window in whole samples at it) and, when recorded,
    ``metadata['mains_hz']``.
    """
    mains = float(recording.metadata.get("mains_hz", 50.0))
    return default_feature_config(recording.signal_kind, mains_hz=mains, fs_hz=recording.fs_hz)
