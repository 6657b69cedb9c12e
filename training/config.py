"""Training settings: :class:`TrainConfig`, made of one frozen part per concern, and :func:`with_overrides`.

A setting is named by its path, ``"model.hidden"``, ``"schedule.epochs"``, ``"adaptation.config.prior_s"``;
``model.json`` records the nested layout (:meth:`TrainConfig.to_dict`) and reads the flat one of model folders
written before it (:data:`FLAT_LAYOUT`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, Dict, Mapping, Optional, Tuple

from neurohand.decoder.adaptation import AdaptationConfig
from neurohand.decoder.feature_config import FEATURES, FeatureConfig, ms_to_samples
from neurohand.decoder.latency_defaults import DEFAULT_LEAD_MS
from neurohand.decoder.validation import check_int, check_option, check_positive, invalid_value

from .config_tree import apply_changes, build_dataclass, default_of, put_path
from .data import FrameSet, movement_mix_drift
from .model import ModelConfig

_MODEL_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}


@dataclass(frozen=True)
class ArchitectureConfig:
    """The recurrent decoder to train; the data set its input size, its classes and whether it decodes positions.

    Parameters
    ----------
    cell : {'gru', 'lstm'}
    hidden, layers, projection, dropout
        See :class:`training.model.ModelConfig` (and its defaults).
    lda_front_end : bool
        For recordings with class labels and no finger positions, the recurrent core reads the normalised frames
        through LDA's discriminant projection fitted on its training frames, frozen (:mod:`training.lda_front_end`;
        folded into the first layer when saved).
    class_pool : bool
        For recordings with class labels and no finger positions, pool the class output with the LDA baseline's
        discriminant of the current frame (product of experts, set after training:
        :meth:`training.model.RecurrentDecoder.set_class_pool`): the recurrent state reacts to a new gesture later
        than a one-frame classifier does, and the pooled output keeps the recurrent head's steadiness and LDA's
        speed. Sessions with positions keep the head alone (its core is shaped by the positions).
    """

    cell: str = _MODEL_DEFAULTS["cell"]
    hidden: int = _MODEL_DEFAULTS["hidden"]
    layers: int = _MODEL_DEFAULTS["layers"]
    projection: int = _MODEL_DEFAULTS["projection"]
    dropout: float = _MODEL_DEFAULTS["dropout"]
    lda_front_end: bool = True
    class_pool: bool = True

    def __post_init__(self) -> None:
        self.model_config(n_features=1, n_classes=2, positions=False)  # ModelConfig's own checks

    def model_config(self, *, n_features: int, n_classes: int, positions: bool) -> ModelConfig:
        """Return the :class:`ModelConfig` of this architecture for the given data."""
        return ModelConfig(n_features=n_features, n_classes=n_classes, cell=self.cell, hidden=self.hidden,
                           layers=self.layers, projection=self.projection, dropout=self.dropout, positions=positions,
                           class_pool=self.class_pool and n_classes > 1 and not positions)


@dataclass(frozen=True)
class BatchConfig:
    """Training windows (truncated back-propagation) and how many make an optimiser step.

    Parameters
    ----------
    seq_ms : float
        Duration of a training window, in ms: ``round(seq_ms / hop_ms)`` frames, 400 at the 10 ms hops of the nerve
        and envelope features, 200 at the 20 ms hops of EMG.
    seq_len : int or None
        Frames per training window; overrides ``seq_ms``.
    frames_per_step : int
        Frames in one optimiser step: the batch is ``round(frames_per_step / seq_len)`` windows (16 of 400 frames,
        32 of 200).
    batch_size : int or None
        Windows per optimiser step; overrides ``frames_per_step``.
    burn_in : int
        Leading frames of a window left out of the loss.
    """

    seq_ms: float = 4000.0
    seq_len: Optional[int] = None
    frames_per_step: int = 6400
    batch_size: Optional[int] = None
    burn_in: int = 0

    def __post_init__(self) -> None:
        check_positive("seq_ms", self.seq_ms)
        check_int("frames_per_step", self.frames_per_step, minimum=1)
        for name in ("seq_len", "batch_size"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), minimum=1)
        check_int("burn_in", self.burn_in, minimum=0)
        if self.seq_len is not None and self.burn_in >= self.seq_len:
            raise invalid_value("burn_in", "must be < seq_len={}, got {}".format(
                self.seq_len, self.burn_in))

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
            raise invalid_value("burn_in", "must be < the {}-frame training window, got {}"
                                    .format(seq_len, self.burn_in))
        batch = self.batch_size if self.batch_size is not None else max(1, int(round(self.frames_per_step / seq_len)))
        return seq_len, batch


@dataclass(frozen=True)
class ScheduleConfig:
    """Epochs, optimiser and early stopping.

    Parameters
    ----------
    epochs : int
        Maximum epochs (the one-cycle learning-rate schedule spans them); an epoch draws about twice the training
        frames in windows.
    lr : float
        Peak learning rate of the one-cycle schedule.
    weight_decay : float
        AdamW weight decay.
    patience : int
        Epochs without validation improvement before stopping early.
    min_epochs : int
        No early stop before this epoch (the one-cycle schedule is still near its peak learning rate).
    max_steps_per_epoch : int
        Cap on optimiser steps per epoch (keeps CPU training time bounded on long recordings).
    min_steps_per_epoch : int
        Floor on optimiser steps per epoch (short recordings still get enough updates).
    """

    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 8
    min_epochs: int = 15
    max_steps_per_epoch: int = 40
    min_steps_per_epoch: int = 4

    def __post_init__(self) -> None:
        for name in ("epochs", "patience", "min_epochs", "max_steps_per_epoch", "min_steps_per_epoch"):
            check_int(name, getattr(self, name), minimum=1)
        check_positive("lr", self.lr)
        check_positive("weight_decay", self.weight_decay, allow_zero=True)


@dataclass(frozen=True)
class RefitConfig:
    """The second phase: a fresh model trained on training and validation data together.

    Parameters
    ----------
    enabled : bool
        After early stopping, retrain on training + validation data (the validation repetitions are data the final
        model should learn from), on the same learning-rate schedule, stopping at the first phase's best epoch.
    average_epochs : int
        The refit's weights are the mean of its weights at the end of its last this-many epochs (Polyak averaging:
        it stops where the schedule has usually not annealed yet). 1 = the last.
    parallel : bool
        On a CPU with two or more cores (single process, not torchrun), run the refit in a second process beside
        the first phase instead of after it (:mod:`training.parallel_refit`): the same result in less wall time.
    """

    enabled: bool = True
    average_epochs: int = 4
    parallel: bool = True

    def __post_init__(self) -> None:
        check_int("average_epochs", self.average_epochs, minimum=1)


@dataclass(frozen=True)
class LossConfig:
    """How the position and class losses combine.

    Parameters
    ----------
    class_weight : float
        Weight of the class cross-entropy against the position MSE.
    label_smoothing : float
        Label smoothing of the class cross-entropy.
    class_head_detached : bool
        With positions to decode, train the class head on the recurrent state without letting its gradient shape
        the core.
    target_lead_ms : float or None
        The positions and classes each frame is trained against are those this long after its end (0 to 1000 ms):
        the network learns to output where the hand is going, cancelling part of the decoding delay. Evaluations
        always score against the frame's own time. None: the signal kind's :data:`DEFAULT_LEAD_MS`, which
        :func:`~neurohand.training.train.train` writes into the model folder as the number it used.
    """

    class_weight: float = 1.0
    label_smoothing: float = 0.1
    class_head_detached: bool = True
    target_lead_ms: Optional[float] = None

    def __post_init__(self) -> None:
        check_positive("class_weight", self.class_weight, allow_zero=True)
        check_positive("label_smoothing", self.label_smoothing, allow_zero=True)
        if self.target_lead_ms is not None and not (
                0.0 <= check_positive("target_lead_ms", self.target_lead_ms, allow_zero=True) <= 1000.0):
            raise invalid_value("target_lead_ms", "expected 0 to 1000 ms, got {!r}".format(self.target_lead_ms))

    def lead_ms_for(self, signal_kind: str) -> float:
        """Return the target lead for ``signal_kind``: ``target_lead_ms``, or the kind's default."""
        return float(DEFAULT_LEAD_MS[signal_kind] if self.target_lead_ms is None else self.target_lead_ms)


