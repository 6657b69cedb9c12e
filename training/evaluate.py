"""Evaluate a trained model folder, and its classic baselines, on held-out recordings."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.latency_defaults import DEFAULT_SMOOTHING_MS
from neurohand.decoder.postprocess import rest_probability
from neurohand.decoder.recording import Recording

from .baselines import baseline_names, load_baselines
from .data import TrainingDataError, adapt_frames, build_frames, class_mismatch
from .metrics import classification_metrics, decoder_summary, regression_metrics
from .model import predict_sequences
from .model_dir import adapter_of, feature_config_of, lead_ms_of, load_model_dir
from .verdict import decide


def check_contract(meta: Dict[str, Any], recordings: Sequence[Recording], *, what: str = "Test recording") -> None:
    """Refuse recordings whose rate, channel count, kind or class names differ from what the model was trained on."""
    for i, r in enumerate(recordings):
        where = r.path or r.metadata.get("source")  # the file given, not the one it was once imported from
        name = "{} {}{}".format(what, i, " ({})".format(where) if where else "")
        if r.n_channels != meta["n_channels"]:
            raise TrainingDataError("{} has {} channels; the model expects {} ({})".format(
                name, r.n_channels, meta["n_channels"], ", ".join(meta["channel_names"])))
        if float(r.fs_hz) != float(meta["fs_hz"]):
            raise TrainingDataError("{} is sampled at {} Hz; the model expects {} Hz".format(
                name, r.fs_hz, meta["fs_hz"]))
        if r.signal_kind != meta["signal_kind"]:
            raise TrainingDataError("{} is '{}'; the model was trained on '{}'".format(
                name, r.signal_kind, meta["signal_kind"]))
        if r.has_labels and meta["model_config"]["n_classes"] > 1 and list(r.class_names) != meta["class_names"]:
            raise TrainingDataError(class_mismatch(
                name, r.class_names, "the model was trained on", meta["class_names"],
                other="re-import the training data with --class-names {} and train again"))


def results_table(results: Dict[str, Dict[str, Any]], title: str):
    """Return the ``rich`` table of ``results`` (decoder -> metrics): :func:`training.summary.scores_table`."""
    from .summary import scores_table

    return scores_table(results, title=title)


def evaluate(model_dir: str, recordings: Sequence[Recording], *, report_dir: Optional[str] = None,
             title: str = "neurohand evaluation", notes: Sequence[str] = (),
             previous: Optional[Tuple[str, Dict[str, Any]]] = None,
             quality: Optional[Dict[str, Any]] = None, patient_id: Optional[str] = None) -> Dict[str, Any]:
    """Metrics of the recurrent decoder and every baseline on ``recordings``, and the verdict on the decoder.

    ``previous`` is the patient's current version as ``(name, its metrics on the same recordings)``, compared in the
    verdict and shown beside the new model in the report; ``quality`` the session's signal-quality verdict, shown in
    the report; ``patient_id`` the patient a calibration's model is for (None: a researcher's evaluation).

    Returns
    -------
    dict
        ``{"decoders": {name: {"r2_mean", "r2_per_finger", "pearson_r_mean", "rmse_mean", "accuracy",
        "macro_f1", "delay_ms", "confusion_matrix"}}, "verdict": {"ready": bool, "summary": str, "reasons":
        [str]}, "test_frames": int, "report": path or None}``; the recurrent decoder comes first.
    """
    model, meta = load_model_dir(model_dir)
    check_contract(meta, recordings)
    frames = adapt_frames(build_frames(recordings, feature_config_of(meta)), adapter_of(meta))
    cell = meta["model_config"]["cell"]
    n_classes = meta["model_config"]["n_classes"]
    pos, prob = predict_sequences(model, frames.features, frames.segment_slices())
    decode_pos = frames.positions is not None and meta["model_config"]["positions"]
    decode_cls = frames.labels is not None and n_classes > 1
    results: Dict[str, Dict[str, Any]] = {}
    predictions: Dict[str, np.ndarray] = {}
    confusion: Dict[str, Any] = {}
    reg = regression_metrics(frames.positions, pos, frames.hop_ms) if decode_pos else None
    cls = classification_metrics(frames.labels, prob.argmax(1), n_classes) if decode_cls else None
    results[cell] = decoder_summary(reg, cls)
    if decode_pos:
        predictions[cell] = pos
    if decode_cls:
        confusion[cell] = cls["confusion_matrix"]
    descriptions = {cell: "{} {}x{}{}, best epoch {}".format(
        cell.upper(), meta["model_config"]["layers"], meta["model_config"]["hidden"],
        ", projection {}".format(meta["model_config"]["projection"]) if meta["model_config"]["projection"] else "",
        meta.get("best_epoch"))}
    bpath = os.path.join(model_dir, "baselines.npz")
    if os.path.exists(bpath):
        baselines = load_baselines(bpath)
        for name in baseline_names(baselines):
            b = baselines[name]
            descriptions[name] = b.describe()
            if name in ("wiener", "kalman"):
                if not decode_pos:
                    continue
                p = b.predict(frames)
                predictions[name] = p
                results[name] = decoder_summary(regression_metrics(frames.positions, p, frames.hop_ms), None)
            else:
                if frames.labels is None:
                    continue
                c = classification_metrics(frames.labels, b.predict(frames), n_classes)
                results[name] = decoder_summary(None, c)
                confusion[name] = c["confusion_matrix"]
    decision = decide(results[cell], {n: r for n, r in results.items() if n != cell},
                      previous[1] if previous else None, current_name=previous[0] if previous else "")
    out: Dict[str, Any] = {"decoders": results, "test_frames": len(frames), "report": None,
                           "verdict": {"ready": decision.accept, "summary": decision.summary,
                                       "reasons": list(decision.reasons)}}
    if report_dir:
        from .report import write_report

        tradeoff = None
        if decode_pos:
            from .latency_tradeoff import smoothing_tradeoff

            tradeoff = {"points": smoothing_tradeoff(frames.positions, pos, rest_probability(prob),
                                                     frames.segment_slices(), frames.hop_ms),
                        "chosen_ms": DEFAULT_SMOOTHING_MS, "lead_ms": lead_ms_of(meta),
                        "window_ms": float(feature_config_of(meta).window_ms)}

        out["report"] = write_report(
            report_dir, results=results, descriptions=descriptions, truth=frames.positions if predictions else None,
            predictions=predictions, hop_ms=frames.hop_ms, confusion=confusion, class_names=meta["class_names"],
            history=meta.get("history", []), title=title, notes=notes, candidate=cell, previous=previous,
            quality=quality, tradeoff=tradeoff, patient_id=patient_id)
    return out
