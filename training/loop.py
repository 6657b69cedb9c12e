"""The optimiser loop: random training windows, early stopping on validation, a progress bar.

Sequences: random windows of ``seq_len`` frames (4 s by default: :meth:`training.config.BatchConfig.windows`) drawn
inside continuous segments of the training split, each started from a zero state; the first ``burn_in`` frames of a
window are not scored (the state is still settling), which is truncated back-propagation through ``seq_len`` steps.
Validation runs over whole segments with the state carried, exactly as inference does.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from neurohand.decoder.feature_config import FeatureConfig
from neurohand.decoder.validation import invalid_value

from . import lda_front_end
from .augment import apply_gains, gain_law
from .config import TrainConfig
from .data import FrameSet, TrainingDataError, normalisation
from .metrics import classification_metrics, regression_metrics
from .model import RecurrentDecoder, predict_sequences


def distributed_env() -> Dict[str, int]:
    """World size, rank and local rank from torchrun's environment (1, 0, 0 in a single process)."""
    return {"world": int(os.environ.get("WORLD_SIZE", "1")), "rank": int(os.environ.get("RANK", "0")),
            "local_rank": int(os.environ.get("LOCAL_RANK", "0"))}


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise invalid_value("--device", "'cuda' requested but no CUDA GPU is available; "
                             "use --device cpu or install the CUDA build of PyTorch")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


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


def validation_score(val_metrics: Dict[str, Any]) -> float:
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


def build_model(config: TrainConfig, frames: FrameSet, n_classes: int, device: torch.device, *,
                 seed_offset: int) -> RecurrentDecoder:
    """Build a fresh model, its weights drawn from ``config.seed + seed_offset``, normalised to ``frames``."""
    torch.manual_seed(config.seed + seed_offset)
    mean, std = normalisation(frames.features)
    model = RecurrentDecoder(config.model.model_config(n_features=frames.n_features, n_classes=n_classes,
                                                       positions=frames.positions is not None))
    model.set_normalisation(mean, std)
    if config.model.lda_front_end and config.model.projection == 0 and lda_front_end.applies(frames, n_classes):
        model.set_fixed_projection(*lda_front_end.lda_projection(frames, mean, std))
    return model.to(device)


@dataclass(frozen=True)
class FitResult:
    """What one run of the optimiser (:func:`fit`) produced.

    Attributes
    ----------
    history : tuple of dict
        One row per epoch: ``epoch``, ``train_loss``, ``lr`` and, with validation frames, ``val_score`` and the
        metrics it came from.
    best_epoch : int
        The epoch whose state the model holds: the best validation score, or the last epoch without validation
        frames (0 when none ran).
    epochs_run : int
    interrupted : bool
        Ctrl-C ended it; the model holds the best state so far.
    windows : tuple of (int, int)
        Frames per training window and windows per optimiser step.
    """

    history: Tuple[Dict[str, float], ...]
    best_epoch: int
    epochs_run: int
    interrupted: bool
    windows: Tuple[int, int]


