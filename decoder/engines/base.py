"""What every engine returns from a step."""

from typing import NamedTuple

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
