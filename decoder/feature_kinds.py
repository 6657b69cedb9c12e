"""What each feature kind needs and how it is computed: per-block sums, and the per-frame window features.

Most features decompose into sums over the blocks of a window (:func:`block_stats`, combined by
:func:`frame_features`). Two cannot: the L-score needs the window's sorted samples, and a relative Willison
amplitude needs the window's own RMS first difference before it can count. Those are computed per frame from the
window's filtered samples, which the extractor keeps in its state (:func:`window_features`). Definitions are in
:mod:`neurohand.decoder.features`.
"""

from typing import Dict, List, Optional, Tuple

import numpy as np

from .feature_config import FeatureConfig

# Block statistics each block-sum feature needs.
STATS_FOR = {
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
    "iav": ("abs",),
    "var": ("sum", "sq"),
    "msr": ("rpos", "rneg"),
    "wamp": ("wamp",),
    "dasdv": ("sqd",),
    "mfl": ("wl",),
    "lscore": (),
}

WINDOW_CHUNK = 256
"""Frames sorted at once for the L-score (bounds the memory of an offline call)."""


def window_kinds(config: FeatureConfig) -> Tuple[str, ...]:
    """Features of ``config`` computed per frame from the window's samples rather than from block sums."""
    out = [f for f in config.features if f == "lscore" or (f == "wamp" and config.wamp_relative)]
    return tuple(out)


def needed_stats(config: FeatureConfig) -> List[str]:
    """Block statistics ``config`` needs, in first-use order."""
    per_frame = window_kinds(config)
    stats: List[str] = []
    for f in config.features:
        if f in per_frame:
            continue
        for s in STATS_FOR[f]:
            if s not in stats:
                stats.append(s)
    return stats


class Spectrum:
    """The Welch band-power constants for one hop: Hann window, density scale, band masks."""

    def __init__(self, hop: int, fs_hz: float, masks: List[np.ndarray]) -> None:
        freqs = np.fft.rfftfreq(hop, d=1.0 / fs_hz)
        win = np.hanning(hop + 1)[:-1] if hop > 1 else np.ones(1)
        # scipy.signal.get_window('hann', n) is the periodic Hann window, as used by welch.
        self.hann = win
        scale = 1.0 / (fs_hz * np.sum(win**2))
        onesided = np.full(len(freqs), 2.0 * scale)
        onesided[0] = scale
        if hop % 2 == 0:
            onesided[-1] = scale
        self.psd_scale = onesided * (fs_hz / hop)  # density times bin width
        self.masks = masks


def block_stats(ext: np.ndarray, nb: int, hop: int, idx: Dict[str, int], n_stats: int, config: FeatureConfig,
                spectrum: Optional[Spectrum]) -> np.ndarray:
    """Per-block float64 sums, shape (nb, n_stats, n_channels).

    ``ext`` is channel-major, shape (n_channels, 2 + nb * hop): two history samples, then the new ones.
    ``idx`` gives each statistic's offset in the stats axis (``'bp'`` spans one entry per band).
    """
    C = ext.shape[0]
    x = ext[:, 2:]
    xb = x.reshape(C, nb, hop)
    out = np.empty((nb, n_stats, C))
    f64 = np.float64
    # Non-negative sums and counts accumulate in float32 (pairwise: relative error ~1e-7 * log2(hop));
    # the signed sum, whose square is subtracted in logvar and var, in float64.
    if "abs" in idx:
        out[:, idx["abs"]] = np.abs(xb).sum(axis=-1).T
    if "sq" in idx:
        out[:, idx["sq"]] = np.square(xb).sum(axis=-1).T
    if "sum" in idx:
        out[:, idx["sum"]] = xb.sum(axis=-1, dtype=f64).T
    if "rpos" in idx:
        out[:, idx["rpos"]] = np.sqrt(np.maximum(xb, 0)).sum(axis=-1).T
        out[:, idx["rneg"]] = np.sqrt(np.maximum(-xb, 0)).sum(axis=-1).T
    if any(s in idx for s in ("wl", "zc", "ssc", "wamp", "sqd")):
        d = ext[:, 1:] - ext[:, :-1]  # d[:, j] = ext[:, j+1] - ext[:, j]; the new samples' diffs are d[:, 1:]
        absd = np.abs(d)
        if "wl" in idx:
            out[:, idx["wl"]] = absd[:, 1:].reshape(C, nb, hop).sum(axis=-1).T
        if "sqd" in idx:
            out[:, idx["sqd"]] = np.square(d[:, 1:]).reshape(C, nb, hop).sum(axis=-1).T
        if "wamp" in idx:
            big = absd[:, 1:] > config.wamp_threshold
            out[:, idx["wamp"]] = np.count_nonzero(big.reshape(C, nb, hop), axis=-1).T
        if "zc" in idx:
            crossing = (x * ext[:, 1:-1]) < 0
            if config.zc_threshold > 0:
                crossing &= absd[:, 1:] >= config.zc_threshold
            out[:, idx["zc"]] = np.count_nonzero(crossing.reshape(C, nb, hop), axis=-1).T
        if "ssc" in idx:
            # Centre sample ext[j+1] has slopes d[j] in and d[j+1] out; a local extremum when they differ in sign.
            change = (d[:, :-1] * d[:, 1:]) < 0
            if config.ssc_threshold > 0:
                big = absd >= config.ssc_threshold
                change &= big[:, :-1] | big[:, 1:]
            out[:, idx["ssc"]] = np.count_nonzero(change.reshape(C, nb, hop), axis=-1).T
    if "bp" in idx and spectrum is not None:
        blocks = xb.astype(f64)
        blocks = blocks - blocks.mean(axis=-1, keepdims=True)
        spec = np.fft.rfft(blocks * spectrum.hann, axis=-1)
        psd = (spec.real**2 + spec.imag**2) * spectrum.psd_scale  # (C, nb, n_freqs)
        i0 = idx["bp"]
        for b, mask in enumerate(spectrum.masks):
            out[:, i0 + b] = psd[:, :, mask].sum(axis=-1).T
    return out


