"""What every engine is (:class:`Engine`) and returns from a step (:class:`StepOutput`)."""

import abc
from typing import Any, NamedTuple, Tuple

import numpy as np

LOG_PROBABILITY_FLOOR = -1e4
"""Lowest pooled class log-probability any engine outputs: exp() of it is 0 in every precision, and FP16 (largest
magnitude 65504) still holds it, so a class LDA rules out by hundreds of nats stays a finite number."""


class StepOutput(NamedTuple):
    """Outputs of one decoder step.

    Attributes
    ----------
    positions : np.ndarray, shape (5,)
        Finger positions in 0..1 (thumb, index, middle, ring, little).
    class_logits : np.ndarray, shape (n_classes,)
        Unnormalised class scores (0 = rest).
    """

    positions: np.ndarray
    class_logits: np.ndarray

    def class_probabilities(self) -> np.ndarray:
        """Softmax of the logits, shape (n_classes,)."""
        z = self.class_logits - np.max(self.class_logits)
        e = np.exp(z)
        return e / e.sum()


def zero_state(cell: str, layers: int, hidden: int):
    """Zero recurrent state: ``{"h": (layers, 1, hidden)}``, plus ``"c"`` for an LSTM, float32."""
    s = {"h": np.zeros((layers, 1, hidden), np.float32)}
    if cell == "lstm":
        s["c"] = np.zeros((layers, 1, hidden), np.float32)
    return s


class Engine(abc.ABC):
    """One exported decoder step over explicit recurrent state; holds weights only, never a stream's state.

    Contract: ``new_state()`` returns the zero state of one stream; ``step(state, frame)`` takes that state and one
    feature frame (n_features,) after the bundle's feature adaptation, and returns the step's :class:`StepOutput` and
    the next state, leaving ``state`` usable (a stream may be replayed from it). Every engine of a bundle gives the
    numpy reference's outputs within its precision's tolerance (``neurohand verify``). ``close()`` frees what the
    engine holds outside Python (GPU memory); the engine is unusable after it.
    """

    name = "engine"

    @abc.abstractmethod
    def new_state(self) -> Any:
        """Return the zero recurrent state of a new stream."""

    @abc.abstractmethod
    def step(self, state: Any, frame: np.ndarray) -> Tuple[StepOutput, Any]:
        """Decode one frame (n_features,) from ``state``; return the outputs and the next state."""

    def close(self) -> None:  # noqa: B027 - optional: most engines hold nothing outside Python
        """Free what the engine holds outside Python (nothing, unless overridden)."""
