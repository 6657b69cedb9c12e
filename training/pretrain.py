"""Pre-trained decoders: one network trained on many people (or days), adapted to a person from a short recording.

Gains and electrode positions differ between people, so a network trained on their frames as they are would spend its
capacity on who is wearing the electrodes. :func:`pretrain` therefore z-scores every recording's feature frames by
that recording's own statistics (per-person input normalisation) and trains one decoder on all of them with the
ordinary training loop (early stopping on every recording's last repetition, the refit, ``torchrun`` for several
processes). The LDA front end is off (its projection would be one person's) and so is the running feature adaptation;
a pooled class output stays empty until a person's LDA fills it.

The base is a model folder (it exports and evaluates like any other) whose ``model.json`` carries a ``base`` record:
the recordings and people it was trained on, the signal kind, channels, rate, classes and feature configuration.
:func:`check_serves` refuses a recording the base cannot serve with one line. ``train(..., init=BASE)`` adapts it:
the person's normalisation is composed with the base's (:func:`init_from_base`), the LDA front end stays off, every
weight is fine-tuned on the person's recording, early-stopped on its last repetition.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.feature_config import FeatureConfig
from neurohand.decoder.recording import Recording

from .data import FrameSet, TrainingDataError, normalisation
from .model import RecurrentDecoder
from .model_dir import feature_config_of, load_model_dir

BASE_FORMAT = 1
"""Version of the ``base`` record in a pre-trained model's ``model.json``."""


@dataclass(frozen=True)
class Base:
    """A loaded pre-trained base: its network and what it was trained on.

    Attributes
    ----------
    path : str
    model : RecurrentDecoder
    meta : dict
        The base's ``model.json``.
    """

    path: str
    model: RecurrentDecoder
    meta: Dict[str, Any]

    @property
    def record(self) -> Dict[str, Any]:
        """The ``base`` record: ``people``, ``files``, ``signal_kind``, ``n_channels``, ``fs_hz``, ``class_names``."""
        return self.meta["base"]

    @property
    def feature_config(self) -> FeatureConfig:
        """The feature configuration every recording is framed with."""
        return feature_config_of(self.meta)


def person_of(rec: Recording, index: int) -> str:
    """Return who a recording is of: its ``patient_id``, else its ``session_id``, else ``recording <index>``."""
    md = rec.metadata or {}
    return str(md.get("patient_id") or md.get("session_id") or "recording {}".format(index))


def base_record(recordings: Sequence[Recording], files: Sequence[str]) -> Dict[str, Any]:
    """Return the ``base`` record of a pre-training on ``recordings`` (read from ``files``, when given)."""
    rec0 = recordings[0]
    people: List[str] = []
    for i, r in enumerate(recordings):
        p = person_of(r, i)
        if p not in people:
            people.append(p)
    return {"format_version": BASE_FORMAT, "people": people, "n_recordings": len(recordings),
            "files": [os.path.abspath(f) for f in files], "signal_kind": rec0.signal_kind,
            "n_channels": rec0.n_channels, "fs_hz": float(rec0.fs_hz),
            "class_names": list(rec0.class_names) if rec0.has_labels else [],
            "normalisation": "per recording"}


def normalise_per_recording(frames: FrameSet) -> FrameSet:
    """Z-score each recording's frames by its own statistics (``frames.recording``; one recording when None).

    Returns
    -------
    FrameSet
        The same frames and targets, ``features`` of shape (n_frames, n_features) float32, each recording's features
        with mean 0 and standard deviation 1 (floored as :func:`training.data.normalisation` floors it).
    """
    ids = frames.recording if frames.recording is not None else np.zeros(len(frames), np.int64)
    out = np.empty_like(frames.features)
    for r in np.unique(ids):
        m = ids == r
        mean, std = normalisation(frames.features[m])
        out[m] = (frames.features[m] - mean) / std
    return replace(frames, features=out.astype(np.float32))


def load_base(path: str) -> Base:
    """Load a pre-trained base written by :func:`pretrain`.

    Raises
    ------
    TrainingDataError
        ``path`` is a model folder without a ``base`` record (a person's model, not a pre-trained base).
    """
    model, meta = load_model_dir(path)
    if not isinstance(meta.get("base"), dict):
        raise TrainingDataError("Invalid value for '--init': {!r} is a person's model, not a pre-trained base (make "
                                "one with 'neurohand pretrain FILES... --out BASE')".format(path))
    if int(meta["base"].get("format_version", 0)) > BASE_FORMAT:
        raise TrainingDataError("{!r} was pre-trained by a newer neurohand (base format {}); upgrade".format(
            path, meta["base"]["format_version"]))
    return Base(path=path, model=model, meta=meta)


def refusal(base: Base, *, n_channels: int, fs_hz: float, signal_kind: str, has_positions: Optional[bool] = None,
            class_names: Optional[Sequence[str]] = None) -> Optional[Tuple[str, str]]:
    """Return ``(what it has, what the base wants)`` when the base cannot serve such input, else None.

    ``has_positions`` and ``class_names`` are checked when given (a live source before recording knows neither).
    """
    b = base.record
    if n_channels != b["n_channels"] or abs(fs_hz - b["fs_hz"]) > 1e-6:
        return ("{} channels at {:g} Hz".format(n_channels, fs_hz),
                "{} channels at {:g} Hz".format(b["n_channels"], b["fs_hz"]))
    if signal_kind != b["signal_kind"]:
        return "{} signals".format(signal_kind), "{} signals".format(b["signal_kind"])
    if has_positions is False and base.model.config.positions:
        return "no finger positions", "finger positions"
    if class_names is not None and b["class_names"] and list(class_names) != list(b["class_names"]):
        return "classes {}".format(", ".join(class_names)), "classes {}".format(", ".join(b["class_names"]))
    return None


