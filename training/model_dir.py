"""Model folders, what :func:`training.train.train` writes and everything else on the training side reads.

A folder holds ``model.safetensors`` (plain tensors), ``model.json`` (configs, normalisation, class names, history)
and the classic baselines fitted on the same frames in ``baselines.npz``. No pickle.

The training side's counterpart of :mod:`decoder.bundle`: :func:`training.export.export_bundle` turns a model folder
into a bundle.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from neurohand.decoder.adaptation import AdaptationConfig, FeatureAdapter
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.feature_config import FeatureConfig
from neurohand.decoder.recording import Recording

from .baselines import save_baselines
from .config import TrainConfig
from .data import FrameSet, TrainingDataError, normalisation
from .model import ModelConfig, RecurrentDecoder


@dataclass(frozen=True)
class TrainResult:
    """What :func:`training.train.train` produced, and what a model folder records of it."""

    model_dir: str
    best_epoch: int
    epochs_run: int
    interrupted: bool
    val_metrics: Dict[str, Any]
    history: List[Dict[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    refit_epochs: int = 0
    refit_process_peak_rss_mb: float = 0.0  # the parallel refit's own high-water mark (0 when none ran)
    training_windows: Tuple[int, int] = (0, 0)  # frames per window and windows per step the first phase used
    val_scores: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # every decoder's validation record


MODEL_FORMAT = "neurohand-model"
MODEL_FORMAT_VERSION = 3
"""2: ``model_config`` may hold ``class_pool`` and the weights ``pool_weight`` / ``pool_bias``. 3: ``train_config`` is
nested, one dict per part of :class:`training.config.TrainConfig` (2 and older: flat, migrated when loaded)."""


def save_model_dir(model_dir: str, model: RecurrentDecoder, fcfg: FeatureConfig, rec: Recording,
                   config: TrainConfig, result: TrainResult, baselines: Dict[str, object],
                   source_files: Sequence[str], val_reps: Sequence[int],
                   extra: Optional[Dict[str, Any]] = None, *, adapter: Optional[FeatureAdapter] = None) -> None:
    """Write ``model.safetensors``, ``model.json`` (with ``extra`` keys added) and ``baselines.npz``.

    ``adapter`` is the feature adaptation the model was trained behind (None: none); ``model.json`` records it
    under ``adaptation``.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all()))
    if bad:  # nothing is written: such a model outputs NaN on every frame
        raise TrainingDataError("Training produced non-finite weights (NaN or infinity) in {}: this model cannot "
                                "decode; check the sessions' signals (neurohand inspect SESSION) for absurd values"
                                .format(", ".join(bad[:6]) + (" ..." if len(bad) > 6 else "")))
    os.makedirs(model_dir, exist_ok=True)
    save_file(state, os.path.join(model_dir, "model.safetensors"))
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "feature_config": fcfg.to_dict(),
        "frame_timing": fcfg.timing(rec.fs_hz),
        "fs_hz": rec.fs_hz,
        "n_channels": rec.n_channels,
        "channel_names": list(rec.channel_names),
        "signal_kind": rec.signal_kind,
        "class_names": list(rec.class_names) if model.config.n_classes > 1 else ["rest"],
        "normalisation": {"mean": model.feature_mean.tolist(), "std": model.feature_std.tolist()},
        "adaptation": None if adapter is None else adapter.to_dict(),
        "train_config": config.to_dict(),
        "training_windows": dict(zip(("seq_len", "batch_size"), result.training_windows)),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "refit_epochs": result.refit_epochs,
        "interrupted": result.interrupted,
        "val_repetitions": [int(r) for r in val_reps],
        "val_metrics": {k: v for k, v in result.val_metrics.items() if k != "confusion_matrix"},
        "history": result.history,
        "training_files": [os.path.abspath(f) for f in source_files],
        "baselines": {name: b.describe() for name, b in baselines.items()},
        "wall_s": result.wall_s,
        "torch_version": torch.__version__,
        "host": platform.node(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }
    tmp = os.path.join(model_dir, "model.json.partial")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(tmp, os.path.join(model_dir, "model.json"))
    if baselines:
        save_baselines(os.path.join(model_dir, "baselines.npz"), baselines)


class ModelFormatError(InvalidValueError):
    """A model folder is missing files or was written by a newer neurohand."""


def load_model_dir(model_dir: str):
    """Load ``(model, meta)`` from a folder written by :func:`training.train.train` (tensors only, no pickle).

    ``meta`` is ``model.json``, its ``train_config`` in the current layout whatever format wrote it.
    """
    from safetensors.torch import load_file

    path = os.path.join(model_dir, "model.json")
    if not os.path.exists(path):
        raise ModelFormatError("{!r} is not a model folder: model.json is missing (train one with "
                               "'neurohand train')".format(model_dir))
    with open(path) as f:
        meta = json.load(f)
    if meta.get("format") != MODEL_FORMAT:
        raise ModelFormatError("{!r}: model.json 'format' is {!r}, expected {!r}".format(
            model_dir, meta.get("format"), MODEL_FORMAT))
    if int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise ModelFormatError("{!r} was written by a newer neurohand (model format {}); upgrade".format(
            model_dir, meta["format_version"]))
    if "train_config" in meta:
        try:
            meta["train_config"] = TrainConfig.from_dict(meta["train_config"]).to_dict()
        except (AttributeError, TypeError, ValueError) as e:
            raise ModelFormatError("{!r}: model.json's 'train_config' is invalid ({}); retrain or restore the model "
                                   "folder".format(model_dir, e)) from e
    model = RecurrentDecoder(ModelConfig.from_dict(meta["model_config"]))
    model.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")))
    model.eval()
    return model, meta


def feature_config_of(meta: Dict[str, Any]) -> FeatureConfig:
    """Return the feature configuration a model was trained with."""
    return FeatureConfig.from_dict(meta["feature_config"])


def lead_ms_of(meta: Dict[str, Any]) -> float:
    """Return the target lead a model was trained with (``train_config.loss.target_lead_ms``), in ms.

    A model folder from before the lead existed (None or absent) was trained against each frame's own time: 0.
    """
    return float(((meta.get("train_config") or {}).get("loss") or {}).get("target_lead_ms") or 0.0)


def prior_adapter(config: Optional[AdaptationConfig], frames: FrameSet) -> Optional[FeatureAdapter]:
    """Return a feature adapter whose prior is the statistics of raw training ``frames``; None without config."""
    if config is None:
        return None
    mean, std = normalisation(frames.features)
    return FeatureAdapter(config, hop_ms=frames.hop_ms, mean=mean, std=std)


def adapter_of(meta: Dict[str, Any]) -> Optional[FeatureAdapter]:
    """Return the feature adapter a model was trained behind (``model.json``'s ``adaptation``), or None."""
    d = meta.get("adaptation")
    if not d:
        return None
    try:
        return FeatureAdapter.from_dict(d, hop_ms=float(meta["feature_config"]["hop_ms"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFormatError("model.json's 'adaptation' is invalid ({}); retrain or restore the model folder"
                               .format(e)) from e