def lscore_weights(n: int) -> np.ndarray:
    """Weights of the sorted window whose dot product is the second sample L-moment, shape (n,).

    ``l2 = 2 b1 - b0`` with ``b0`` the mean and ``b1 = (1/n) sum_j (j-1)/(n-1) x_(j)`` over the sorted samples
    ``x_(1) <= .. <= x_(n)``; 0 for a one-sample window.
    """
    if n < 2:
        return np.zeros(n)
    j = np.arange(n, dtype=np.float64)
    return (2.0 * j - (n - 1)) / (n * (n - 1.0))  # antisymmetric: the weights of x_(j) and x_(n+1-j) cancel


def window_features(config: FeatureConfig, buf: np.ndarray, n_frames: int, hop: int, window: int
                    ) -> Dict[str, np.ndarray]:
    """Per-frame features of the last ``n_frames`` frames whose windows end in ``buf``.

    Parameters
    ----------
    buf : np.ndarray, shape (n_channels, L)
        Filtered samples; frame ``k`` of the ``n_frames`` ends at ``L - 1 - (n_frames - 1 - k) * hop``, and
        ``window + 1`` samples (the window and the one before it) lie in ``buf`` for each.

    Returns
    -------
    dict of str to np.ndarray, shape (n_frames, n_channels), float64
        One entry per kind of :func:`window_kinds`.
    """
    kinds = window_kinds(config)
    C, L = buf.shape
    out = {k: np.empty((n_frames, C)) for k in kinds}
    if n_frames == 0 or not kinds:
        return out
    first_start = L - (window + 1) - (n_frames - 1) * hop  # first sample (the one before the window) of frame 0
    s0, s1 = buf.strides
    view = np.lib.stride_tricks.as_strided(buf[:, first_start:], shape=(C, n_frames, window + 1),
                                           strides=(s0, hop * s1, s1), writeable=False)
    wts = lscore_weights(window) if "lscore" in kinds else None
    for a in range(0, n_frames, WINDOW_CHUNK):
        b = min(a + WINDOW_CHUNK, n_frames)
        w = view[:, a:b].astype(np.float64)  # (C, f, window + 1)
        if wts is not None:
            out["lscore"][a:b] = (np.sort(w[:, :, 1:], axis=-1) @ wts).T
        if "wamp" in out:
            d = np.diff(w, axis=-1)
            rms_d = np.sqrt(np.mean(d * d, axis=-1, keepdims=True))
            out["wamp"][a:b] = np.count_nonzero(np.abs(d) > config.wamp_threshold * rms_d, axis=-1).T
    return out


def frame_features(config: FeatureConfig, sums: np.ndarray, idx: Dict[str, int], window: int, window_blocks: int,
                   per_frame: Dict[str, np.ndarray]) -> np.ndarray:
    """Frames from window sums and per-frame features, feature-major, shape (n_frames, n_features), float32.

    Parameters
    ----------
    sums : np.ndarray, shape (n_frames, n_stats, n_channels)
        Statistics summed over each frame's blocks.
    per_frame : dict of str to np.ndarray, shape (n_frames, n_channels)
        :func:`window_features` of the same frames.
    """
    N = float(window)
    floor = config.log_floor
    parts = []

    def s(name: str) -> np.ndarray:
        return sums[:, idx[name]]

    def variance() -> np.ndarray:
        m = s("sum") / N
        return np.maximum(s("sq") / N - m * m, 0.0)

    for f in config.features:
        if f in per_frame:
            parts.append(per_frame[f])
        elif f == "mav":
            parts.append(s("abs") / N)
        elif f == "iav":
            parts.append(s("abs"))
        elif f == "rms":
            parts.append(np.sqrt(s("sq") / N))
        elif f in ("wl", "zc", "ssc", "wamp"):
            parts.append(s(f))
        elif f == "log_mav":
            parts.append(np.log(s("abs") / N + floor))
        elif f == "log_wl":
            parts.append(np.log(s("wl") + floor))
        elif f == "mfl":
            parts.append(np.log10(s("wl") + floor))
        elif f == "dasdv":
            parts.append(np.sqrt(s("sqd") / N))
        elif f == "msr":
            parts.append(np.hypot(s("rpos"), s("rneg")) / N)
        elif f == "var":
            parts.append(variance())
        elif f == "logvar":
            parts.append(np.log(variance() + floor))
        elif f == "mean":
            parts.append(s("sum") / N)
        elif f == "logmean":
            parts.append(np.log(np.maximum(s("sum") / N, 0.0) + floor))
        elif f == "log_bandpower":
            i0 = idx["bp"]
            for b in range(len(config.bands_hz)):
                parts.append(np.log(sums[:, i0 + b] / window_blocks + floor))
    return np.concatenate(parts, axis=1).astype(np.float32)