def refusal_message(base: Base, name: str, has: str, wants: str, *, flag: str = "--init") -> str:
    """Return the one line that refuses ``name`` (which has ``has``) for a base that wants ``wants``."""
    return ("The base {!r} was pre-trained on {} ({} people); {} has {}: pre-train a base on recordings like it, or "
            "train from scratch without {}".format(base.path, wants, len(base.record["people"]), name, has, flag))


def check_source(path: str, *, name: str, n_channels: int, fs_hz: float, signal_kind: str) -> Base:
    """Load the base at ``path`` and refuse a live source it cannot serve, before anything is recorded.

    Raises
    ------
    TrainingDataError
    """
    base = load_base(path)
    why = refusal(base, n_channels=n_channels, fs_hz=fs_hz, signal_kind=signal_kind)
    if why is not None:
        raise TrainingDataError(refusal_message(base, name, *why, flag="--base"))
    return base


def check_serves(base: Base, recordings: Sequence[Recording], names: Optional[Sequence[str]] = None) -> None:
    """Refuse, in one line, a recording the base cannot serve (channels, rate, signal kind, classes, positions).

    Raises
    ------
    TrainingDataError
    """
    for i, rec in enumerate(recordings):
        name = repr(names[i]) if names is not None and i < len(names) else "recording {}".format(i)
        why = refusal(base, n_channels=rec.n_channels, fs_hz=rec.fs_hz, signal_kind=rec.signal_kind,
                      has_positions=rec.has_positions, class_names=rec.class_names if rec.has_labels else None)
        if why is not None:
            raise TrainingDataError(refusal_message(base, name, *why))


def init_from_base(model: RecurrentDecoder, base: Base) -> RecurrentDecoder:
    """Load the base's weights into ``model``, composing its normalisation with the base's.

    ``model`` was built for the person (:func:`training.loop.build_model`): its ``feature_mean`` / ``feature_std``
    are the person's statistics. The base read per-recording z-scores through its own normalisation, so the composed
    one is ``mean = m_p + s_p * m_b``, ``std = s_p * s_b``. A pooled class output is left empty for the person's LDA.

    Raises
    ------
    TrainingDataError
        The model's architecture differs from the base's.
    """
    own = {k: v for k, v in base.model.state_dict().items()
           if k not in ("feature_mean", "feature_std", "pool_weight", "pool_bias")}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    bad = sorted(k for k, v in own.items() if shapes.get(k) != tuple(v.shape))
    bad = bad or sorted(set(own) - set(shapes))
    if bad:
        raise TrainingDataError("The base {!r} does not fit this model ({}): adapt it with the base's own "
                                "architecture".format(base.path, ", ".join(bad[:4])))
    mp, sp = model.feature_mean.clone(), model.feature_std.clone()
    model.load_state_dict(own, strict=False)
    model.feature_mean.copy_(mp + sp * base.model.feature_mean.to(mp.device))
    model.feature_std.copy_(sp * base.model.feature_std.to(sp.device))
    return model


def architecture_of(base: Base) -> Dict[str, Any]:
    """Return the ``with_overrides`` settings that give a person's model the base's architecture."""
    mc = base.meta["model_config"]
    return {"model.cell": mc["cell"], "model.hidden": mc["hidden"], "model.layers": mc["layers"],
            "model.projection": mc["projection"], "model.dropout": mc["dropout"], "model.lda_front_end": False}


# How a base adapts to a person (``train --init``), chosen on validation people (experiments/adapt_settings.py,
# docs/results.md): the ordinary schedule. A short one at a lower learning rate tied on 3DC's classes (0.804 against
# 0.801, 4x faster) and lost badly on NinaPro's positions (0.333 against 0.488); one default serves both.
ADAPT_SCHEDULE: Dict[str, Any] = {}


def adapt_config(base: Any = None) -> Any:
    """Return ``base`` (default ``TrainConfig()``) on :data:`ADAPT_SCHEDULE`: what ``train --init`` starts from.

    Options a user gives are applied to the result, so they win (``--epochs 30`` is 30).
    """
    from .config import TrainConfig, with_overrides

    return with_overrides(base if base is not None else TrainConfig(), ADAPT_SCHEDULE)


def pretrain_overrides() -> Dict[str, Any]:
    """Return the settings a pre-training always uses (``with_overrides`` keys): no LDA front end, no adaptation."""
    return {"model.lda_front_end": False, "adaptation.mode": "off"}


def describe(base: Base) -> Tuple[str, ...]:
    """One line per fact of the base record, for ``neurohand models``-like listings and logs."""
    b = base.record
    return ("pre-trained on {} recordings of {} people: {}".format(b["n_recordings"], len(b["people"]),
                                                                   ", ".join(b["people"])),
            "{} signals, {} channels at {:g} Hz, {}".format(
                b["signal_kind"], b["n_channels"], b["fs_hz"],
                "classes " + ", ".join(b["class_names"]) if b["class_names"] else "no classes"))


__all__ = ["ADAPT_SCHEDULE", "BASE_FORMAT", "Base", "adapt_config", "architecture_of", "base_record",
           "check_serves", "describe", "init_from_base", "load_base", "normalise_per_recording", "person_of",
           "pretrain_overrides", "refusal", "refusal_message", "check_source"]
