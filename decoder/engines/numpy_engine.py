"""A pure-numpy GRU/LSTM decoder step from the bundle's plain arrays: runs anywhere, and is the reference.

Equations follow PyTorch's ``nn.GRU`` (gates r, z, n; ``linear_before_reset``) and ``nn.LSTM`` (gates i, f, g, o).
"""

from typing import Dict, Tuple

import numpy as np

from ..bundle import Bundle, BundleError
from .base import LOG_PROBABILITY_FLOOR, Engine, StepOutput, zero_state

State = Dict[str, np.ndarray]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x)
    return shifted - np.log(np.sum(np.exp(shifted)))


class NumpyEngine(Engine):
    """Decoder step in numpy (float32).

    Parameters
    ----------
    bundle : Bundle
    """

    name = "numpy"

    def __init__(self, bundle: Bundle) -> None:
        w = bundle.weights()
        c = bundle.contract["model"]
        self.cell = c["cell"]
        self.layers = int(c["layers"])
        self.hidden = int(c["hidden"])
        self.n_features = int(c["n_features"])
        try:
            f32 = np.float32
            self.mean = w["feature_mean"].astype(f32)
            self.inv_std = (1.0 / w["feature_std"]).astype(f32)
            self.proj = (w["proj_weight"].astype(f32), w["proj_bias"].astype(f32)) if "proj_weight" in w else None
            if self.proj is not None:  # exact GELU; scipy.special only for models that have a projection
                from scipy.special import erf

                self._erf = erf
            self.w_ih = [w["rnn_weight_ih_l{}".format(k)].astype(f32) for k in range(self.layers)]
            self.w_hh = [w["rnn_weight_hh_l{}".format(k)].astype(f32) for k in range(self.layers)]
            self.b_ih = [w["rnn_bias_ih_l{}".format(k)].astype(f32) for k in range(self.layers)]
            self.b_hh = [w["rnn_bias_hh_l{}".format(k)].astype(f32) for k in range(self.layers)]
            self.w_pos, self.b_pos = w["position_weight"].astype(f32), w["position_bias"].astype(f32)
            self.w_cls, self.b_cls = w["class_weight"].astype(f32), w["class_bias"].astype(f32)
            # the class output pooled with a linear discriminant of the frame (training.model.ModelConfig.class_pool)
            self.pool = (w["pool_weight"].astype(f32), w["pool_bias"].astype(f32)) if c.get("class_pool") else None
        except KeyError as e:
            raise BundleError("{!r}: weights.npz lacks array {}".format(bundle.path, e)) from e

    def new_state(self) -> State:
        """Zero state: ``h`` (layers, 1, hidden), plus ``c`` for an LSTM."""
        return zero_state(self.cell, self.layers, self.hidden)

    def step(self, state: State, frame: np.ndarray) -> Tuple[StepOutput, State]:
        """One frame of raw features, shape (n_features,) -> outputs and the new state (input state untouched)."""
        x = (np.asarray(frame, np.float32).reshape(self.n_features) - self.mean) * self.inv_std
        zn = x
        if self.proj is not None:
            x = self.proj[0] @ x + self.proj[1]
            x = 0.5 * x * (1.0 + self._erf(x / np.sqrt(2.0)))
        H = self.hidden
        hs = []
        cs = []
        for k in range(self.layers):
            h = state["h"][k, 0]
            gi = self.w_ih[k] @ x + self.b_ih[k]
            gh = self.w_hh[k] @ h + self.b_hh[k]
            if self.cell == "gru":
                r = _sigmoid(gi[:H] + gh[:H])
                z = _sigmoid(gi[H:2 * H] + gh[H:2 * H])
                n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
                h = (1.0 - z) * n + z * h
            else:
                g = gi + gh
                i, f = _sigmoid(g[:H]), _sigmoid(g[H:2 * H])
                cand, o = np.tanh(g[2 * H:3 * H]), _sigmoid(g[3 * H:])
                c = f * state["c"][k, 0] + i * cand
                h = o * np.tanh(c)
                cs.append(c)
            hs.append(h)
            x = h
        logits = self.w_cls @ x + self.b_cls
        if self.pool is not None:
            logits = np.maximum(_log_softmax(logits) + _log_softmax(self.pool[0] @ zn + self.pool[1]),
                                LOG_PROBABILITY_FLOOR)
        out = StepOutput(_sigmoid(self.w_pos @ x + self.b_pos), logits)
        new = {"h": np.stack(hs)[:, None, :].astype(np.float32)}
        if cs:
            new["c"] = np.stack(cs)[:, None, :].astype(np.float32)
        return out, new
