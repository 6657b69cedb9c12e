"""Post-processing of decoded finger positions before they move a hand.

Per frame, in order: class gating (when the class head is confident of rest, hold the last command), exponential
smoothing (time constant ``smoothing_ms``), a dead-band (changes smaller than ``deadband`` are not sent, so motors do
not hunt), a per-finger velocity limit, and clamping to each finger's range. State is separate from configuration.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .errors import InvalidValueError
from .validation import check_positive, invalid_value

SAFE_POSTURE = (0.1, 0.1, 0.1, 0.1, 0.1)
"""Fingers slightly flexed: where a sink with no posture of its own goes on a fault, and where a class-only model's
commands stay."""


def check_smoothing_ms(name: str, value: float) -> float:
    """Check a smoothing a bundle may carry: 0 (none) to 1000 ms; returns it as a float."""
    v = check_positive(name, value, allow_zero=True)
    if v > 1000.0:
        raise invalid_value(name, "expected 0 to 1000 ms, got {!r}".format(v))
    return v


def rest_probability(class_probabilities: np.ndarray) -> np.ndarray:
    """Return P(rest) for the rest gate: class 0's probability, or 0 for a model with one class (nothing to gate).

    Parameters
    ----------
    class_probabilities : np.ndarray, shape (..., n_classes)

    Returns
    -------
    np.ndarray, shape (...)
    """
    p = np.asarray(class_probabilities, float)
    return p[..., 0] if p.shape[-1] > 1 else np.zeros(p.shape[:-1])


@dataclass(frozen=True)
class PostConfig:
    """Post-processing parameters.

    Parameters
    ----------
    smoothing_ms : float
        Time constant of the exponential smoother (0: none). Adds about this much delay to slow movements.
    deadband : float
        Smallest change (0..1) passed on.
    max_speed_per_s : float
        Largest change per second of each finger (0..1 range per second).
    finger_min, finger_max : tuple of 5 float
        Range each finger may be commanded to.
    rest_gate : float
        Probability of class 0 (rest) above which the hand holds its last command (1.0 disables gating).
    """

    smoothing_ms: float = 30.0
    deadband: float = 0.01
    max_speed_per_s: float = 4.0
    finger_min: Tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    finger_max: Tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    rest_gate: float = 0.9

    def __post_init__(self) -> None:
        check_positive("smoothing_ms", self.smoothing_ms, allow_zero=True)
        check_positive("deadband", self.deadband, allow_zero=True)
        check_positive("max_speed_per_s", self.max_speed_per_s)
        lo, hi = np.asarray(self.finger_min, float), np.asarray(self.finger_max, float)
        if lo.shape != (5,) or hi.shape != (5,) or np.any(lo < 0) or np.any(hi > 1) or np.any(lo >= hi):
            raise InvalidValueError("finger_min and finger_max must be 5 values with 0 <= min < max <= 1, got {} and "
                                    "{}".format(self.finger_min, self.finger_max))


@dataclass
class PostState:
    """Smoothed value and the last command sent."""

    smoothed: Optional[np.ndarray] = None
    command: Optional[np.ndarray] = None
    gated_frames: int = 0


class PostProcessor:
    """Applies :class:`PostConfig` frame by frame at ``hop_ms``."""

    def __init__(self, config: PostConfig, *, hop_ms: float) -> None:
        self.config = config
        self.hop_s = check_positive("hop_ms", hop_ms) / 1000.0
        tau = config.smoothing_ms / 1000.0
        self.alpha = 1.0 if tau == 0 else 1.0 - np.exp(-self.hop_s / tau)
        self.lo = np.asarray(config.finger_min, float)
        self.hi = np.asarray(config.finger_max, float)
        # the velocity limit's bound on one frame's change of each finger (0..1 units): what step() enforces
        self.max_step = config.max_speed_per_s * self.hop_s

    def new_state(self) -> PostState:
        """Fresh state: the first frame passes through the smoother unchanged."""
        return PostState()

    def step(self, state: PostState, positions: np.ndarray, rest_probability: float = 0.0
             ) -> Tuple[np.ndarray, PostState]:
        """One frame: decoded positions (5,) in 0..1 and P(rest) -> the command (5,) and the new state."""
        p = np.clip(np.asarray(positions, float), 0.0, 1.0)
        if state.smoothed is None:
            smoothed = p
        else:
            smoothed = state.smoothed + self.alpha * (p - state.smoothed)
        cmd_prev = state.command
        gated = state.gated_frames
        if cmd_prev is not None and rest_probability > self.config.rest_gate:
            target = cmd_prev
            gated += 1
        else:
            target = smoothed
        if cmd_prev is None:
            cmd = np.clip(target, self.lo, self.hi)
        else:
            delta = target - cmd_prev
            delta[np.abs(delta) < self.config.deadband] = 0.0
            cmd = np.clip(cmd_prev + np.clip(delta, -self.max_step, self.max_step), self.lo, self.hi)
        return cmd, PostState(smoothed=smoothed, command=cmd, gated_frames=gated)
