"""Every decoder's validation score after ``neurohand train``: the recurrent decoder and the classic baselines.

All are scored on the same held-out validation repetitions: the recurrent decoder as the first phase left it (the
refit then learns those repetitions too), the baselines as saved (their own hyper-parameters, the ridge penalty, the
Kalman state and LDA's shrinkage, are chosen on these repetitions, which favours them slightly).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .baselines import baseline_names
from .data import FrameSet
from .metrics import classification_metrics, decoder_summary, regression_metrics

COLUMNS = (("r2_mean", "finger R²", "{:.3f}"), ("pearson_r_mean", "Pearson r", "{:.3f}"),
           ("rmse_mean", "RMSE (0..1)", "{:.3f}"), ("delay_ms", "delay (ms)", "{:.0f}"),
           ("accuracy", "class accuracy", "{:.3f}"), ("macro_f1", "macro F1", "{:.3f}"))
"""Every scores table's columns, for every command (train, evaluate, calibrate): the key in a decoder's record, its
header and its format."""


def validation_scores(cell: str, recurrent: Mapping[str, Any], baselines: Mapping[str, Any], val_f: FrameSet,
                      n_classes: int) -> Dict[str, Dict[str, Any]]:
    """Each decoder's record (:func:`training.metrics.decoder_summary`) on the validation frames ``val_f``.

    Parameters
    ----------
    cell : str
        The recurrent decoder's name (``'gru'``, ``'lstm'``).
    recurrent : dict
        Its validation metrics (:func:`training.loop.evaluate_frames`).
    baselines : dict
        Fitted baselines by name (:func:`training.baselines.fit_baselines`).
    val_f : FrameSet
    n_classes : int
    """
    reg = recurrent if recurrent.get("r2_mean") is not None else None
    cls = recurrent if recurrent.get("accuracy") is not None else None
    out = {cell: decoder_summary(reg, cls)}
    for name in baseline_names(dict(baselines)):
        b = baselines[name]
        if name in ("wiener", "kalman"):
            if val_f.positions is None:
                continue
            out[name] = decoder_summary(regression_metrics(val_f.positions, b.predict(val_f), val_f.hop_ms), None)
        elif val_f.labels is not None and n_classes > 1:
            out[name] = decoder_summary(None, classification_metrics(val_f.labels, b.predict(val_f), n_classes))
    return out


def scores_table(scores: Mapping[str, Mapping[str, Any]], *, title: Optional[str] = None, mark_best: bool = True,
                 deployed: Optional[str] = None):
    """Return the rich table of ``scores`` (decoder -> record) that every command prints.

    Only the columns some decoder has a value in (:data:`COLUMNS`); values are never cut. With ``mark_best`` the
    best value of each column is marked ``*`` (highest, lowest for RMSE; the delay is not ranked); ``deployed`` names
    the decoder that would run on the device.
    """
    from rich.table import Table

    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in scores.values())]
    best: Dict[str, float] = {}
    for k, _, _ in cols:
        values = [r[k] for r in scores.values() if r.get(k) is not None]
        if mark_best and k != "delay_ms" and len(values) > 1:
            best[k] = min(values) if k == "rmse_mean" else max(values)
    t = Table(title=title)
    t.add_column("decoder", no_wrap=True, min_width=7)
    for _, header, _ in cols:
        t.add_column(header, justify="right", min_width=6)  # a narrow terminal wraps the header, never a value
    for name, r in scores.items():
        cells: List[str] = []
        for k, _, fmt in cols:
            v = r.get(k)
            cells.append("-" if v is None else fmt.format(v) + ("*" if best.get(k) == v else ""))
        t.add_row(name + (" (deployed)" if name == deployed else ""), *cells)
    return t
