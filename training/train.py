"""The training loop: seeded, early-stopped, resumable from Ctrl-C, single process or torchrun (DDP).

Sequences: random windows of ``seq_len`` frames (4 s by default: :meth:`TrainConfig.windows`) drawn inside
continuous segments of the training split, each started from a zero state; the first ``burn_in`` frames of a window
are not scored (the state is still settling), which is truncated back-propagation through ``seq_len`` steps.
Validation runs over whole segments with the state carried, exactly as inference does.

Checkpoints are ``model.safetensors`` (plain tensors) plus ``model.json`` (configs, normalisation, class names,
history); the classic baselines fitted on the same frames go to ``baselines.npz``. No pickle.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from neurohand.decoder.adaptation import AdaptationConfig, FeatureAdapter
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.features import FeatureConfig, config_for_recording
from neurohand.decoder.recording import Recording
from neurohand.decoder.validation import check_int, check_option, check_positive

from . import lda_front_end
from .augment import apply_gains, gain_law
from .baselines import LdaDecoder, fit_baselines, save_baselines
from .data import (
    FrameSet,
    TrainingDataError,
    adapt_frames,
    build_frames,
    movement_mix_drift,
    normalisation,
    validation_split,
)
from .metrics import classification_metrics, regression_metrics
from .model import ModelConfig, RecurrentDecoder, predict_sequences
from .parallel_refit import ParallelRefit, RecentStates, usable_cores

MODEL_FORMAT = "neurohand-model"
MODEL_FORMAT_VERSION = 2  # 2: model_config may hold class_pool and the weights pool_weight / pool_bias


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters; the defaults are the ones the README's results use.

    Parameters
    ----------
    cell : {'gru', 'lstm'}
    hidden, layers, projection, dropout
        See :class:`training.model.ModelConfig`.
    epochs : int
        Maximum epochs; an epoch draws about twice the training frames in windows.
    seq_ms : float
        Duration of a training window (truncated back-propagation length), in ms: ``round(seq_ms / hop_ms)``
        frames, 400 at the 10 ms hops of the nerve and envelope features, 200 at the 20 ms hops of EMG. Measured on
        NinaPro (three seeds): 4 s windows R^2 0.715, 2 s windows 0.685, 0.5 s windows 0.521.
    seq_len : int or None
        Frames per training window; overrides ``seq_ms``.
    frames_per_step : int
        Frames in one optimiser step: the batch is ``round(frames_per_step / seq_len)`` windows (16 of 400 frames,
        32 of 200).
    batch_size : int or None
        Windows per optimiser step; overrides ``frames_per_step``.
    burn_in : int
        Leading frames of a window left out of the loss.
    lr : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        AdamW weight decay.
    noise_std : float
        Gaussian noise added to normalised features during training.
    gain_std : float
        Standard deviation of random per-channel log-gains applied to each training window
        (:mod:`training.augment`: electrode contact changes).
    speed_std : float
        Standard deviation of a random log time-scale per training window (movements made faster or slower;
        frames and targets are resampled together). 0 disables it.
    class_weight : float
        Weight of the class cross-entropy against the position MSE.
    label_smoothing : float
        Label smoothing of the class cross-entropy.
    class_head_detached : bool
        With positions to decode, train the class head on the recurrent state without letting its gradient
        shape the core (measured on NinaPro: a shared gradient costs position R^2).
    patience : int
        Epochs without validation improvement before stopping early.
    min_epochs : int
        No early stop before this epoch (the one-cycle schedule is still near its peak learning rate).
    val_fraction : float
        Share of repetitions held out for validation (the last ones, at least one).
    device : {'auto', 'cpu', 'cuda'}
    seed : int
    max_steps_per_epoch : int
        Cap on optimiser steps per epoch (keeps CPU training time bounded on long recordings).
    min_steps_per_epoch : int
        Floor on optimiser steps per epoch (short recordings still get enough updates).
    refit : bool
        After early stopping, retrain on training + validation data for the best number of epochs (the
        validation repetitions are data the final model should learn from; measured on NinaPro: one more
        repetition of seven is worth about +0.03 R^2). It runs on the same learning-rate schedule and stops at the
        first phase's best epoch.
    refit_average_epochs : int
        The refit's weights are the mean of its weights at the end of its last this-many epochs (Polyak averaging:
        it stops where the schedule has usually not annealed yet; measured on NinaPro, three seeds: R^2 0.685 with 4
        against 0.677 with 1, and 0.686 for a refit annealed over exactly the best number of epochs). 1 = the last.
    parallel_refit : bool
        On a CPU with two or more cores (single process, not torchrun), run the refit in a second process beside
        the first phase instead of after it (:mod:`training.parallel_refit`): same result, about 1.6x less wall time
        on two cores.
    lda_front_end : bool
        For recordings with class labels and no finger positions, the recurrent core reads the normalised frames
        through LDA's discriminant projection fitted on its training frames, frozen (:mod:`training.lda_front_end`;
        folded into the first layer when saved). Measured on 3DC: mean accuracy 0.865 -> 0.886 over participants 1-5.
    class_pool : bool
        For recordings with class labels and no finger positions (as ``lda_front_end``), pool the class output with
        the LDA baseline's discriminant of the current frame (product of experts, set after training:
        :meth:`training.model.RecurrentDecoder.set_class_pool`). The recurrent state reacts to a new gesture later
        than a one-frame classifier does (3DC: 0.43 against LDA's 0.61 accuracy in the half second after each
        change, participant 5); the pooled output keeps the GRU's steadiness and LDA's speed. With positions the class
        head reads a core shaped by the positions and is far ahead of LDA, and pooling cost accuracy (NinaPro 0.844
        -> 0.822, the simulator 0.898 -> 0.881), so those sessions keep the head alone.
    adapt : {'auto', 'on', 'off'}
        Causal running re-normalisation of the feature frames (:mod:`decoder.adaptation`): each session's running
        feature statistics are mapped onto the training frames', in training, evaluation and on the device alike.
        The prior is the training frames' statistics; the model folder and the bundle carry it. The adaptation assumes
        that the mix of movements over ``adapt_horizon_s`` resembles the whole session's; ``'auto'`` turns it on only
        when the training session's class labels show that (:func:`training.data.movement_mix_drift` at most
        ``adapt_max_mix_drift``): on for protocols that interleave their movements (3DC, the calibration protocol,
        the simulator: 0.10-0.11 over 60 s), off for one that repeats each movement in a block (NinaPro: 0.37) or
        a session without class labels. Measured on NinaPro, adaptation forced on: R^2 0.635 against 0.715.
    adapt_prior_s, adapt_horizon_s, adapt_limit_sd : float
        :class:`decoder.adaptation.AdaptationConfig`.
    adapt_max_mix_drift : float
        Threshold of ``adapt='auto'``.
    """

    cell: str = "gru"
    hidden: int = 128
    layers: int = 2
    projection: int = 0
    dropout: float = 0.2
    epochs: int = 30
    seq_ms: float = 4000.0
    seq_len: Optional[int] = None
    frames_per_step: int = 6400
    batch_size: Optional[int] = None
    burn_in: int = 0
    lr: float = 3e-3
    weight_decay: float = 1e-4
    noise_std: float = 0.3
    gain_std: float = 0.2
    speed_std: float = 0.0
    class_weight: float = 1.0
    class_head_detached: bool = True
    label_smoothing: float = 0.1
    patience: int = 8
    min_epochs: int = 15
    val_fraction: float = 0.15
    device: str = "auto"
    seed: int = 0
    max_steps_per_epoch: int = 40
    min_steps_per_epoch: int = 4
    refit: bool = True
    refit_average_epochs: int = 4
    parallel_refit: bool = True
    lda_front_end: bool = True
    class_pool: bool = True
    adapt: str = "auto"
    adapt_prior_s: float = 30.0
    adapt_horizon_s: float = 60.0
    adapt_limit_sd: float = 2.0
    adapt_max_mix_drift: float = 0.2

    def __post_init__(self) -> None:
        check_option("cell", self.cell, ("gru", "lstm"))
        check_option("device", self.device, ("auto", "cpu", "cuda"))
        for name in ("hidden", "layers", "epochs", "frames_per_step", "patience", "max_steps_per_epoch",
                     "min_steps_per_epoch", "min_epochs", "refit_average_epochs"):
            check_int(name, getattr(self, name), minimum=1)
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        check_int("burn_in", self.burn_in, minimum=0)
        check_int("seed", self.seed, minimum=0)
        if self.seq_len is not None and self.burn_in >= self.seq_len:
            raise InvalidValueError("Invalid value for 'burn_in': must be < seq_len={}, got {}".format(
                self.seq_len, self.burn_in))
        for name in ("seq_ms", "lr", "val_fraction"):
            check_positive(name, getattr(self, name))
        for name in ("weight_decay", "noise_std", "gain_std", "speed_std", "class_weight", "label_smoothing"):
            check_positive(name, getattr(self, name), allow_zero=True)
        check_option("adapt", self.adapt, ("auto", "on", "off"))
        check_positive("adapt_max_mix_drift", self.adapt_max_mix_drift)
        self.adaptation()  # validates the adaptation settings

    def adaptation(self) -> Optional[AdaptationConfig]:
        """Return the feature adaptation these settings describe, or None with ``adapt='off'``."""
        cfg = AdaptationConfig(prior_s=self.adapt_prior_s, horizon_s=self.adapt_horizon_s,
                               limit_sd=self.adapt_limit_sd)
        return None if self.adapt == "off" else cfg

    def choose_adaptation(self, frames: FrameSet) -> Tuple[Optional[AdaptationConfig], Dict[str, Any]]:
        """Decide whether training ``frames`` are adapted (``adapt='auto'``: by their movement mix).

        Returns
        -------
        config : AdaptationConfig or None
        decision : dict
            ``{"adapt", "mix_drift", "max_mix_drift", "on", "reason"}`` for ``model.json``.
        """
        cfg = self.adaptation()
        drift = None
        if frames.labels is not None and len(frames.class_names) > 1 and cfg is not None:
            window = int(round(cfg.horizon_s * 1000.0 / frames.hop_ms))
            drift = movement_mix_drift(frames.labels, len(frames.class_names), window_frames=window)
        if self.adapt != "auto":
            on, reason = cfg is not None, "adapt='{}'".format(self.adapt)
        elif drift is None:
            on, reason = False, "no movement classes to check the movement mix against"
        elif len(frames) < 2 * window:
            on, reason = False, ("the training session is too short to check its movement mix ({:.0f} s; at least "
                                 "two horizons, {:g} s, are needed)".format(len(frames) * frames.hop_ms / 1000.0,
                                                                           2 * self.adapt_horizon_s))
        elif drift > self.adapt_max_mix_drift:
            on, reason = False, ("the training session repeats its movements in blocks (movement-mix drift {:.2f} "
                                 "over {:g} s > {:g})".format(drift, self.adapt_horizon_s, self.adapt_max_mix_drift))
        else:
            on, reason = True, "the training session interleaves its movements (movement-mix drift {:.2f} over " \
                               "{:g} s <= {:g})".format(drift, self.adapt_horizon_s, self.adapt_max_mix_drift)
        decision = {"adapt": self.adapt, "mix_drift": drift, "max_mix_drift": self.adapt_max_mix_drift, "on": on,
                    "reason": reason}
        return (cfg if on else None), decision

    def windows(self, hop_ms: float, *, longest: Optional[int] = None) -> Tuple[int, int]:
        """Frames per training window and windows per optimiser step, for frames ``hop_ms`` apart.

        A window from ``seq_ms`` shrinks to the longest continuous stretch of training frames (``longest``, e.g. a
        session paused often), down to half its duration; an explicit ``seq_len`` never changes.
        """
        if self.seq_len is not None:
            seq_len = self.seq_len
        else:
            seq_len = max(1, int(round(self.seq_ms / hop_ms)))
            if longest is not None and longest < seq_len:
                seq_len = max(int(longest), (seq_len + 1) // 2)
        if self.burn_in >= seq_len:
            raise InvalidValueError("Invalid value for 'burn_in': must be < the {}-frame training window, got {}"
                                    .format(seq_len, self.burn_in))
        batch = self.batch_size if self.batch_size is not None else max(1, int(round(self.frames_per_step / seq_len)))
        return seq_len, batch


@dataclass
class TrainResult:
    """What :func:`train` produced."""

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


# ---------------------------------------------------------------------- distributed helpers
def _dist_env() -> Dict[str, int]:
    return {"world": int(os.environ.get("WORLD_SIZE", "1")), "rank": int(os.environ.get("RANK", "0")),
            "local_rank": int(os.environ.get("LOCAL_RANK", "0"))}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise InvalidValueError("Invalid value for '--device': 'cuda' requested but no CUDA GPU is available; "
                             "use --device cpu or install the CUDA build of PyTorch")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


# ---------------------------------------------------------------------- batches
class WindowSampler:
    """Random windows of ``seq_len`` frames inside segments long enough to hold one."""

    def __init__(self, frames: FrameSet, seq_len: int, rng: np.random.Generator) -> None:
        self.seq_len = seq_len
        self.rng = rng
        ranges = []
        for s in frames.segment_slices():
            n = s.stop - s.start
            if n >= seq_len:
                ranges.append((s.start, s.stop - seq_len + 1))
        if not ranges:
            longest = frames.longest_segment()
            raise TrainingDataError(
                "No continuous stretch of the training data holds one training window of {} frames (longest: {}); "
                "record longer trials or lower --seq-len".format(seq_len, longest))
        w = np.array([b - a for a, b in ranges], float)
        self.ranges, self.weights = ranges, w / w.sum()

    def starts(self, n: int) -> np.ndarray:
        """``n`` random window starts, uniform over all valid positions."""
        which = self.rng.choice(len(self.ranges), size=n, p=self.weights)
        return np.array([self.rng.integers(self.ranges[k][0], self.ranges[k][1]) for k in which])


# ---------------------------------------------------------------------- the loop
def _score(val_metrics: Dict[str, Any]) -> float:
    """Higher is better: mean R^2 when positions are decoded, else accuracy."""
    if val_metrics.get("r2_mean") is not None:
        return float(val_metrics["r2_mean"])
    return float(val_metrics.get("accuracy") or 0.0)


def evaluate_frames(model: RecurrentDecoder, frames: FrameSet, device: torch.device) -> Dict[str, Any]:
    """Metrics of ``model`` over whole segments of ``frames`` with the state carried."""
    pos, prob = predict_sequences(model, frames.features, frames.segment_slices(), device=str(device))
    out: Dict[str, Any] = {}
    if frames.positions is not None and model.config.positions:
        out.update(regression_metrics(frames.positions, pos, frames.hop_ms))
    if frames.labels is not None and model.config.n_classes > 1:
        out.update(classification_metrics(frames.labels, prob.argmax(axis=1), model.config.n_classes))
    return out


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


def _build_model(config: TrainConfig, frames: FrameSet, n_classes: int, device: torch.device, *,
                 seed_offset: int) -> RecurrentDecoder:
    """Build a fresh model, its weights drawn from ``config.seed + seed_offset``, normalised to ``frames``."""
    torch.manual_seed(config.seed + seed_offset)
    mean, std = normalisation(frames.features)
    mcfg = ModelConfig(n_features=frames.n_features, n_classes=n_classes, cell=config.cell, hidden=config.hidden,
                       layers=config.layers, projection=config.projection, dropout=config.dropout,
                       positions=frames.positions is not None,
                       class_pool=config.class_pool and n_classes > 1 and frames.positions is None)
    model = RecurrentDecoder(mcfg)
    model.set_normalisation(mean, std)
    if config.lda_front_end and config.projection == 0 and lda_front_end.applies(frames, n_classes):
        model.set_fixed_projection(*lda_front_end.lda_projection(frames, mean, std))
    return model.to(device)


def _fit(model: RecurrentDecoder, train_f: FrameSet, val_f: Optional[FrameSet], config: TrainConfig,
         fcfg: FeatureConfig, n_channels: int, device: torch.device, env: Dict[str, int], *,
         stop_after: Optional[int], bar: "_Progress", seed_offset: int,
         on_epoch: Optional[Callable[[int, RecurrentDecoder, bool], bool]] = None) -> Dict[str, Any]:
    """Run the optimiser; with ``val_f``, keep the best state by validation score and stop early.

    The learning-rate schedule always spans ``config.epochs``; ``stop_after`` ends the run earlier (the refit stops
    at the first phase's best epoch, on the same schedule). ``on_epoch(epoch, model, improved)`` runs after each
    epoch (``improved``: a new best validation score, or every epoch without ``val_f``) and returns True to stop.
    """
    distributed = env["world"] > 1
    torch.manual_seed(config.seed + seed_offset)
    np_rng = np.random.default_rng([config.seed, env["rank"], seed_offset])
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    has_pos = train_f.positions is not None
    n_classes = model.config.n_classes
    seq_len, batch_size = config.windows(train_f.hop_ms, longest=train_f.longest_segment())
    max_speed = float(np.exp(2.5 * config.speed_std))
    span = int(math.ceil(seq_len * max_speed)) + 1 if config.speed_std > 0 else seq_len
    sampler = WindowSampler(train_f, span, np_rng)
    per_epoch = math.ceil(2 * len(train_f) / (batch_size * seq_len * env["world"]))
    steps = int(min(config.max_steps_per_epoch, max(config.min_steps_per_epoch, per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    last_epoch = config.epochs if stop_after is None else min(stop_after, config.epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=config.epochs * steps,
                                                pct_start=0.2)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    std_t = model.feature_std
    x_all = torch.as_tensor(train_f.features, device=device)
    pos_all = torch.as_tensor(train_f.positions, device=device) if has_pos else None
    lab_all = torch.as_tensor(train_f.labels, device=device) if train_f.labels is not None else None
    law_np = gain_law(fcfg, n_channels)
    law = (torch.as_tensor(law_np[0], device=device), torch.as_tensor(law_np[1], device=device).float(),
           torch.as_tensor(law_np[2], device=device).float())
    # Per-finger weights 1/variance: the loss then tracks mean R^2 rather than favouring wide-moving fingers.
    finger_w = None
    if has_pos:
        finger_w = torch.as_tensor(1.0 / np.maximum(train_f.positions.var(axis=0), 1e-4), device=device).float()
        finger_w = finger_w / finger_w.mean()
    history: List[Dict[str, float]] = []
    best = {"score": -np.inf, "state": None, "epoch": 0}
    bad_epochs, epoch, interrupted = 0, 0, False
    try:
        for epoch in range(1, last_epoch + 1):
            net.train()
            losses = []
            for _ in range(steps):
                starts = torch.as_tensor(sampler.starts(batch_size), device=device)
                t = torch.arange(seq_len, device=device, dtype=torch.float32)[None, :]
                if config.speed_std > 0:
                    speed = torch.exp(config.speed_std * torch.randn(batch_size, 1, device=device))
                    t = t * speed.clamp(1.0 / max_speed, max_speed)
                else:
                    t = t.expand(batch_size, -1)
                i0 = t.floor().long()
                frac = (t - i0)[..., None]
                idx = starts[:, None] + i0
                x = x_all[idx] * (1 - frac) + x_all[idx + (frac[..., 0] > 0)] * frac
                if config.gain_std > 0:
                    lg = config.gain_std * torch.randn(batch_size, n_channels, device=device)
                    x = apply_gains(x, lg, law)
                if config.noise_std > 0:
                    x = x + config.noise_std * std_t * torch.randn_like(x)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    pos, logits, _ = net(x, detach_class=has_pos and config.class_head_detached)
                b = config.burn_in
                loss = torch.zeros((), device=device)
                if has_pos:
                    target = pos_all[idx] * (1 - frac) + pos_all[idx + (frac[..., 0] > 0)] * frac
                    loss = loss + torch.mean(finger_w * (pos[:, b:].float() - target[:, b:]) ** 2)
                if lab_all is not None and n_classes > 1:
                    w = config.class_weight if has_pos else 1.0
                    loss = loss + w * nn.functional.cross_entropy(
                        logits[:, b:].float().reshape(-1, n_classes),
                        lab_all[idx + (frac[..., 0] >= 0.5)][:, b:].reshape(-1),
                        label_smoothing=config.label_smoothing)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(opt)
                scaler.update()
                sched.step()
                losses.append(float(loss.detach()))
                bar.advance(losses[-1])
            row: Dict[str, float] = {"epoch": epoch, "train_loss": float(np.mean(losses)),
                                     "lr": float(sched.get_last_lr()[0])}
            stop, improved = False, val_f is None
            if val_f is not None:
                val = evaluate_frames(model, val_f, device)
                score = _score(val)
                row["val_score"] = score
                row.update({k: float(val[k]) for k in ("r2_mean", "accuracy") if val.get(k) is not None})
                if score > best["score"]:
                    best = {"score": score, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
                    bad_epochs, improved = 0, True
                else:
                    bad_epochs += 1
                stop = bad_epochs >= config.patience and epoch >= config.min_epochs
                bar.describe("epoch {}/{} loss {:.4f} val {} {:.3f}".format(
                    epoch, config.epochs, row["train_loss"], "R2" if has_pos else "acc", score))
            else:
                bar.describe("refit on all training data: epoch {}/{} loss {:.4f}".format(
                    epoch, last_epoch, row["train_loss"]))
            history.append(row)
            if on_epoch is not None and on_epoch(epoch, model, improved):
                stop = True
            if distributed:
                import torch.distributed as dist

                flag = torch.tensor([1 if stop else 0], device=device)
                dist.broadcast(flag, src=0)
                stop = bool(flag.item())
            if stop:
                break
    except KeyboardInterrupt:
        interrupted = True
    if val_f is not None and best["state"] is not None:
        model.load_state_dict(best["state"])
    return {"history": history, "best_epoch": best["epoch"] if val_f is not None else epoch, "epochs_run": epoch,
            "interrupted": interrupted, "windows": (seq_len, batch_size)}


def train(
    recordings: Sequence[Recording],
    model_dir: str,
    *,
    config: TrainConfig = TrainConfig(),
    feature_config: Optional[FeatureConfig] = None,
    progress: bool = True,
    fit_classic: bool = True,
    log: Callable[[str], None] = print,
    source_files: Sequence[str] = (),
) -> TrainResult:
    """Train a recurrent decoder (and the classic baselines) and write ``model_dir``.

    Two phases: train on the training split with early stopping on the validation split; then, with
    ``config.refit``, train a fresh model on training and validation data together for the number of epochs the
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
        Default: :func:`decoder.features.config_for_recording` of the first recording.
    progress : bool
        Show a live progress bar (rank 0, interactive terminals).
    fit_classic : bool
        Also fit Wiener, Kalman and LDA on the same frames and split.

    Raises
    ------
    TrainingDataError
        No usable labels, mismatched recordings, too little data for a validation split.
    """
    t_start = time.perf_counter()
    env = _dist_env()
    distributed = env["world"] > 1
    device = resolve_device(config.device, env["local_rank"])
    if distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    is_main = env["rank"] == 0
    fcfg = feature_config or config_for_recording(recordings[0])
    frames = build_frames(recordings, fcfg)
    adapt_cfg, adapt_decision = config.choose_adaptation(frames)
    # the prior is the statistics of every training frame, validation repetitions included: it is what the saved
    # model carries, so validation sees the adaptation the deployed model will run
    adapter = prior_adapter(adapt_cfg, frames)
    frames = adapt_frames(frames, adapter)
    train_f, val_f, val_reps = validation_split(frames, fraction=config.val_fraction)
    n_classes = len(frames.class_names) if frames.labels is not None else 1
    n_channels = recordings[0].n_channels
    if is_main:
        log("training {} on {} frames ({} validation frames, repetitions {} held out), {} features, device {}{}"
            .format(config.cell.upper(), len(train_f), len(val_f), val_reps, frames.n_features, device,
                    ", {} processes".format(env["world"]) if distributed else ""))
    parallel = (config.refit and device.type == "cpu" and not distributed and config.parallel_refit
                and usable_cores() >= 2)
    total = config.epochs * (2 if config.refit and not parallel else 1)
    bar = _Progress(enabled=progress and is_main, total=total)
    worker: Optional[ParallelRefit] = None
    baselines: Optional[Dict[str, object]] = None
    refit_rss_mb = 0.0
    try:
        with _one_thread_each(parallel):
            model = _build_model(config, train_f, n_classes, device, seed_offset=0)
            if parallel:
                worker = ParallelRefit(config=config, frames=frames, fcfg=fcfg, n_channels=n_channels,
                                       n_classes=n_classes, fit_classic=fit_classic and is_main)
            phase1 = _fit(model, train_f, val_f, config, fcfg, n_channels, device, env, stop_after=None, bar=bar,
                          seed_offset=0, on_epoch=worker.on_phase1_epoch if worker else None)
            interrupted = phase1["interrupted"]
            model.to("cpu")
            val_metrics = evaluate_frames(model, val_f, torch.device("cpu"))
            history = phase1["history"]
            refit_epochs = 0
            if is_main and fit_classic and not interrupted and (worker is None or worker.claim_baselines()):
                bar.describe("classic baselines")
                baselines = fit_baselines(train_f, val_f)
            if config.refit and not interrupted and phase1["best_epoch"] > 0:
                if worker is not None:
                    bar.describe("refit on all training data (second process) up to epoch {}".format(
                        phase1["best_epoch"]))
                    try:
                        state = worker.result(phase1["best_epoch"])
                    except KeyboardInterrupt:
                        interrupted = True
                    except RuntimeError as exc:
                        log("{}: keeping the model trained without the validation repetitions".format(exc))
                    else:
                        model = _build_model(config, frames, n_classes, torch.device("cpu"), seed_offset=1)
                        model.load_state_dict(state)
                        refit_epochs = phase1["best_epoch"]
                        refit_rss_mb = worker.peak_rss_mb
                        if fit_classic and baselines is None:
                            baselines = worker.baselines  # fitted while it waited for the first phase
                else:
                    refit = _build_model(config, frames, n_classes, device, seed_offset=1)
                    recent = RecentStates(config.refit_average_epochs)

                    def keep(epoch: int, m: RecurrentDecoder, improved: bool) -> bool:
                        recent.add(epoch, m, earliest_choice=epoch)
                        return False

                    phase2 = _fit(refit, frames, None, config, fcfg, n_channels, device, env,
                                  stop_after=phase1["best_epoch"], bar=bar, seed_offset=1, on_epoch=keep)
                    if not phase2["interrupted"]:
                        refit = refit.to("cpu")
                        refit.load_state_dict({k: torch.from_numpy(v)
                                               for k, v in recent.mean(phase2["epochs_run"]).items()})
                        model, refit_epochs = refit, phase2["epochs_run"]
                    interrupted = phase2["interrupted"]
    finally:
        bar.close()
        if worker is not None:
            worker.close()
    if is_main and fit_classic and baselines is None:  # interrupted before they were fitted: still saved
        baselines = fit_baselines(train_f, val_f)
    if is_main and model.pools_classes:
        set_class_pool(model, (baselines or {}).get("lda"), train_f, val_f, log=log)
    if interrupted and is_main:
        log("interrupted: keeping the best model so far (epoch {}{})".format(
            phase1["best_epoch"], ", before the refit" if config.refit else ""))
    result = TrainResult(model_dir=model_dir, best_epoch=phase1["best_epoch"], epochs_run=phase1["epochs_run"],
                         interrupted=interrupted, val_metrics=val_metrics, history=history)
    result.refit_epochs = refit_epochs
    result.training_windows = tuple(phase1["windows"])
    result.refit_process_peak_rss_mb = refit_rss_mb
    if is_main:
        result.wall_s = time.perf_counter() - t_start
        save_model_dir(model_dir, model.without_fixed_projection(), fcfg, recordings[0], config, result,
                       baselines or {}, source_files, val_reps, adapter=adapter,
                       extra={"adaptation_decision": adapt_decision})
    if distributed:
        import gc

        import torch.distributed as dist

        # Free the DDP wrappers (and any gloo work they still reference) while the interpreter is fully alive:
        # tensors released by gloo's threads during interpreter shutdown abort the process (pytorch#179291).
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()
    return result


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


# ---------------------------------------------------------------------- saving and loading
def save_model_dir(model_dir: str, model: RecurrentDecoder, fcfg: FeatureConfig, rec: Recording,
                   config: TrainConfig, result: TrainResult, baselines: Dict[str, object],
                   source_files: Sequence[str], val_reps: Sequence[int],
                   extra: Optional[Dict[str, Any]] = None, *, adapter: Optional[FeatureAdapter] = None) -> None:
    """Write ``model.safetensors``, ``model.json`` (with ``extra`` keys added) and ``baselines.npz``.

    ``adapter`` is the feature adaptation the model was trained behind (None: none); ``model.json`` records it
    under ``adaptation``.
    """
    from safetensors.torch import save_file

    os.makedirs(model_dir, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(model_dir, "model.safetensors"))
    meta = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "feature_config": fcfg.to_dict(),
        "fs_hz": rec.fs_hz,
        "n_channels": rec.n_channels,
        "channel_names": list(rec.channel_names),
        "signal_kind": rec.signal_kind,
        "class_names": list(rec.class_names) if model.config.n_classes > 1 else ["rest"],
        "normalisation": {"mean": model.feature_mean.tolist(), "std": model.feature_std.tolist()},
        "adaptation": None if adapter is None else adapter.to_dict(),
        "train_config": asdict(config),
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
    """Load ``(model, meta)`` from a folder written by :func:`train` (tensors only, no pickle)."""
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
    model = RecurrentDecoder(ModelConfig.from_dict(meta["model_config"]))
    model.load_state_dict(load_file(os.path.join(model_dir, "model.safetensors")))
    model.eval()
    return model, meta


def feature_config_of(meta: Dict[str, Any]) -> FeatureConfig:
    """Return the feature configuration a model was trained with."""
    return FeatureConfig.from_dict(meta["feature_config"])


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


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """Copy of ``config`` with the non-None keyword values replaced."""
    return replace(config, **{k: v for k, v in kw.items() if v is not None})


# ---------------------------------------------------------------------- progress bar
class _Progress:
    """A rich progress bar with live loss, or nothing when disabled or not on a terminal."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self._p = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(stderr=True)
            if console.is_terminal:
                self._p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                   TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(),
                                   console=console, transient=False)
                self._p.start()
                self._task = self._p.add_task("training", total=total, loss=float("nan"))

    def advance(self, loss: float) -> None:
        if self._p is not None:
            self._p.update(self._task, advance=1, loss=loss)

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text)

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()
            self._p = None
