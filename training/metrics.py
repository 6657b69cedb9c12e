"""Decoding metrics: regression (R^2, Pearson r, RMSE, delay) and classification (accuracy, macro F1)."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np


def r2_per_finger(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column, shape (5,), from arrays of shape (n, 5)."""
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64)
    ss_res = np.sum((y_true - y_pred) ** 2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    return 1.0 - ss_res / np.maximum(ss_tot, 1e-12)


def pearson_per_finger(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation per column, shape (5,)."""
    a = np.asarray(y_true, np.float64) - np.mean(y_true, axis=0)
    b = np.asarray(y_pred, np.float64) - np.mean(y_pred, axis=0)
    den = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0))
    return np.sum(a * b, axis=0) / np.maximum(den, 1e-12)


def rmse_per_finger(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Root mean square error per column, shape (5,)."""
    return np.sqrt(np.mean((np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)) ** 2, axis=0))


def decoding_delay_ms(y_true: np.ndarray, y_pred: np.ndarray, hop_ms: float, *, max_lag_ms: float = 500.0) -> float:
    """Effective decoding delay: the lag (ms) that maximises the cross-correlation of prediction and truth.

    Positive means the prediction lags behind the true movement. Summed over fingers after removing each
    column's mean.
    """
    t = np.asarray(y_true, np.float64) - np.mean(y_true, axis=0)
    p = np.asarray(y_pred, np.float64) - np.mean(y_pred, axis=0)
    max_lag = int(round(max_lag_ms / hop_ms))
    max_lag = min(max_lag, len(t) - 2)
    best, best_lag = -np.inf, 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            c = np.mean(t[: len(t) - lag] * p[lag:])
        else:
            c = np.mean(t[-lag:] * p[: len(p) + lag])
        if c > best:
            best, best_lag = c, lag
    return float(best_lag * hop_ms)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Count decisions, shape (n_classes, n_classes): row = true class, column = predicted."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean F1 over the classes present in truth or prediction."""
    tp = np.diag(cm).astype(float)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return float(f1[present].mean()) if present.any() else 0.0


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, hop_ms: float) -> Dict[str, object]:
    """R^2, Pearson r and RMSE per finger and their means, and the decoding delay."""
    r2 = r2_per_finger(y_true, y_pred)
    r = pearson_per_finger(y_true, y_pred)
    rmse = rmse_per_finger(y_true, y_pred)
    return {
        "r2_mean": float(np.mean(r2)),
        "r2_per_finger": [float(v) for v in r2],
        "pearson_r_mean": float(np.mean(r)),
        "pearson_r_per_finger": [float(v) for v in r],
        "rmse_mean": float(np.mean(rmse)),
        "rmse_per_finger": [float(v) for v in rmse],
        "delay_ms": decoding_delay_ms(y_true, y_pred, hop_ms),
    }


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> Dict[str, object]:
    """Accuracy, macro F1 and the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "macro_f1": macro_f1(cm),
        "confusion_matrix": cm.tolist(),
    }


def decoder_summary(regression: Optional[Dict[str, object]], classification: Optional[Dict[str, object]]) -> Dict:
    """Return the per-decoder record of ``neurohand evaluate --json`` (null where there is no such output)."""
    reg = regression or {}
    cls = classification or {}
    keys: List[str] = ["r2_mean", "r2_per_finger", "pearson_r_mean", "rmse_mean", "delay_ms"]
    out = {k: reg.get(k) for k in keys}
    out["accuracy"] = cls.get("accuracy")
    out["macro_f1"] = cls.get("macro_f1")
    out["confusion_matrix"] = cls.get("confusion_matrix")
    return out
