"""Training settings: :class:`TrainConfig` and :func:`with_overrides`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Dict, Optional, Tuple

from neurohand.decoder.adaptation import AdaptationConfig
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import check_int, check_option, check_positive

from .data import FrameSet, movement_mix_drift


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


def with_overrides(config: TrainConfig, **kw: Any) -> TrainConfig:
    """Copy of ``config`` with the non-None keyword values replaced."""
    return replace(config, **{k: v for k, v in kw.items() if v is not None})
