"""Evaluation reports: PNG plots and a self-contained ``report.html`` (no internet needed)."""

from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from neurohand.decoder.vocabulary import FINGERS


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
    axes[0].legend(loc="upper right", ncol=len(predictions) + 1, fontsize=8)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle("Finger positions: decoded vs true (0 open, 1 flexed)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_r2_bars(path: str, r2: Dict[str, Sequence[float]]) -> None:
    """Per-finger R^2 bars for every decoder."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(r2)
    width = 0.8 / max(len(names), 1)
    x = np.arange(5)
    for i, name in enumerate(names):
        ax.bar(x + i * width - 0.4 + width / 2, r2[name], width, label="{} (mean {:.2f})".format(
            name, float(np.mean(r2[name]))))
    ax.set_xticks(x)
    ax.set_xticklabels(FINGERS)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("R$^2$")
    ax.legend(fontsize=8)
    ax.set_title("R$^2$ per finger on the test set")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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
    scored = [h for h in history if "val_score" in h]  # a recalibration runs a fixed number of epochs, unscored
    if scored:
        ax2 = ax1.twinx()
        ax2.plot([h["epoch"] for h in scored], [h["val_score"] for h in scored], color="tab:orange",
                 label="validation score")
        ax2.set_ylabel("validation R$^2$ (or accuracy)", color="tab:orange")
    fig.suptitle("Training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(v: Any) -> str:
    if v is None:
        return "&mdash;"
    if isinstance(v, float):
        return "{:.3f}".format(v)
    return html.escape(str(v))


def write_report(report_dir: str, *, results: Dict[str, Dict[str, Any]], descriptions: Dict[str, str],
                 truth: Optional[np.ndarray], predictions: Dict[str, np.ndarray], hop_ms: float,
                 confusion: Optional[Dict[str, Any]], class_names: Sequence[str], history: List[Dict[str, float]],
                 title: str, notes: Sequence[str] = ()) -> str:
    """Write the plots and ``report.html``; returns the HTML path."""
    os.makedirs(report_dir, exist_ok=True)
    images = []
    if truth is not None and predictions:
        plot_traces(os.path.join(report_dir, "traces.png"), truth, predictions, hop_ms)
        images.append(("traces.png", "Decoded vs true finger positions (first 30 s of the test set)"))
        r2 = {n: r["r2_per_finger"] for n, r in results.items() if r.get("r2_per_finger") is not None}
        plot_r2_bars(os.path.join(report_dir, "r2_per_finger.png"), r2)
        images.append(("r2_per_finger.png", "R² per finger, every decoder"))
    if confusion:
        for name, cm in confusion.items():
            fn = "confusion_{}.png".format(name)
            plot_confusion(os.path.join(report_dir, fn), np.asarray(cm), class_names, "Confusion matrix: " + name)
            images.append((fn, "Confusion matrix ({}), rows normalised".format(name)))
    if history:
        plot_training_curves(os.path.join(report_dir, "training_curves.png"), history)
        images.append(("training_curves.png", "Training loss and validation score"))
    cols = ["r2_mean", "pearson_r_mean", "rmse_mean", "delay_ms", "accuracy", "macro_f1"]
    rows = []
    for name, r in results.items():
        rows.append("<tr><th>{}</th>{}<td>{}</td></tr>".format(
            html.escape(name), "".join("<td>{}</td>".format(_fmt(r.get(c))) for c in cols),
            html.escape(descriptions.get(name, ""))))
    finger_rows = []
    for name, r in results.items():
        if r.get("r2_per_finger") is not None:
            finger_rows.append("<tr><th>{}</th>{}</tr>".format(
                html.escape(name), "".join("<td>{:.3f}</td>".format(v) for v in r["r2_per_finger"])))
    body = [
        "<!doctype html><html><head><meta charset='utf-8'><title>{}</title>".format(html.escape(title)),
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{text-align:left}"
        "img{max-width:100%;border:1px solid #eee}</style></head><body>",
        "<h1>{}</h1>".format(html.escape(title)),
        "".join("<p>{}</p>".format(html.escape(n)) for n in notes),
        "<h2>Decoders</h2><table><tr><th>decoder</th>{}<th>settings</th></tr>{}</table>".format(
            "".join("<th>{}</th>".format(c) for c in cols), "".join(rows)),
    ]
    if finger_rows:
        body.append("<h2>R² per finger</h2><table><tr><th>decoder</th>{}</tr>{}</table>".format(
            "".join("<th>{}</th>".format(f) for f in FINGERS), "".join(finger_rows)))
    for fn, caption in images:
        body.append("<h2>{}</h2><img src='{}' alt='{}'>".format(html.escape(caption), fn, html.escape(caption)))
    body.append("<h2>Raw metrics</h2><pre>{}</pre></body></html>".format(
        html.escape(json.dumps(results, indent=1))))
    path = os.path.join(report_dir, "report.html")
    with open(path, "w") as f:
        f.write("\n".join(body))
    return path
