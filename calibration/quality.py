"""Signal-quality checks before training: a per-channel verdict the clinician can act on.

Per channel: the noise floor (robust RMS of the band-passed signal during rest), the mains level (power in a 4 Hz band
around the mains frequency against the neighbouring bands), flat and saturated stretches, and movement modulation per
finger (how much the channel's activity rises while each finger moves, as a rest-normalised ratio). The verdict is
``ok``, ``warn`` or ``bad`` per channel and overall, with a plain-language reason for each problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import signal

from neurohand.decoder.recording import Recording
from neurohand.decoder.vocabulary import FINGERS


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the verdict."""

    mains_ratio_warn: float = 5.0  # RMS of the mains line / RMS of the band-passed signal
    mains_ratio_bad: float = 50.0
    flat_std: float = 1e-6
    saturated_fraction: float = 0.01
    modulation_warn: float = 1.2  # best finger's activity during movement / during rest
    saturation: Optional[float] = None  # the ADC's full scale in signal units, when known


@dataclass
class ChannelReport:
    """Findings for one channel."""

    name: str
    noise_floor: float
    mains_ratio: float
    modulation: Dict[str, float]
    verdict: str = "ok"
    problems: List[str] = field(default_factory=list)


def check_recording(rec: Recording, *, mains_hz: Optional[float] = None,
                    thresholds: Optional[QualityThresholds] = None) -> Dict[str, object]:
    """Check every channel of a calibration recording.

    Returns
    -------
    dict
        ``{"verdict": "ok"|"warn"|"bad", "channels": [ChannelReport, ...], "summary": str}``.
    """
    thresholds = thresholds or QualityThresholds()
    mains = float(mains_hz if mains_hz is not None else rec.metadata.get("mains_hz", 50.0))
    x = rec.signals.astype(np.float64)
    fs = rec.fs_hz
    if rec.signal_kind == "envelope":
        y = x
    else:
        hi = min(0.45 * fs, 3000.0 if rec.signal_kind == "nerve" else 450.0)
        lo = 300.0 if rec.signal_kind == "nerve" else 20.0
        y = signal.sosfilt(signal.butter(2, [lo, hi], "bandpass", output="sos", fs=fs), x, axis=0)
    rest = rec.labels == 0 if rec.labels is not None else np.ones(rec.n_samples, bool)
    reports = []
    for c in range(rec.n_channels):
        problems, verdict = [], "ok"
        col = x[:, c]
        if np.std(col) < thresholds.flat_std:
            problems.append("flat: no signal (disconnected electrode?)")
            verdict = "bad"
        sat = thresholds.saturation
        if sat is not None and np.mean(np.abs(col) >= sat) > thresholds.saturated_fraction:
            problems.append("saturated in {:.1%} of samples".format(np.mean(np.abs(col) >= sat)))
            verdict = "bad"
        noise = float(1.4826 * np.median(np.abs(y[rest, c] - np.median(y[rest, c])))) if rest.any() else 0.0
        ratio = 0.0
        if rec.signal_kind != "envelope" and mains < fs / 2 - 4:
            f, pxx = signal.welch(col[: int(60 * fs)], fs=fs, nperseg=int(min(len(col), 2 * fs)))
            band = (f > mains - 2) & (f < mains + 2)
            near = ((f > mains - 12) & (f < mains - 4)) | ((f > mains + 4) & (f < mains + 12))
            ratio = 0.0
            if band.any() and near.any():
                df = f[1] - f[0]
                line = max(float(pxx[band].sum() - pxx[near].mean() * band.sum()), 0.0) * df
                ratio = float(np.sqrt(line) / max(np.std(y[:, c]), 1e-12))
            if ratio > thresholds.mains_ratio_bad:
                problems.append("mains interference {:.0f}x the signal (check grounding and the reference)".format(
                    ratio))
                verdict = "bad"
            elif ratio > thresholds.mains_ratio_warn:
                problems.append("mains interference {:.1f}x the signal".format(ratio))
                verdict = "warn" if verdict == "ok" else verdict
        modulation: Dict[str, float] = {}
        if rec.has_positions and rest.any():
            pos = rec.positions_at(np.arange(rec.n_samples))
            act = np.abs(y[:, c])
            base = max(float(np.mean(act[rest])), 1e-12)
            for j, finger in enumerate(FINGERS):
                moving = pos[:, j] > 0.5
                if moving.sum() > fs * 0.5:
                    modulation[finger] = float(np.mean(act[moving]) / base)
            if modulation and max(modulation.values()) < thresholds.modulation_warn and verdict != "bad":
                problems.append("barely modulated by any finger (best {:.2f}x rest)".format(max(modulation.values())))
                verdict = "warn"
        reports.append(ChannelReport(rec.channel_names[c], noise, ratio, modulation, verdict, problems))
    worst = "bad" if any(r.verdict == "bad" for r in reports) else (
        "warn" if any(r.verdict == "warn" for r in reports) else "ok")
    bad = [r.name for r in reports if r.verdict == "bad"]
    summary = {"ok": "all {} channels usable".format(len(reports)),
               "warn": "usable, with warnings on {}".format(", ".join(r.name for r in reports if r.verdict != "ok")),
               "bad": "re-record advised: {} unusable".format(", ".join(bad))}[worst]
    return {"verdict": worst, "channels": reports, "summary": summary}


def quality_summary(report: Dict[str, object], *, units: str = "signal units") -> Dict[str, object]:
    """Return :func:`check_recording`'s verdict as plain data (JSON-able), the shape the evaluation report shows.

    Returns
    -------
    dict
        ``{"verdict", "summary", "units", "channels": [{"name", "verdict", "noise_floor", "mains_ratio",
        "best_modulation", "problems"}, ...]}``.
    """
    channels = []
    for ch in report["channels"]:
        best = max(ch.modulation.items(), key=lambda kv: kv[1]) if ch.modulation else None
        channels.append({"name": ch.name, "verdict": ch.verdict, "noise_floor": ch.noise_floor,
                         "mains_ratio": ch.mains_ratio, "problems": list(ch.problems),
                         "best_modulation": "{} {:.2f}x".format(best[0], best[1]) if best else None})
    return {"verdict": report["verdict"], "summary": report["summary"], "units": units, "channels": channels}
