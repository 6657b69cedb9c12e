"""Evaluation reports: PNG plots and a self-contained ``report.html`` (no internet needed)."""

from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.vocabulary import FINGERS

from .verdict import Thresholds


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_traces(path: str, truth: np.ndarray, predictions: Dict[str, np.ndarray], hop_ms: float,
                *, seconds: float = 30.0, start: int = 0) -> None:
    """Predicted vs true finger positions over a stretch of the test set, one panel per finger."""
    plt = _plt()
    n = min(len(truth) - start, int(seconds * 1000.0 / hop_ms))
    t = np.arange(n) * hop_ms / 1000.0
    fig, axes = plt.subplots(5, 1, figsize=(11, 9), sharex=True)
    for j, ax in enumerate(axes):
        ax.plot(t, truth[start:start + n, j], color="black", lw=1.6, label="true")
        for name, pred in predictions.items():
            ax.plot(t, pred[start:start + n, j], lw=1.0, label=name)
        ax.set_ylabel(FINGERS[j])
        ax.set_ylim(-0.05, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(labels), fontsize=9,
               frameon=False)  # above the panels, never over a trace
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("Finger positions: decoded vs true (0 open, 1 flexed)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_r2_bars(path: str, r2: Dict[str, Sequence[float]], *, threshold: Optional[float] = None) -> None:
    """Per-finger R^2 bars for every decoder, the legend beside the axes (never over a bar)."""
    plt = _plt()
    fig = r2_bars_figure(r2, threshold=threshold)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def r2_bars_figure(r2: Dict[str, Sequence[float]], *, threshold: Optional[float] = None):
    """Return the figure of :func:`plot_r2_bars` (``r2``: decoder name -> 5 values), laid out, not saved."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 4))
    names = list(r2)
    width = 0.8 / max(len(names), 1)
    x = np.arange(5)
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, r2[name], width, label="{} (mean {:.2f})".format(
            name, float(np.mean(r2[name]))))
    ax.set_xticks(x)
    ax.set_xticklabels(FINGERS)
    ax.axhline(0, color="black", lw=0.8)
    if threshold is not None:
        ax.axhline(threshold, color="tab:green", lw=1.0, ls="--", label="pass at {:.2f}".format(threshold))
    low = min([0.0] + [float(v) for vals in r2.values() for v in vals])
    ax.set_ylim(max(low - 0.05, -1.0), 1.0)
    ax.set_ylabel("R$^2$ (1 = perfect)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_title("Finger tracking R$^2$ per finger on the test data")
    fig.tight_layout()
    return fig


def plot_confusion(path: str, cm: np.ndarray, class_names: Sequence[str], title: str) -> None:
    """Row-normalised confusion matrix."""
    plt = _plt()
    cm = np.asarray(cm, float)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.5 * k, 0.8 + 0.5 * k))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xticklabels(class_names, rotation=60, ha="right", fontsize=7)
    ax.set_yticklabels(class_names, fontsize=7)
    for i in range(k):
        for j in range(k):
            if norm[i, j] >= 0.01:
                ax.text(j, i, "{:.2f}".format(norm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_training_curves(path: str, history: List[Dict[str, float]]) -> None:
    """Training loss and validation score per epoch."""
    plt = _plt()
    fig, ax1 = plt.subplots(figsize=(8, 3.5))
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["train_loss"] for h in history], color="tab:blue", label="training loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss", color="tab:blue")
    scored = [h for h in history if "val_score" in h]  # an epoch without a validation part is unscored
    if scored:
        ax2 = ax1.twinx()
        ax2.plot([h["epoch"] for h in scored], [h["val_score"] for h in scored], color="tab:orange",
                 label="validation score")
        ax2.set_ylabel("validation R$^2$ (or accuracy)", color="tab:orange")
    fig.suptitle("Training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(report_dir: str, *, results: Dict[str, Dict[str, Any]], descriptions: Dict[str, str],
                 truth: Optional[np.ndarray], predictions: Dict[str, np.ndarray], hop_ms: float,
                 confusion: Optional[Dict[str, Any]], class_names: Sequence[str], history: List[Dict[str, float]],
                 title: str, notes: Sequence[str] = (), candidate: Optional[str] = None,
                 previous: Optional[Tuple[str, Dict[str, Any]]] = None, quality: Optional[Dict[str, Any]] = None,
                 thresholds: Optional[Thresholds] = None, tradeoff: Optional[Dict[str, Any]] = None,
                 patient_id: Optional[str] = None) -> str:
    """Write the plots and ``report.html``, which starts with the verdict line; returns the HTML path.

    ``candidate`` is the decoder the bundle exports (default: the first of ``results``); ``previous`` the patient's
    current version as ``(name, metrics on the same test data)``; ``quality`` the session's signal-quality verdict
    (``calibration.quality.quality_summary``); ``tradeoff`` the candidate's delay against R^2 at each smoothing
    (``{"points": latency_tradeoff.smoothing_tradeoff(...), "chosen_ms", "lead_ms", "window_ms"}``);
    ``patient_id`` the patient a calibration's model is for (None: a researcher's evaluation, no patient).
    """
    from . import report_html as rh
    from .verdict import decide

    thresholds = thresholds or Thresholds()
    candidate = candidate or next(iter(results))
    decision = decide(results[candidate], {n: r for n, r in results.items() if n != candidate},
                      previous[1] if previous else None, current_name=previous[0] if previous else "",
                      thresholds=thresholds)
    os.makedirs(report_dir, exist_ok=True)
    images = []
    if truth is not None and predictions:
        plot_traces(os.path.join(report_dir, "traces.png"), truth, predictions, hop_ms)
        images.append(("traces.png", "Decoded against true finger positions (first 30 s of the test repetition)"))
        r2 = {n: r["r2_per_finger"] for n, r in results.items() if r.get("r2_per_finger") is not None}
        plot_r2_bars(os.path.join(report_dir, "r2_per_finger.png"), r2, threshold=thresholds.finger_r2)
        images.append(("r2_per_finger.png", "Finger tracking R² per finger, every decoder"))
    if tradeoff:
        from .latency_tradeoff import plot_tradeoff

        plot_tradeoff(os.path.join(report_dir, "latency.png"), tradeoff["points"], chosen_ms=tradeoff["chosen_ms"])
        images.append(("latency.png", "Delay against accuracy: {}'s commands at each smoothing (trained {:g} ms "
                       "ahead, {:g} ms windows)".format(candidate, tradeoff["lead_ms"], tradeoff["window_ms"])))
    if confusion:
        for name, cm in confusion.items():
            fn = "confusion_{}.png".format(name)
            plot_confusion(os.path.join(report_dir, fn), np.asarray(cm), class_names, "Confusion matrix: " + name)
            images.append((fn, "Movement classes: {} (rows: the true movement, normalised)".format(name)))
    if history:
        plot_training_curves(os.path.join(report_dir, "training_curves.png"), history)
        images.append(("training_curves.png", "Training loss and validation score per epoch"))
    sections = [rh.thresholds_note(thresholds)]
    sections += ["<p>{}</p>".format(html.escape(n)) for n in notes]
    sections.append("<h2>Decoders on the held-out test data</h2>")
    sections.append(rh.decoders_table(results, descriptions, candidate, previous, patient_id=patient_id))
    if results[candidate].get("r2_per_finger") is not None:
        sections.append("<h2>Each finger</h2>")
        sections.append(rh.hands_row(results, candidate, previous, thresholds))
        sections.append(rh.fingers_table(results, candidate, decision, previous, thresholds))
    sections.append(rh.quality_section(quality))
    for fn, caption in images:
        sections.append("<h2>{}</h2><img src='{}' alt='{}'>".format(html.escape(caption), fn, html.escape(caption)))
    raw = dict(results, **({previous[0] + " (current)": previous[1]} if previous else {}))
    sections.append("<details><summary>Raw metrics (JSON, for researchers)</summary><pre>{}</pre></details>".format(
        html.escape(json.dumps(raw, indent=1))))
    path = os.path.join(report_dir, "report.html")
    with open(path, "w", encoding="utf-8") as f:
        f.write(rh.page(title, decision, sections))
    return path
