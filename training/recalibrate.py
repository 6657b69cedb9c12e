"""Recalibration across days: adapt an accepted model to a short recording of a new day, and never make it worse.

Signals drift between days (electrode contact changes every channel's gain, a few units are lost or gained, the
noise floor moves), while what the patient's nervous system does with a finger does not. Recalibration therefore
keeps the recurrent core and tries, on part of the new recording, a few ways of adapting what sits between the
electrodes and the core:

``renormalise``
    the feature adaptation's prior and the model's normalisation are recomputed on the new recording (absorbs gain
    and noise-floor changes; no weight moves);
``refit_pool``
    the above, and the pooled class output's discriminant (a model with ``class_pool``) refitted on the new frames;
``fine_tune``
    the above without the pool refit, and the input layer (the projection when the model has one, else the first
    recurrent layer's input weights; with ``train_heads`` also the heads) fine-tuned, early-stopped on the held-out
    part.

Each candidate and the unchanged source model are scored on a held-out part of the new recording (its last
repetition, or with one repetition the last ``holdout_fraction`` of every continuous stretch, past a gap of one
feature window), and the best one is kept; a tie keeps the source. So the saved model never scores below the source
on that part: recalibration on real EMG (issue 26) used to fine-tune for a fixed 20 epochs and drop the pooled class
output when the new recording had one repetition, and made every model worse without saying so
(docs/results.md, recalibration on 3DC). With ``keep='new'`` the best candidate is kept even when the source scores
better (for studies). The saved model is exactly the one scored: nothing is refitted on the held-out part afterwards.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from neurohand.decoder.recording import Recording
from neurohand.decoder.validation import check_int, check_option, check_positive, invalid_value

from .baselines import fit_baselines
from .config import TrainConfig, with_overrides
from .data import (
    TrainingDataError,
    adapt_frames,
    build_frames,
    check_compatible,
    holdout_mask,
    normalisation,
    overlap_frames,
)
from .evaluate import check_contract
from .loop import Progress, distributed_env, evaluate_frames, fit, validation_score
from .model import RecurrentDecoder
from .model_dir import adapter_of, feature_config_of, lead_ms_of, load_model_dir, prior_adapter, save_model_dir
from .train import TrainResult, set_class_pool

STRATEGIES = ("renormalise", "refit_pool", "fine_tune")
"""Candidates besides the unchanged source model, in the order a tie prefers them (the source first of all)."""

KEEP = ("better", "new")


@dataclass(frozen=True)
class RecalibrationConfig:
    """What recalibration tries and how it chooses.

    Parameters
    ----------
    strategies : tuple of str
        Candidates from :data:`STRATEGIES` tried besides the unchanged source model.
    epochs : int
        Most fine-tuning epochs; the epoch scoring best on the held-out part is kept.
    lr : float
        Peak learning rate of the fine-tuning's one-cycle schedule.
    patience : int
        Fine-tuning stops after this many epochs without a better held-out score.
    renormalise : bool
        The adapted candidates start from statistics recomputed on the new recording (off: the source's
        normalisation and adaptation prior are kept, and ``'renormalise'`` is not tried).
    train_heads : bool
        Fine-tuning also adapts the output heads.
    holdout_fraction : float
        With one repetition, the share of every continuous stretch held out (its end), in (0, 0.5].
    keep : {'better', 'new'}
        ``'better'``: the best scoring of the source and the candidates (a tie keeps the source); ``'new'``: the best
        candidate even when the source scores better.
    seed : int
    """

    strategies: Tuple[str, ...] = ("renormalise", "fine_tune")
    epochs: int = 20
    lr: float = 1e-3
    patience: int = 4
    renormalise: bool = True
    train_heads: bool = False
    holdout_fraction: float = 0.3
    keep: str = "better"
    seed: int = 0

    def __post_init__(self) -> None:
        strategies = tuple(self.strategies)
        if not strategies:
            raise invalid_value("strategies", "expected at least one of {}".format(STRATEGIES))
        for s in strategies:
            check_option("strategies", s, STRATEGIES)
        object.__setattr__(self, "strategies", tuple(s for s in STRATEGIES if s in strategies))
        check_int("epochs", self.epochs, minimum=1)
        check_positive("lr", self.lr)
        check_int("patience", self.patience, minimum=1)
        check_positive("holdout_fraction", self.holdout_fraction)
        if self.holdout_fraction > 0.5:
            raise invalid_value("holdout_fraction", "expected a share in (0, 0.5], got {}".format(
                self.holdout_fraction))
        check_option("keep", self.keep, KEEP)
        check_int("seed", self.seed, minimum=0)


@dataclass(frozen=True)
class RecalibrationResult:
    """What :func:`recalibrate` did.

    Attributes
    ----------
    model_dir : str
    kept : str
        ``'source'`` or the strategy whose model was saved.
    metric : str
        ``'r2_mean'`` (positions) or ``'accuracy'`` (classes only).
    scores : tuple of (str, float)
        Held-out score of the source and of each candidate, in the order tried.
    held_out : str
        Which part of the new recording was held out, in words.
    held_out_frames : int
    fresh_lda : float or None
        Class accuracy on the held-out part of an LDA fitted on the rest of the new recording (the classic
        decoder a clinic would otherwise fit); None without classes.
    fine_tune_epochs : int
        Epochs of the fine-tuned candidate's kept state (0 when not tried).
    val_metrics : dict
        Every metric of the kept model on the held-out part.
    wall_s : float
    """

    model_dir: str
    kept: str
    metric: str
    scores: Tuple[Tuple[str, float], ...]
    held_out: str
    held_out_frames: int
    fresh_lda: Optional[float]
    fine_tune_epochs: int
    val_metrics: Dict[str, object] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def metric_label(self) -> str:
        """The metric in words: ``'finger R²'`` or ``'class accuracy'``."""
        return "finger R²" if self.metric == "r2_mean" else "class accuracy"

    def score_of(self, name: str) -> float:
        """Held-out score of ``'source'`` or a strategy."""
        return dict(self.scores)[name]

    def lines(self) -> List[str]:
        """Return the side-by-side comparison, one line per model, the kept one marked."""
        out = ["held out for the choice: {} ({} frames); {} on it:".format(self.held_out, self.held_out_frames,
                                                                           self.metric_label)]
        width = max(len(n) for n, _ in self.scores + (("fresh LDA", 0.0),))
        for name, score in self.scores:
            out.append("  {:<{w}}  {:.3f}{}".format(name, score, "  <- kept" if name == self.kept else "", w=width))
        if self.fresh_lda is not None:
            out.append("  {:<{w}}  {:.3f}  (fitted on the rest of the new recording; for comparison)".format(
                "fresh LDA", self.fresh_lda, w=width))
        return out


def input_layer_parameters(model: RecurrentDecoder) -> List[str]:
    """Names of the parameters fine-tuning adapts: the projection, or the first layer's input weights."""
    if model.config.projection:
        return [n for n, _ in model.named_parameters() if n.startswith("proj.")]
    return ["rnn.weight_ih_l0", "rnn.bias_ih_l0"]