@dataclass(frozen=True)
class AugmentationConfig:
    """Random changes applied to each training window (0 disables one).

    Parameters
    ----------
    noise_std : float
        Gaussian noise added to normalised features.
    gain_std : float
        Standard deviation of random per-channel log-gains (:mod:`training.augment`: electrode contact changes).
    speed_std : float
        Standard deviation of a random log time-scale (movements made faster or slower; frames and targets are
        resampled together).
    """

    noise_std: float = 0.3
    gain_std: float = 0.2
    speed_std: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise_std", "gain_std", "speed_std"):
            check_positive(name, getattr(self, name), allow_zero=True)


@dataclass(frozen=True)
class AdaptationPolicy:
    """Whether the feature frames run through the causal running re-normalisation, and how it moves.

    Parameters
    ----------
    mode : {'auto', 'on', 'off'}
        Each session's running feature statistics are mapped onto the training frames' (:mod:`decoder.adaptation`),
        in training, evaluation and on the device alike; the prior is the training frames' statistics, which the
        model folder and the bundle carry. The adaptation assumes that the mix of movements over ``horizon_s``
        resembles the whole session's; ``'auto'`` turns it on only when the training session's class labels show
        that (:func:`training.data.movement_mix_drift` at most ``max_mix_drift``): on for protocols that
        interleave their movements (3DC, the calibration protocol, the simulator), off for one that repeats each
        movement in a block (NinaPro) or a session without class labels.
    config : AdaptationConfig
        :class:`decoder.adaptation.AdaptationConfig`.
    max_mix_drift : float
        Threshold of ``mode='auto'``.
    """

    mode: str = "auto"
    config: AdaptationConfig = field(default_factory=AdaptationConfig)
    max_mix_drift: float = 0.2

    def __post_init__(self) -> None:
        check_option("adapt", self.mode, ("auto", "on", "off"))
        check_positive("max_mix_drift", self.max_mix_drift)
        if not isinstance(self.config, AdaptationConfig):
            raise invalid_value("config", "expected an AdaptationConfig, got {!r}".format(
                self.config))

    def adaptation(self) -> Optional[AdaptationConfig]:
        """Return the feature adaptation these settings describe, or None with ``mode='off'``."""
        return None if self.mode == "off" else self.config

    def choose(self, frames: FrameSet) -> Tuple[Optional[AdaptationConfig], Dict[str, Any]]:
        """Decide whether training ``frames`` are adapted (``mode='auto'``: by their movement mix).

        Returns
        -------
        config : AdaptationConfig or None
        decision : dict
            ``{"adapt", "mix_drift", "max_mix_drift", "on", "reason"}`` for ``model.json``.
        """
        cfg = self.adaptation()
        horizon_s = self.config.horizon_s
        drift = None
        if frames.labels is not None and len(frames.class_names) > 1 and cfg is not None:
            window = int(round(cfg.horizon_s * 1000.0 / frames.hop_ms))
            drift = movement_mix_drift(frames.labels, len(frames.class_names), window_frames=window)
        if self.mode != "auto":
            on, reason = cfg is not None, "adapt='{}'".format(self.mode)
        elif drift is None:
            on, reason = False, "no movement classes to check the movement mix against"
        elif len(frames) < 2 * window:
            on, reason = False, ("the training session is too short to check its movement mix ({:.0f} s; at least "
                                 "two horizons, {:g} s, are needed)".format(len(frames) * frames.hop_ms / 1000.0,
                                                                           2 * horizon_s))
        elif drift > self.max_mix_drift:
            on, reason = False, ("the training session repeats its movements in blocks (movement-mix drift {:.2f} "
                                 "over {:g} s > {:g})".format(drift, horizon_s, self.max_mix_drift))
        else:
            on, reason = True, "the training session interleaves its movements (movement-mix drift {:.2f} over " \
                               "{:g} s <= {:g})".format(drift, horizon_s, self.max_mix_drift)
        decision = {"adapt": self.mode, "mix_drift": drift, "max_mix_drift": self.max_mix_drift, "on": on,
                    "reason": reason}
        return (cfg if on else None), decision


