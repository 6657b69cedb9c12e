"""Training a decoder: seeded, early-stopped, resumable from Ctrl-C, single process or torchrun (DDP).

:func:`train` runs the two phases (the first early-stopped on the validation repetitions, then the refit on all the
data) and writes the model folder.

The settings are :mod:`training.config`'s, the optimiser loop is :mod:`training.loop`'s, the folder layout is
:mod:`training.model_dir`'s.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

import numpy as np
import torch

from neurohand.decoder.feature_config import FeatureConfig, config_for_recording
from neurohand.decoder.recording import Recording

from .baselines import LdaDecoder, fit_baselines
from .config import TrainConfig, with_overrides
from .data import FrameSet, adapt_frames, build_frames, holdout_mask, overlap_frames, validation_split
from .loop import Progress, build_model, distributed_env, evaluate_frames, fit, resolve_device
from .model import RecurrentDecoder
from .model_dir import TrainResult, prior_adapter, save_model_dir
from .parallel_refit import ParallelRefit, RecentStates, RefitDidNotStart, spawn_reruns_caller, usable_cores
from .summary import validation_scores

__all__ = ["TrainConfig", "TrainResult", "set_class_pool", "train", "with_overrides"]


@contextlib.contextmanager
def _one_thread_each(enabled: bool) -> Iterator[None]:
    """One torch and one BLAS thread in this process while a second process trains beside it."""
    if not enabled:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def train(
    recordings: Sequence[Recording],
    model_dir: str,
    *,
    config: TrainConfig = TrainConfig(),  # noqa: B008 (frozen: never mutated)
    feature_config: Optional[FeatureConfig] = None,
    progress: bool = True,
    fit_classic: bool = True,
    log: Callable[[str], None] = print,
    source_files: Sequence[str] = (),
    init: Optional[str] = None,
    pretraining: bool = False,
) -> TrainResult:
    """Train a recurrent decoder (and the classic baselines) and write ``model_dir``.

    Two phases: train on the training split with early stopping on the validation split; then, with
    ``config.refit.enabled``, train a fresh model on training and validation data together for the number of epochs the
    first phase found best (the validation metrics reported are those of the first phase). Ctrl-C in either phase
    keeps the best model so far.

    Parameters
    ----------
    recordings : sequence of Recording
        Compatible sessions (same channels, rate, kind, classes).
    model_dir : str
        Output folder (created).
    config : TrainConfig
    feature_config : FeatureConfig, optional
        Default: :func:`decoder.feature_config.config_for_recording` of the first recording (hop and window in whole
        samples at its rate); ``config.features`` applies to it.
    progress : bool
        Show a live progress bar (rank 0, interactive terminals).
    fit_classic : bool
        Also fit Wiener, Kalman and LDA on the same frames and split.
    init : str, optional
        A pre-trained base (:mod:`training.pretrain`) to start from: its architecture and feature configuration are
        used, its weights loaded, the person's normalisation composed with its own; every weight is fine-tuned on
        ``config``'s schedule (:func:`training.pretrain.adapt_config` gives the one chosen for adapting).
    pretraining : bool
        Train a base on many people's recordings (:mod:`training.pretrain`): each recording's
        frames z-scored by its own statistics, no LDA front end, no adaptation, no pooled class output; the model
        folder gets a ``base`` record.

    Raises
    ------
    TrainingDataError
        No usable labels, mismatched recordings, too little data for a validation split.
    """
    t_start = time.perf_counter()
    env = distributed_env()
    distributed = env["world"] > 1
    device = resolve_device(config.device, env["local_rank"])
    if distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    is_main = env["rank"] == 0
    base = None
    fit_classic = fit_classic and not pretraining  # classic decoders on many people's z-scores serve nobody
    if init is not None:
        from .pretrain import architecture_of, check_serves, load_base

        base = load_base(init)
        check_serves(base, recordings, list(source_files) or None)
        config = with_overrides(config, architecture_of(base))
    if pretraining:
        from .pretrain import pretrain_overrides

        config = with_overrides(config, pretrain_overrides())
    fcfg = base.feature_config if base is not None else config.features.apply(
        feature_config or config_for_recording(recordings[0]), recordings[0].fs_hz)
    # the model folder records the lead it was trained with, the signal kind's default included
    config = with_overrides(config, {"loss.target_lead_ms": config.loss.lead_ms_for(recordings[0].signal_kind)})
    frames = build_frames(recordings, fcfg, target_lead_ms=config.loss.target_lead_ms)
    if pretraining:
        from .pretrain import normalise_per_recording

        frames = normalise_per_recording(frames)
    adapt_cfg, adapt_decision = config.adaptation.choose(frames)
    # the prior is the statistics of every training frame, validation repetitions included: it is what the saved
    # model carries, so validation sees the adaptation the deployed model will run
    adapter = prior_adapter(adapt_cfg, frames)
    frames = adapt_frames(frames, adapter)
    if base is not None and len([r for r in np.unique(frames.repetitions) if r > 0]) < 2:
        # one repetition of a new person: the end of every stretch validates (adapting needs no more)
        fit_mask, held, _ = holdout_mask(frames, fraction=0.3, gap_frames=overlap_frames(fcfg))
        train_f, val_f, val_reps = frames.subset(fit_mask), frames.subset(held), []
    else:
        train_f, val_f, val_reps = validation_split(frames, fraction=config.val_fraction)
    n_classes = len(frames.class_names) if frames.labels is not None else 1
    n_channels = recordings[0].n_channels
    if is_main:
        log("training {} on {} frames ({} validation frames, repetitions {} held out), {} features, device {}{}"
            .format(config.model.cell.upper(), len(train_f), len(val_f), val_reps, frames.n_features, device,
                    ", {} processes".format(env["world"]) if distributed else ""))
    parallel = (config.refit.enabled and device.type == "cpu" and not distributed and config.refit.parallel
                and usable_cores() >= 2 and base is None)

    def new_model(f: FrameSet, dev: torch.device, seed_offset: int) -> RecurrentDecoder:
        m = build_model(config, f, n_classes, dev, seed_offset=seed_offset)
        if base is None:
            return m
        from .pretrain import init_from_base

        return init_from_base(m, base)

    if parallel and spawn_reruns_caller():
        parallel = False
        log("the refit runs after the first phase, not beside it: the script calling train() has no "
            "'if __name__ == \"__main__\":' block, so a second process would run it again (put the calls in one)")
    bar = Progress(enabled=progress and is_main, total=config.schedule.epochs, description="first phase")
    worker: Optional[ParallelRefit] = None
    baselines: Optional[Dict[str, object]] = None
    refit_rss_mb = 0.0
    refit_here = not parallel  # the sequential refit, after the first phase (full threads again)
    try:
        with _one_thread_each(parallel):
            model = new_model(train_f, device, 0)
            if parallel:
                worker = ParallelRefit(config=config, frames=frames, fcfg=fcfg, n_channels=n_channels,
                                       n_classes=n_classes, fit_classic=fit_classic and is_main)
            phase1 = fit(model, train_f, val_f, config, fcfg, n_channels, device, env, stop_after=None, bar=bar,
                         seed_offset=0, on_epoch=worker.on_phase1_epoch if worker else None)
            interrupted = phase1.interrupted
            model.to("cpu")
            val_metrics = evaluate_frames(model, val_f, torch.device("cpu"))
            history = list(phase1.history)
            refit_epochs = 0
            if is_main and fit_classic and not interrupted and (worker is None or worker.claim_baselines()):
                bar.phase("classic baselines (Wiener, Kalman, LDA)", total=None)
                baselines = fit_baselines(train_f, val_f)
            if config.refit.enabled and not interrupted and phase1.best_epoch > 0:
                if worker is not None:
                    bar.phase("refit on all data (second process, beside the first)", total=phase1.best_epoch)
                    try:
                        state = worker.result(phase1.best_epoch, on_epoch=bar.set_completed)
                    except KeyboardInterrupt:
                        interrupted = True
                    except RefitDidNotStart as exc:
                        log("{}: refitting after the first phase instead (a script calling train() needs its calls in "
                            "an 'if __name__ == \"__main__\":' block for the refit to run beside it)".format(exc))
                        refit_here = True
                    except RuntimeError as exc:
                        log("{}: keeping the model trained without the validation repetitions".format(exc))
                    else:
                        model = build_model(config, frames, n_classes, torch.device("cpu"), seed_offset=1)
                        model.load_state_dict(state)
                        refit_epochs = phase1.best_epoch
                        refit_rss_mb = worker.peak_rss_mb
                        if fit_classic and baselines is None:
                            baselines = worker.baselines  # fitted while it waited for the first phase
        if config.refit.enabled and not interrupted and phase1.best_epoch > 0 and refit_here:
            bar.phase("refit on all data", total=phase1.best_epoch)
            phase2 = _refit(new_model(frames, device, 1), frames, config, fcfg, n_channels, device, env, bar,
                            epochs=phase1.best_epoch)
            if phase2.model is not None:
                model, refit_epochs = phase2.model, phase2.epochs
            interrupted = phase2.interrupted
    finally:
        bar.close()
        if worker is not None:
            worker.close()
    if is_main and fit_classic and baselines is None:  # interrupted before they were fitted: still saved
        baselines = fit_baselines(train_f, val_f)
    if is_main and model.pools_classes and not pretraining:  # a base's pool waits for the person's LDA
        set_class_pool(model, (baselines or {}).get("lda"), train_f, val_f, log=log)
    if interrupted and is_main:
        log("interrupted: keeping the best model so far (epoch {}{})".format(
            phase1.best_epoch, ", before the refit" if config.refit.enabled else ""))
    val_scores = validation_scores(config.cell, val_metrics, baselines or {}, val_f, n_classes) if is_main else {}
    result = TrainResult(model_dir=model_dir, best_epoch=phase1.best_epoch, epochs_run=phase1.epochs_run,
                         interrupted=interrupted, val_metrics=val_metrics, history=history,
                         wall_s=time.perf_counter() - t_start, refit_epochs=refit_epochs,
                         refit_process_peak_rss_mb=refit_rss_mb, training_windows=phase1.windows,
                         val_scores=val_scores)
    if is_main:
        save_model_dir(model_dir, model.without_fixed_projection(), fcfg, recordings[0], config, result,
                       baselines or {}, source_files, val_reps, adapter=adapter,
                       extra=dict({"adaptation_decision": adapt_decision, "val_scores": result.val_scores},
                                  **_base_extra(recordings, source_files, base, pretraining)))
    if distributed:
        import gc

        import torch.distributed as dist

        # Free the DDP wrappers (and any gloo work they still reference) while the interpreter is fully alive:
        # tensors released by gloo's threads during interpreter shutdown abort the process (pytorch#179291).
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return result


@dataclass(frozen=True)
class RefitOutcome:
    """The second phase run in this process: the averaged model (None when interrupted) and its epochs."""

    model: Optional[RecurrentDecoder]
    epochs: int
    interrupted: bool


def _refit(refit: RecurrentDecoder, frames: FrameSet, config: TrainConfig, fcfg: FeatureConfig, n_channels: int,
           device: torch.device, env: Dict[str, int], bar: Progress, *, epochs: int) -> RefitOutcome:
    """Train ``refit`` on all ``frames`` for the first phase's best ``epochs``; average its last epochs' states."""
    recent = RecentStates(config.refit.average_epochs)

    def keep(epoch: int, m: RecurrentDecoder, improved: bool) -> bool:
        recent.add(epoch, m, earliest_choice=epoch)
        return False

    run = fit(refit, frames, None, config, fcfg, n_channels, device, env, stop_after=epochs, bar=bar, seed_offset=1,
              on_epoch=keep)
    if run.interrupted:
        return RefitOutcome(model=None, epochs=0, interrupted=True)
    refit = refit.to("cpu")
    refit.load_state_dict({k: torch.from_numpy(v) for k, v in recent.mean(run.epochs_run).items()})
    return RefitOutcome(model=refit, epochs=run.epochs_run, interrupted=False)


def _base_extra(recordings: Sequence[Recording], source_files: Sequence[str], base: Any,
                pretraining: bool) -> Dict[str, Any]:
    """``model.json`` keys of a pre-trained base (``base``) or of a model adapted from one (``init``)."""
    out: Dict[str, Any] = {}
    if pretraining:
        from .pretrain import base_record

        out["base"] = base_record(recordings, source_files)
    if base is not None:
        out["init"] = {"base": os.path.abspath(base.path), "people": list(base.record["people"]),
                       "n_recordings": base.record["n_recordings"]}
    return out


def set_class_pool(model: RecurrentDecoder, lda: Optional[LdaDecoder], train_f: FrameSet, val_f: FrameSet, *,
                   log: Callable[[str], None] = lambda m: None) -> bool:
    """Pool ``model``'s class output with ``lda`` (the LDA baseline; fitted on ``train_f`` / ``val_f`` if None).

    Returns False, leaving the class head alone, when the training frames lack a class (LDA cannot score it).
    """
    if lda is None:
        lda = LdaDecoder.fit(train_f, val_f)
    if len(lda.classes) != model.config.n_classes:
        log("the class output is not pooled with LDA: the training frames hold {} of the {} classes".format(
            len(lda.classes), model.config.n_classes))
        return False
    model.set_class_pool(lda.mean, lda.std, lda.coef, lda.intercept, lda.classes)
    return True
