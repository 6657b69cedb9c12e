"""Grips: how a gesture model (classes only, no finger positions trained) moves the hand.

Each class maps to a posture of the five fingers (a grip) or to ``hold`` (keep the current one), as pattern-
recognition hands do (Coapt, Myo Plus). A class switches the grip only when its probability reaches
``min_probability``; the post-processing (rest gate, smoothing, dead-band, velocity limit, finger ranges) then moves
the hand there as it moves it for any model. The table travels sealed in the bundle's contract (``grips``); export
fills it from the class names (:data:`ALIASES`) and a TOML file may change any class::

    min_probability = 0.7
    [classes]
    power_grip = "power"                 # a grip by name (GRIPS)
    wrist_flexion = "hold"               # keep the current posture
    my_grip = [0.4, 0.8, 0.8, 0.2, 0.2]  # a posture: thumb, index, middle, ring, little; 0 open .. 1 flexed
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .validation import invalid_value

GRIPS = {
    "rest": (0.2, 0.2, 0.2, 0.2, 0.2),
    "open": (0.0, 0.0, 0.0, 0.0, 0.0),
    "power": (0.9, 0.9, 0.9, 0.9, 0.9),
    "pinch": (0.6, 0.6, 0.0, 0.0, 0.0),
    "key": (0.5, 0.9, 0.9, 0.9, 0.9),
    "point": (0.8, 0.0, 0.9, 0.9, 0.9),
    "tripod": (0.6, 0.6, 0.6, 0.0, 0.0),
}
"""The common grips, thumb..little, 0 open .. 1 flexed."""
HOLD = "hold"
ALIASES = {
    "rest": ("rest", "neutral", "relax", "relaxed", "no_movement"),
    "open": ("open", "open_hand", "hand_open", "hand_extension", "spread"),
    "power": ("power", "power_grip", "fist", "close", "hand_close", "grasp", "cylindrical", "large_diameter"),
    "pinch": ("pinch", "pinch_grip", "tip_pinch", "precision", "precision_grip"),
    "key": ("key", "key_grip", "lateral", "lateral_grip", "lateral_pinch"),
    "point": ("point", "pointing", "index_point", "index_pointing"),
    "tripod": ("tripod", "tripod_grip", "chuck", "chuck_grip"),
}
"""Class names read as each grip (lower case, spaces and hyphens as underscores); any other class holds."""
MIN_PROBABILITY = 0.6


def grip_for_name(class_name: str) -> str:
    """Return the grip a class name reads as (``'hold'`` when none)."""
    key = class_name.strip().lower().replace(" ", "_").replace("-", "_")
    for grip, names in ALIASES.items():
        if key in names:
            return grip
    return HOLD


def _posture(name: str, value: Any) -> Tuple[float, ...]:
    p = np.asarray(value, float) if not isinstance(value, str) else None
    if p is None or p.shape != (5,) or not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise invalid_value(name, "a grip ({}), 'hold' or 5 numbers in 0..1 (thumb..little), got {!r}".format(
            ", ".join(GRIPS), value))
    return tuple(float(v) for v in p)


@dataclass(frozen=True)
class GripTable:
    """What each class of a gesture model does to the hand.

    Parameters
    ----------
    grips : tuple of str
        Per class: a grip of :data:`GRIPS`, ``'hold'``, or ``'custom'`` (its posture given).
    postures : tuple of (tuple of 5 float or None)
        Per class: the posture it moves the hand to; None holds the current one.
    min_probability : float
        A class switches the grip only at this probability or above (0.5 to 1).
    """

    grips: Tuple[str, ...]
    postures: Tuple[Optional[Tuple[float, ...]], ...]
    min_probability: float = MIN_PROBABILITY

    def __post_init__(self) -> None:
        if len(self.grips) != len(self.postures):
            raise invalid_value("grips", "one grip per class, got {} grips and {} postures".format(
                len(self.grips), len(self.postures)))
        if not 0.5 <= float(self.min_probability) <= 1.0:  # below 0.5 two classes could both switch
            raise invalid_value("min_probability", "0.5 to 1, got {!r}".format(self.min_probability))

    def choose(self, probabilities: np.ndarray, current: int) -> int:
        """Return the class whose grip the hand moves to after this frame.

        Parameters
        ----------
        probabilities : np.ndarray, shape (n_classes,)
        current : int
            The class whose grip it moves to now (-1: none yet).

        Returns
        -------
        int
            The most probable class when it reaches ``min_probability`` and does not hold; else ``current``.
        """
        k = int(np.argmax(probabilities))
        if probabilities[k] >= self.min_probability and self.postures[k] is not None:
            return k
        return current

    def to_contract(self) -> Dict[str, Any]:
        """Return the JSON the bundle's contract holds."""
        return {"min_probability": float(self.min_probability),
                "classes": [{"grip": g, "posture": None if p is None else list(p)}
                            for g, p in zip(self.grips, self.postures)]}

    def describe(self, class_names: Sequence[str]) -> List[str]:
        """One line per class: ``'power_grip -> power (0.9, 0.9, 0.9, 0.9, 0.9)'``."""
        return ["{} -> {}".format(n, g if p is None else "{} ({})".format(g, ", ".join("{:g}".format(v) for v in p)))
                for n, g, p in zip(class_names, self.grips, self.postures)]


def grip_table(class_names: Sequence[str], *, overrides: Optional[Dict[str, Any]] = None,
               min_probability: float = MIN_PROBABILITY) -> GripTable:
    """Return the grips of ``class_names``: each read by its name (:func:`grip_for_name`), then ``overrides``.

    Parameters
    ----------
    overrides : dict, optional
        Class name -> a grip's name, ``'hold'`` or a posture (5 numbers in 0..1).
    """
    overrides = dict(overrides or {})
    unknown = [n for n in overrides if n not in class_names]
    if unknown:
        raise invalid_value("grips", "class names of the model ({}), got {}".format(
            ", ".join(class_names), ", ".join(repr(n) for n in unknown)))
    grips, postures = [], []
    for name in class_names:
        value = overrides.get(name, grip_for_name(name))
        if isinstance(value, str) and (value == HOLD or value in GRIPS):
            grips.append(value)
            postures.append(None if value == HOLD else GRIPS[value])
        else:
            grips.append("custom")
            postures.append(_posture("grips.classes.{}".format(name), value))
    return GripTable(tuple(grips), tuple(postures), float(min_probability))


def grip_table_from_contract(value: Any, class_names: Sequence[str]) -> GripTable:
    """Read the contract's ``grips`` (written by :meth:`GripTable.to_contract`), checking every posture."""
    if not isinstance(value, dict) or set(value) != {"min_probability", "classes"} or not isinstance(
            value["classes"], list) or len(value["classes"]) != len(class_names):
        raise invalid_value("grips", "an object with 'min_probability' and one entry per class ({}), got {!r}".format(
            len(class_names), value))
    grips, postures = [], []
    for name, entry in zip(class_names, value["classes"]):
        if not isinstance(entry, dict) or set(entry) != {"grip", "posture"}:
            raise invalid_value("grips.{}".format(name), "{{'grip': ..., 'posture': ...}}, got {!r}".format(entry))
        grips.append(str(entry["grip"]))
        postures.append(None if entry["posture"] is None else _posture("grips.{}".format(name), entry["posture"]))
        if (postures[-1] is None) != (grips[-1] == HOLD):
            raise invalid_value("grips.{}".format(name), "a posture unless the grip is 'hold', got {!r}".format(entry))
    return GripTable(tuple(grips), tuple(postures), float(value["min_probability"]))