@dataclass(frozen=True)
class FeatureChoice:
    """The feature frames' window, hop and kinds where they differ from the signal kind's defaults.

    The defaults (:func:`decoder.feature_config.config_for_recording`) are rounded to whole samples at the
    recording's rate; values given here are taken as they are, and refused, naming the nearest valid ones, when they
    are not whole samples.

    Parameters
    ----------
    window_ms : float or None
        Window of each frame, a whole number of hops; None: the default window's duration in whole hops.
    hop_ms : float or None
        Time between frames, a whole number of samples at the recording's rate; None: the default.
    names : tuple of str or None
        Feature kinds, from :data:`decoder.feature_config.FEATURES`, in output order; None: the default.
    """

    window_ms: Optional[float] = None
    hop_ms: Optional[float] = None
    names: Optional[Tuple[str, ...]] = None

    def __post_init__(self) -> None:
        for name in ("window_ms", "hop_ms"):
            if getattr(self, name) is not None:
                check_positive(name, getattr(self, name))
        if self.names is not None:
            names = tuple(self.names)
            if not names:
                raise invalid_value("features", "expected at least one of {}".format(", ".join(FEATURES)))
            for n in names:
                check_option("features", n, FEATURES)
            object.__setattr__(self, "names", names)

    def apply(self, base: FeatureConfig, fs_hz: float) -> FeatureConfig:
        """Return ``base`` with these choices, at ``fs_hz``.

        Raises
        ------
        InvalidValueError
            ``hop_ms`` is not a whole number of samples, or ``window_ms`` not a whole number of hops, at ``fs_hz``.
        """
        if self.hop_ms is None and self.window_ms is None and self.names is None:
            return base
        if self.hop_ms is not None:
            hop = ms_to_samples("hop_ms", self.hop_ms, fs_hz)
        else:
            hop = base.samples_at(fs_hz)[0]
        hop_ms = hop * 1000.0 / fs_hz
        if self.window_ms is not None:
            blocks = ms_to_samples("window_ms", self.window_ms, fs_hz, step=hop) // hop
        else:
            blocks = max(1, int(round(base.window_ms / hop_ms)))
        return replace(base, hop_ms=hop_ms, window_ms=blocks * hop_ms,
                       features=self.names if self.names is not None else base.features)


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; the defaults are the ones the README's results use.

    Parameters
    ----------
    model : ArchitectureConfig
    batches : BatchConfig
    schedule : ScheduleConfig
    refit : RefitConfig
    loss : LossConfig
    augmentation : AugmentationConfig
    adaptation : AdaptationPolicy
    features : FeatureChoice
    val_fraction : float
        Share of repetitions held out for validation (the last ones, at least one).
    device : {'auto', 'cpu', 'cuda'}
    seed : int
    """

    model: ArchitectureConfig = field(default_factory=ArchitectureConfig)
    batches: BatchConfig = field(default_factory=BatchConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    refit: RefitConfig = field(default_factory=RefitConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    adaptation: AdaptationPolicy = field(default_factory=AdaptationPolicy)
    features: FeatureChoice = field(default_factory=FeatureChoice)
    val_fraction: float = 0.15
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            default = default_of(f)
            if is_dataclass(default) and not isinstance(getattr(self, f.name), type(default)):
                raise invalid_value(f.name, "expected {}, got {!r}".format(type(default).__name__,
                                                                          getattr(self, f.name)))
        check_positive("val_fraction", self.val_fraction)
        check_option("device", self.device, ("auto", "cpu", "cuda"))
        check_int("seed", self.seed, minimum=0)

    @property
    def cell(self) -> str:
        """The recurrent cell, ``model.cell`` (the decoder's name in evaluations)."""
        return self.model.cell

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready nested dict: one dict per part."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; also reads the flat layout of model format 2 and older (:data:`FLAT_LAYOUT`).

        Keys it does not know are ignored (a newer neurohand's settings).
        """
        if not isinstance(d.get("model"), Mapping):
            nested: Dict[str, Any] = {}
            for name, value in d.items():
                if name in FLAT_LAYOUT:
                    put_path(nested, FLAT_LAYOUT[name], value)
            d = nested
        return build_dataclass(cls, d)


FLAT_LAYOUT = {
    **{name: "model." + name for name in ("cell", "hidden", "layers", "projection", "dropout", "lda_front_end",
                                          "class_pool")},
    **{name: "batches." + name for name in ("seq_ms", "seq_len", "frames_per_step", "batch_size", "burn_in")},
    **{name: "schedule." + name for name in ("epochs", "lr", "weight_decay", "patience", "min_epochs",
                                             "max_steps_per_epoch", "min_steps_per_epoch")},
    "refit": "refit.enabled", "refit_average_epochs": "refit.average_epochs", "parallel_refit": "refit.parallel",
    **{name: "loss." + name for name in ("class_weight", "label_smoothing", "class_head_detached")},
    **{name: "augmentation." + name for name in ("noise_std", "gain_std", "speed_std")},
    "adapt": "adaptation.mode", "adapt_max_mix_drift": "adaptation.max_mix_drift",
    **{"adapt_" + name: "adaptation.config." + name for name in ("prior_s", "horizon_s", "limit_sd")},
    **{name: name for name in ("val_fraction", "device", "seed")},
}
"""The flat ``train_config`` names of model format 2 and older, and the setting each one is now."""


def with_overrides(config: TrainConfig, overrides: Optional[Mapping[str, Any]] = None, /, **kw: Any) -> TrainConfig:
    """Copy of ``config`` with the non-None values replaced.

    ``overrides`` maps setting paths (``{"model.hidden": 64, "adaptation.config.prior_s": 10.0}``) to values; the
    keyword arguments are the top-level settings (``seed=1``, ``device="cpu"``) or whole parts. Each part is rebuilt
    once with all its changes, so settings checked against each other may change together.

    Raises
    ------
    InvalidValueError
        A path names no setting, or a value is invalid.
    """
    changes: Dict[str, Any] = {}
    for path, value in {**(overrides or {}), **kw}.items():
        if value is not None:
            put_path(changes, path, value)
    return apply_changes(config, changes, "")
