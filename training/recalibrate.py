"""Recalibration across days: adapt an accepted model to a few minutes of new data instead of starting over.

Signals drift between days (electrode contact changes every channel's gain, a few units are lost or gained, the
noise floor moves), while what the patient's nervous system does with a finger does not. So the recurrent core and
the heads keep the day-1 weights; only what sits between the electrodes and the core adapts:

1. the feature normalisation (and the running adaptation's prior, :mod:`decoder.adaptation`) is recomputed on the
   new session (absorbs gain and noise-floor changes), then
2. the input layer (the projection when the model has one, else the first recurrent layer's input weights and
   biases) is fine-tuned on the new session for a few epochs, everything else frozen.

A few thousand parameters learn from two minutes where a model trained from scratch must learn a quarter of a
million; the README's recalibration table shows the difference on the simulator's day-to-day drift.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, List, Optional, Sequence

import torch

from neurohand.decoder.recording import Recording
from neurohand.decoder.validation import check_int, check_positive

from .baselines import fit_baselines
from .config import TrainConfig, with_overrides
from .data import adapt_frames, build_frames, check_compatible, normalisation, validation_split
from .evaluate import check_contract
from .loop import Progress, distributed_env, evaluate_frames, fit
from .model import RecurrentDecoder
from .model_dir import adapter_of, feature_config_of, lead_ms_of, load_model_dir, prior_adapter, save_model_dir
from .train import TrainResult, set_class_pool


@dataclass(frozen=True)
class RecalibrationConfig:
    """How the input layer is adapted.

    Parameters
    ----------
    epochs : int
        Fine-tuning epochs (fixed: two minutes leave too little for a validation split).
    lr : float
        Peak learning rate of the one-cycle schedule.
    renormalise : bool
        Recompute the feature normalisation on the new data first.
    train_heads : bool
        Also adapt the output heads (off: the core and heads are the day-1 model's).
    seed : int
    """

    epochs: int = 20
    lr: float = 3e-3
    renormalise: bool = True
    train_heads: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1)
        check_positive("lr", self.lr)
        check_int("seed", self.seed, minimum=0)


def input_layer_parameters(model: RecurrentDecoder) -> List[str]:
    """Names of the parameters recalibration adapts: the projection, or the first layer's input weights."""
    if model.config.projection:
        return [n for n, _ in model.named_parameters() if n.startswith("proj.")]
    return ["rnn.weight_ih_l0", "rnn.bias_ih_l0"]


def recalibrate(model_dir: str, recordings: Sequence[Recording], out_dir: str, *,
                config: RecalibrationConfig = RecalibrationConfig(), progress: bool = False,
                log: Callable[[str], None] = print, source_files: Sequence[str] = ()) -> TrainResult:
    """Adapt the model in ``model_dir`` to ``recordings`` and write the result to ``out_dir``.

    The new model folder has the same format as :func:`training.train.train` writes (it exports, evaluates and
    is accepted the same way); its ``model.json`` records ``recalibrated_from`` and which parameters moved. The
    classic baselines are fitted on the same new data, so the evaluation compares like with like.

    Raises
    ------
    TrainingDataError
        The new recordings have no usable labels or do not match the model's channels and rate.
    """
    t0 = time.perf_counter()
    model, meta = load_model_dir(model_dir)
    fcfg = feature_config_of(meta)
    check_compatible(recordings)
    rec0 = recordings[0]
    if rec0.n_channels != meta["n_channels"] or abs(rec0.fs_hz - meta["fs_hz"]) > 1e-6:
        from .data import TrainingDataError

        raise TrainingDataError("Recalibration data has {} channels at {:g} Hz but the model expects {} at {:g} Hz; "
                                "record with the same interface settings".format(
                                    rec0.n_channels, rec0.fs_hz, meta["n_channels"], meta["fs_hz"]))
    check_contract(meta, recordings, what="Recalibration recording")
    frames = build_frames(recordings, fcfg, target_lead_ms=lead_ms_of(meta))  # the model's own targets
    adapter = adapter_of(meta)
    if config.renormalise and adapter is not None:  # the new session's statistics become the adaptation's prior
        adapter = prior_adapter(adapter.config, frames)
    frames = adapt_frames(frames, adapter)
    if config.renormalise:
        mean, std = normalisation(frames.features)
        model.set_normalisation(mean, std)
    if model.pools_classes:  # fine-tune the recurrent decoder alone; the pool is re-fitted on the new session below
        model.pool_weight.zero_()
        model.pool_bias.zero_()
    trainable = set(input_layer_parameters(model))
    if config.train_heads:
        trainable |= {n for n, _ in model.named_parameters() if n.startswith(("position_head.", "class_head."))}
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    tcfg = with_overrides(TrainConfig.from_dict(meta["train_config"]),
                          {"schedule.epochs": config.epochs, "schedule.lr": config.lr, "refit.enabled": False},
                          seed=config.seed, device="cpu")
    log("recalibrating {} of {} parameters ({}) on {} frames".format(
        n_trainable, sum(p.numel() for p in model.parameters()), ", ".join(sorted(trainable)), len(frames)))
    bar = Progress(enabled=progress, total=config.epochs, description="recalibrating")
    try:
        run = fit(model, frames, None, tcfg, fcfg, rec0.n_channels, torch.device("cpu"), distributed_env(),
                   stop_after=config.epochs, bar=bar, seed_offset=7)
    finally:
        bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    try:
        train_f, val_f, val_reps = validation_split(frames)
        baselines = fit_baselines(train_f, val_f)
    except Exception as e:  # too little data for the baselines' tuning split: the model itself is still fine
        log("classic baselines not fitted on the recalibration data: {}".format(e))
        baselines, val_reps = {}, []
    if model.pools_classes:
        if "lda" in baselines:
            set_class_pool(model, baselines["lda"], train_f, val_f, log=log)
        else:
            log("the class output is not pooled with LDA: LDA could not be fitted on the recalibration data")
    metrics = evaluate_frames(model, frames, torch.device("cpu"))
    result = TrainResult(model_dir=out_dir, best_epoch=run["epochs_run"], epochs_run=run["epochs_run"],
                         interrupted=run["interrupted"], val_metrics=metrics, history=run["history"])
    result.refit_epochs = 0
    result.wall_s = time.perf_counter() - t0
    save_model_dir(out_dir, model, fcfg, rec0, tcfg, result, baselines, source_files, val_reps, adapter=adapter,
                   extra={"recalibrated_from": os.path.abspath(model_dir),
                          "adaptation_decision": {
                              "adapt": "kept", "mix_drift": None, "max_mix_drift": None, "on": adapter is not None,
                              "reason": "recalibration keeps the model's adaptation{}".format(
                                  "" if adapter is None else (", its prior recomputed on the new session"
                                                              if config.renormalise else ", with its prior"))},
                          "recalibration": dict(asdict(config), trained_parameters=sorted(trainable))})
    return result


def frozen_core_unchanged(before: RecurrentDecoder, after: RecurrentDecoder, *, trained: Optional[Sequence[str]] = None
                          ) -> bool:
    """Check that every parameter outside ``trained`` is bit-identical (used by tests and the CLI's summary)."""
    trained = set(trained if trained is not None else input_layer_parameters(before))
    a, b = dict(before.named_parameters()), dict(after.named_parameters())
    return all(torch.equal(a[n], b[n]) for n in a if n not in trained)


__all__ = ["RecalibrationConfig", "recalibrate", "input_layer_parameters", "frozen_core_unchanged"]