def choose(scores: Sequence[Tuple[str, float]], *, keep: str = "better") -> str:
    """Return the name to keep from ``(name, held-out score)`` pairs, the source's first.

    ``keep='better'``: the highest score; of equal scores the first (a tie keeps the source, then the smaller
    change). ``keep='new'``: the same among the candidates, the source only when nothing else was scored.
    """
    check_option("keep", keep, KEEP)
    pool = [s for s in scores if s[0] != "source"] if keep == "new" else []
    return max(pool or list(scores), key=lambda s: s[1])[0]  # max returns the first of equals


def recalibrate(model_dir: str, recordings: Sequence[Recording], out_dir: str, *,
                config: RecalibrationConfig = RecalibrationConfig(), progress: bool = False,
                log: Callable[[str], None] = print, source_files: Sequence[str] = ()) -> RecalibrationResult:
    """Adapt the model in ``model_dir`` to ``recordings``, keep the best of it and the source, write ``out_dir``.

    The new model folder has the same format as :func:`training.train.train` writes (it exports, evaluates and
    is accepted the same way); its ``model.json`` records ``recalibrated_from``, which model was kept and every
    candidate's held-out score. The classic baselines are fitted on the new recording's adapted part.

    Raises
    ------
    TrainingDataError
        The new recordings have no usable labels, do not match the model's channels and rate, or are too short to
        hold a part out.
    """
    t0 = time.perf_counter()
    source, meta = load_model_dir(model_dir)
    fcfg = feature_config_of(meta)
    check_compatible(recordings)
    rec0 = recordings[0]
    if rec0.n_channels != meta["n_channels"] or abs(rec0.fs_hz - meta["fs_hz"]) > 1e-6:
        raise TrainingDataError("Recalibration data has {} channels at {:g} Hz but the model expects {} at {:g} Hz; "
                                "record with the same interface settings".format(
                                    rec0.n_channels, rec0.fs_hz, meta["n_channels"], meta["fs_hz"]))
    check_contract(meta, recordings, what="Recalibration recording")
    lead_ms = lead_ms_of(meta)
    raw = build_frames(recordings, fcfg, target_lead_ms=lead_ms)  # fine-tuning learns the model's own targets
    # the held-out scores, like every evaluation, are against each frame's own time
    raw_now = raw if lead_ms == 0 else build_frames(recordings, fcfg)
    fit_mask, held_mask, held_what = holdout_mask(raw, fraction=config.holdout_fraction,
                                                  gap_frames=overlap_frames(fcfg))
    source_adapter = adapter_of(meta)
    tcfg = with_overrides(TrainConfig.from_dict(meta["train_config"]),
                          {"schedule.epochs": config.epochs, "schedule.lr": config.lr,
                           "schedule.patience": config.patience, "schedule.min_epochs": 1, "refit.enabled": False},
                          seed=config.seed, device="cpu")
    cpu = torch.device("cpu")

    def split(adapter):
        """Adapted frames to learn from (targets ``lead_ms`` ahead) and to score on (targets at the frame)."""
        adapted = adapt_frames(raw, adapter)  # causal over the whole recording, as it runs live
        now = adapted if raw_now is raw else replace(adapted, positions=raw_now.positions, labels=raw_now.labels)
        return adapted.subset(fit_mask), now.subset(held_mask)

    held_src = split(source_adapter)[1]
    candidates = {"source": (source, source_adapter, held_src, evaluate_frames(source, held_src, cpu))}
    metric = "r2_mean" if candidates["source"][3].get("r2_mean") is not None else "accuracy"
    adapter = prior_adapter(source_adapter.config, raw.subset(fit_mask)) if (
        config.renormalise and source_adapter is not None) else source_adapter
    fit_f, held_f = split(adapter)
    base = copy.deepcopy(source)
    if config.renormalise:
        base.set_normalisation(*normalisation(fit_f.features))
    if "renormalise" in config.strategies and config.renormalise:
        candidates["renormalise"] = (base, adapter, held_f, evaluate_frames(base, held_f, cpu))
    baselines: Dict[str, object] = {}
    try:
        baselines = fit_baselines(fit_f, held_f)
    except Exception as e:  # noqa: BLE001 - a baseline that cannot be fitted on a short recording is only a comparison
        log("classic baselines not fitted on the new recording: {}".format(e))
    if "refit_pool" in config.strategies and base.pools_classes:
        pooled = copy.deepcopy(base)
        if set_class_pool(pooled, baselines.get("lda"), fit_f, held_f, log=log):
            candidates["refit_pool"] = (pooled, adapter, held_f, evaluate_frames(pooled, held_f, cpu))
    trainable = set(input_layer_parameters(source))
    if config.train_heads:
        trainable |= {n for n, _ in source.named_parameters() if n.startswith(("position_head.", "class_head."))}
    fine_tune_epochs = 0
    if "fine_tune" in config.strategies:
        tuned = copy.deepcopy(base)
        for name, p in tuned.named_parameters():
            p.requires_grad_(name in trainable)
        log("fine-tuning {} of {} parameters ({}) on {} frames, at most {} epochs".format(
            sum(p.numel() for p in tuned.parameters() if p.requires_grad),
            sum(p.numel() for p in tuned.parameters()), ", ".join(sorted(trainable)), len(fit_f), config.epochs))
        bar = Progress(enabled=progress, total=config.epochs, description="fine-tuning")
        try:
            run = fit(tuned, fit_f, held_f, tcfg, fcfg, rec0.n_channels, cpu, distributed_env(), stop_after=None,
                      bar=bar, seed_offset=7)
        finally:
            bar.close()
        for p in tuned.parameters():
            p.requires_grad_(True)
        tuned.eval()
        fine_tune_epochs = run.best_epoch
        if fine_tune_epochs > 0:
            candidates["fine_tune"] = (tuned, adapter, held_f, evaluate_frames(tuned, held_f, cpu))
    scores = tuple((name, validation_score(c[3])) for name, c in candidates.items())
    kept = choose(scores, keep=config.keep)
    model, kept_adapter, kept_held, kept_metrics = candidates[kept]
    lda = baselines.get("lda")
    fresh_lda = float(np.mean(lda.predict(held_f) == held_f.labels)) if lda is not None else None
    result = RecalibrationResult(
        model_dir=out_dir, kept=kept, metric=metric, scores=scores, held_out=held_what,
        held_out_frames=int(held_mask.sum()), fresh_lda=fresh_lda,
        fine_tune_epochs=fine_tune_epochs if kept == "fine_tune" else 0, val_metrics=kept_metrics,
        wall_s=time.perf_counter() - t0)
    moved = sorted(trainable) if kept == "fine_tune" else (
        ["pool_weight", "pool_bias"] if kept == "refit_pool" else [])
    train_result = TrainResult(model_dir=out_dir, best_epoch=result.fine_tune_epochs,
                               epochs_run=result.fine_tune_epochs, interrupted=False, val_metrics=kept_metrics,
                               history=list(run.history) if kept == "fine_tune" else [], wall_s=result.wall_s)
    held_reps = sorted(int(r) for r in np.unique(raw.repetitions[held_mask]) if r > 0)
    save_model_dir(out_dir, model, fcfg, rec0, tcfg, train_result, baselines, source_files, held_reps,
                   adapter=kept_adapter,
                   extra={"recalibrated_from": os.path.abspath(model_dir),
                          "adaptation_decision": {
                              "adapt": "kept", "mix_drift": None, "max_mix_drift": None,
                              "on": kept_adapter is not None,
                              "reason": "recalibration keeps the model's adaptation{}".format(
                                  "" if kept_adapter is None else (
                                      ", its prior recomputed on the new session" if kept_adapter is not
                                      source_adapter else ", with its prior"))},
                          "recalibration": dict(asdict(config), kept=kept, metric=metric,
                                                scores=dict(scores), held_out=held_what, fresh_lda=fresh_lda,
                                                trained_parameters=moved)})
    return result


def frozen_core_unchanged(before: RecurrentDecoder, after: RecurrentDecoder, *, trained: Optional[Sequence[str]] = None
                          ) -> bool:
    """Check that every parameter outside ``trained`` is bit-identical (used by tests and the CLI's summary)."""
    trained = set(trained if trained is not None else input_layer_parameters(before))
    a, b = dict(before.named_parameters()), dict(after.named_parameters())
    return all(torch.equal(a[n], b[n]) for n in a if n not in trained)


__all__ = ["RecalibrationConfig", "RecalibrationResult", "STRATEGIES", "KEEP", "recalibrate", "choose", "holdout_mask",
           "input_layer_parameters", "frozen_core_unchanged"]