def fit(model: RecurrentDecoder, train_f: FrameSet, val_f: Optional[FrameSet], config: TrainConfig,
         fcfg: FeatureConfig, n_channels: int, device: torch.device, env: Dict[str, int], *,
         stop_after: Optional[int], bar: "Progress", seed_offset: int,
         on_epoch: Optional[Callable[[int, RecurrentDecoder, bool], bool]] = None) -> FitResult:
    """Run the optimiser; with ``val_f``, keep the best state by validation score and stop early.

    The learning-rate schedule always spans ``config.schedule.epochs``; ``stop_after`` ends the run earlier (the
    refit stops at the first phase's best epoch, on the same schedule). ``on_epoch(epoch, model, improved)`` runs
    after each epoch (``improved``: a new best validation score, or every epoch without ``val_f``) and returns True
    to stop.
    """
    distributed = env["world"] > 1
    torch.manual_seed(config.seed + seed_offset)
    np_rng = np.random.default_rng([config.seed, env["rank"], seed_offset])
    net: nn.Module = model
    if distributed:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    has_pos = train_f.positions is not None
    n_classes = model.config.n_classes
    seq_len, batch_size = config.batches.windows(train_f.hop_ms, longest=train_f.longest_segment())
    schedule, aug, loss_cfg = config.schedule, config.augmentation, config.loss
    max_speed = float(np.exp(2.5 * aug.speed_std))
    span = int(math.ceil(seq_len * max_speed)) + 1 if aug.speed_std > 0 else seq_len
    sampler = WindowSampler(train_f, span, np_rng)
    per_epoch = math.ceil(2 * len(train_f) / (batch_size * seq_len * env["world"]))
    steps = int(min(schedule.max_steps_per_epoch, max(schedule.min_steps_per_epoch, per_epoch)))
    opt = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
    last_epoch = schedule.epochs if stop_after is None else min(stop_after, schedule.epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=schedule.lr, total_steps=schedule.epochs * steps,
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
                if aug.speed_std > 0:
                    speed = torch.exp(aug.speed_std * torch.randn(batch_size, 1, device=device))
                    t = t * speed.clamp(1.0 / max_speed, max_speed)
                else:
                    t = t.expand(batch_size, -1)
                i0 = t.floor().long()
                frac = (t - i0)[..., None]
                idx = starts[:, None] + i0
                x = x_all[idx] * (1 - frac) + x_all[idx + (frac[..., 0] > 0)] * frac
                if aug.gain_std > 0:
                    lg = aug.gain_std * torch.randn(batch_size, n_channels, device=device)
                    x = apply_gains(x, lg, law)
                if aug.noise_std > 0:
                    x = x + aug.noise_std * std_t * torch.randn_like(x)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    pos, logits, _ = net(x, detach_class=has_pos and loss_cfg.class_head_detached)
                b = config.batches.burn_in
                loss = torch.zeros((), device=device)
                if has_pos:
                    target = pos_all[idx] * (1 - frac) + pos_all[idx + (frac[..., 0] > 0)] * frac
                    loss = loss + torch.mean(finger_w * (pos[:, b:].float() - target[:, b:]) ** 2)
                if lab_all is not None and n_classes > 1:
                    w = loss_cfg.class_weight if has_pos else 1.0
                    loss = loss + w * nn.functional.cross_entropy(
                        logits[:, b:].float().reshape(-1, n_classes),
                        lab_all[idx + (frac[..., 0] >= 0.5)][:, b:].reshape(-1),
                        label_smoothing=loss_cfg.label_smoothing)
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
                score = validation_score(val)
                row["val_score"] = score
                row.update({k: float(val[k]) for k in ("r2_mean", "accuracy") if val.get(k) is not None})
                if score > best["score"]:
                    best = {"score": score, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
                    bad_epochs, improved = 0, True
                else:
                    bad_epochs += 1
                stop = bad_epochs >= schedule.patience and epoch >= schedule.min_epochs
                bar.epoch_done("first phase, best val {} {:.3f} (epoch {})".format(
                    "finger R²" if has_pos else "class accuracy", best["score"], best["epoch"]))
            else:
                bar.epoch_done()
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
    return FitResult(history=tuple(history), best_epoch=best["epoch"] if val_f is not None else epoch,
                     epochs_run=epoch, interrupted=interrupted, windows=(seq_len, batch_size))


class Progress:
    """A rich progress bar counting epochs, one row per phase, or nothing when disabled or not on a terminal.

    Each row counts the epochs of one phase against the most it may run (the first phase: ``schedule.epochs``; the
    refit: the first phase's best epoch) and shows the last optimiser step's loss; a finished phase's row keeps its
    count and time, and the next row's timer runs while it waits (a refit in a second process, the baselines).

    Parameters
    ----------
    enabled : bool
    total : int
        Epochs of the first phase's row.
    description : str
        The first row's text.
    console : rich.console.Console, optional
        Where to draw (default: stderr).
    """

    def __init__(self, *, enabled: bool, total: int, description: str = "training",
                 console: Optional[Any] = None) -> None:
        self._p = None
        self._task: Any = None
        self._final: List[Dict[str, Any]] = []
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            console = console if console is not None else Console(stderr=True)
            if console.is_terminal:
                self._p = RichProgress(TextColumn("{task.description}"), BarColumn(),
                                       TextColumn("{task.fields[count]}"), TextColumn("{task.fields[loss]}"),
                                       TimeElapsedColumn(),
                                       console=console, transient=False)
                self._p.start()
                self._task = self._p.add_task(description, total=total, count=_count(0, total), loss="")

    def advance(self, loss: float) -> None:
        """One optimiser step done, with its loss (the epoch count moves with :meth:`epoch_done`)."""
        if self._p is not None:
            self._p.update(self._task, loss="loss {:.4f}".format(loss))

    def epoch_done(self, text: Optional[str] = None) -> None:
        """One epoch of the current phase done; ``text`` replaces the row's description."""
        if self._p is not None:
            task = self._p.tasks[self._task]
            self.set_completed(int(task.completed) + 1)
            if text is not None:
                self._p.update(self._task, description=text)

    def describe(self, text: str) -> None:
        """Replace the current row's description."""
        if self._p is not None:
            self._p.update(self._task, description=text)

    def phase(self, text: str, *, total: Optional[int], completed: int = 0) -> None:
        """End the current row (its count and time stay) and start one for the next phase.

        ``total`` None: a phase without epochs (an indeterminate bar whose timer runs).
        """
        if self._p is not None:
            self._p.stop_task(self._task)
            self._task = self._p.add_task(text, total=total, completed=completed, count=_count(completed, total),
                                          loss="")

    def set_completed(self, completed: int) -> None:
        """Set the current row's epoch count (a phase running in another process reports its epochs)."""
        if self._p is not None:
            total = self._p.tasks[self._task].total
            self._p.update(self._task, completed=completed, count=_count(completed, total))

    def rows(self) -> List[Dict[str, Any]]:
        """Each row's ``description``, ``completed``, ``total`` and ``elapsed_s`` (none when disabled)."""
        if self._p is None:
            return self._final
        return [{"description": t.description, "completed": int(t.completed),
                 "total": None if t.total is None else int(t.total), "elapsed_s": t.elapsed} for t in self._p.tasks]

    def close(self) -> None:
        """Stop drawing the bar (:meth:`rows` keeps its last state)."""
        if self._p is not None:
            self._final = self.rows()
            self._p.stop()
            self._p = None


def _count(completed: int, total: Optional[float]) -> str:
    return "" if total is None else "{}/{} epochs".format(int(completed), int(total))
