"""The recurrent decoder: normalisation, optional projection, GRU or LSTM, position and class heads.

Causal by construction: the output at frame ``t`` depends on frames ``<= t`` only. The same module runs on whole
sequences (training, offline evaluation) and one frame at a time with its state carried (what the exported step
graph does); :func:`tests.test_model` checks the two agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
from torch import nn

from neurohand.decoder.engines.base import LOG_PROBABILITY_FLOOR
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import check_int, check_option, check_positive, invalid_value

from .gru_cpu import gru_forward

State = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]
CELLS = ("gru", "lstm")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a :class:`RecurrentDecoder`.

    Parameters
    ----------
    n_features : int
        Length of an input frame.
    n_classes : int
        Classes of the class head (0 = rest); 1 means no class head is trained.
    cell : {'gru', 'lstm'}
    hidden : int
        Recurrent state size.
    layers : int
        Stacked recurrent layers.
    projection : int
        Size of a linear + GELU input projection before the recurrent core (0: none).
    dropout : float
        Dropout between layers and before the heads.
    positions : bool
        Whether the position head is trained (the recording had finger positions).
    class_pool : bool
        The class output pools the class head with a linear discriminant of the current frame (product of experts):
        ``log_softmax(head(h)) + log_softmax(W z + b)``, with ``z`` the normalised frame and ``W``, ``b`` buffers
        set after training (:meth:`RecurrentDecoder.set_class_pool`; zeros until then, which leave the softmax, and
        so the training loss, exactly as without them). Only with a class head.
    """

    n_features: int
    n_classes: int = 1
    cell: str = "gru"
    hidden: int = 128
    layers: int = 2
    projection: int = 0
    dropout: float = 0.2
    positions: bool = True
    class_pool: bool = False

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, minimum=1)
        check_int("n_classes", self.n_classes, minimum=1)
        check_option("cell", self.cell, CELLS)
        check_int("hidden", self.hidden, minimum=1)
        check_int("layers", self.layers, minimum=1)
        check_int("projection", self.projection, minimum=0)
        check_positive("dropout", self.dropout, allow_zero=True)
        if self.dropout >= 1:
            raise invalid_value("dropout", "expected 0 <= dropout < 1, got {}".format(
                self.dropout))
        if self.class_pool and self.n_classes < 2:
            raise invalid_value("class_pool", "a pooled class output needs a class head "
                                    "(n_classes >= 2), got n_classes={}".format(self.n_classes))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(**d)



def stable_log_softmax(x: torch.Tensor) -> torch.Tensor:
    """``log_softmax`` over the last axis, written out as ``s - log(sum(exp(s)))`` with ``s = x - max(x)``.

    The same numbers as ``torch.log_softmax``, but exported as ReduceMax, Sub, Exp, ReduceSum and Log: TensorRT's ONNX
    importer turns a ``LogSoftmax`` node into ``Log(Softmax(x))``, which is ``-inf`` for any class whose probability
    underflows (an LDA score hundreds of nats below the best), and a non-finite output faults the runtime.
    """
    s = x - x.amax(dim=-1, keepdim=True)
    return s - torch.log(torch.exp(s).sum(dim=-1, keepdim=True))

class RecurrentDecoder(nn.Module):
    """Feature frames -> finger positions (0..1) and class logits.

    Inputs are raw features; the module normalises them with its ``feature_mean`` / ``feature_std`` buffers.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        F = config.n_features
        self.register_buffer("feature_mean", torch.zeros(F))
        self.register_buffer("feature_std", torch.ones(F))
        if config.projection:
            self.proj = nn.Sequential(nn.Linear(F, config.projection), nn.GELU())
            rnn_in = config.projection
        else:
            self.proj = nn.Identity()
            rnn_in = F
        rnn_cls = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(rnn_in, config.hidden, config.layers, batch_first=True,
                           dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.position_head = nn.Linear(config.hidden, 5)
        self.class_head = nn.Linear(config.hidden, config.n_classes)
        if self.pools_classes:
            self.register_buffer("pool_weight", torch.zeros(config.n_classes, F))
            self.register_buffer("pool_bias", torch.zeros(config.n_classes))

    @property
    def pools_classes(self) -> bool:
        """Whether the class output is pooled with a linear discriminant (:class:`ModelConfig`)."""
        return self.config.class_pool  # ModelConfig refuses class_pool without a class head

    def set_class_pool(self, mean: np.ndarray, std: np.ndarray, coef: np.ndarray, intercept: np.ndarray,
                       classes: np.ndarray) -> None:
        """Pool the class head with a linear discriminant given on its own standardisation of the raw frames.

        The discriminant's scores are ``((x - mean) / std) @ coef.T + intercept`` for ``classes``; they are mapped
        onto this model's normalised frame ``z = (x - feature_mean) / feature_std`` (call after
        :meth:`set_normalisation`).

        Parameters
        ----------
        mean, std : np.ndarray, shape (n_features,)
        coef : np.ndarray, shape (n_classes, n_features)
        intercept : np.ndarray, shape (n_classes,)
        classes : np.ndarray, shape (n_classes,), int
            Class index of each row: every class ``0..n_classes-1`` once (a discriminant that never saw a class
            cannot be pooled: its scores say nothing about it).
        """
        if not self.pools_classes:
            raise InvalidValueError("Invalid call: this model does not pool its classes (class_pool=False)")
        rows = np.asarray(classes, np.int64)
        if sorted(rows.tolist()) != list(range(self.config.n_classes)):
            raise InvalidValueError("Invalid discriminant for the class pool: expected rows for classes 0..{}, got {}"
                                    .format(self.config.n_classes - 1, sorted(rows.tolist())))
        m, s = self.feature_mean.double().cpu().numpy(), self.feature_std.double().cpu().numpy()
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        coef, intercept = np.asarray(coef, np.float64), np.asarray(intercept, np.float64)
        weight = np.zeros((self.config.n_classes, self.config.n_features))
        bias = np.zeros(self.config.n_classes)
        weight[rows] = coef * (s / std)
        bias[rows] = intercept + ((m - mean) / std) @ coef.T
        self.pool_weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        self.pool_bias.copy_(torch.as_tensor(bias, dtype=torch.float32))

    def class_output(self, z: torch.Tensor, head_logits: torch.Tensor) -> torch.Tensor:
        """Return the class output from the head's logits and the normalised frames ``z`` (pooled if configured)."""
        if not self.pools_classes:
            return head_logits
        pooled = stable_log_softmax(head_logits) + stable_log_softmax(z @ self.pool_weight.T + self.pool_bias)
        return torch.clamp(pooled, min=LOG_PROBABILITY_FLOOR)

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store per-feature statistics, shape (n_features,) each."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def set_fixed_projection(self, weight: np.ndarray, bias: np.ndarray) -> None:
        """Read the normalised frames through a frozen linear map before the recurrent core (training only).

        The recurrent core is rebuilt with ``k`` inputs, its weights drawn from the global RNG
        (:mod:`training.lda_front_end`). Save :meth:`without_fixed_projection`, which matches :attr:`config`.

        Parameters
        ----------
        weight : np.ndarray, shape (k, n_features)
        bias : np.ndarray, shape (k,)
        """
        if self.config.projection:
            raise invalid_value("projection", "a fixed projection replaces the learned one; "
                             "expected 0, got {}".format(self.config.projection))
        k = int(weight.shape[0])
        lin = nn.Linear(self.config.n_features, k)
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(weight))
            lin.bias.copy_(torch.as_tensor(bias))
        lin.requires_grad_(False)
        self.proj = lin.to(self.feature_mean.device)
        rnn_cls = nn.GRU if self.config.cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(k, self.config.hidden, self.config.layers, batch_first=True,
                           dropout=self.config.dropout if self.config.layers > 1 else 0.0
                           ).to(self.feature_mean.device)

    def without_fixed_projection(self) -> "RecurrentDecoder":
        """Return the same function as a plain decoder: a fixed projection folded into the first layer's inputs.

        ``W_ih (W z + b) + b_ih = (W_ih W) z + (W_ih b + b_ih)``; returns ``self`` when there is none.
        """
        if self.config.projection or not isinstance(self.proj, nn.Linear):
            return self
        plain = RecurrentDecoder(self.config).to(self.feature_mean.device)
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("proj.")}
        with torch.no_grad():
            w_ih, b_ih = self.rnn.weight_ih_l0, self.rnn.bias_ih_l0
            state["rnn.weight_ih_l0"] = w_ih @ self.proj.weight
            state["rnn.bias_ih_l0"] = b_ih + w_ih @ self.proj.bias
        plain.load_state_dict(state)
        return plain

    def initial_state(self, batch: int = 1, device: Optional[torch.device] = None) -> State:
        """Zero state: ``h`` (layers, batch, hidden), plus ``c`` for an LSTM."""
        h = torch.zeros(self.config.layers, batch, self.config.hidden, device=device, dtype=self.feature_mean.dtype)
        if self.config.cell == "lstm":
            return (h, torch.zeros_like(h))
        return h

    def forward(self, x: torch.Tensor, state: Optional[State] = None, detach_class: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """Run over a batch of sequences.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, time, n_features)
            Raw feature frames.
        state : optional
            From :meth:`initial_state` or a previous call; zeros when omitted.
        detach_class : bool
            Training only: the class head reads the recurrent state without sending gradients back into it, so
            the shared core is shaped by the position loss alone.

        Returns
        -------
        positions : torch.Tensor, shape (batch, time, 5), in 0..1
        class_logits : torch.Tensor, shape (batch, time, n_classes)
            Logits, or pooled log-probabilities with ``class_pool`` (a softmax gives the probabilities either way).
        state : the final state
        """
        zn = (x - self.feature_mean) / self.feature_std
        z = self.proj(zn)
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        if (self.config.cell == "gru" and z.device.type == "cpu" and torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu")):
            out, state = gru_forward(self.rnn, z, state)  # same result, less per-step overhead (training.gru_cpu)
        else:
            out, state = self.rnn(z, state)
        out = self.drop(out)
        logits = self.class_output(zn, self.class_head(out.detach() if detach_class else out))
        return torch.sigmoid(self.position_head(out)), logits, state

    def step(self, frame: torch.Tensor, state: State) -> Tuple[torch.Tensor, torch.Tensor, State]:
        """One frame: ``frame`` (batch, n_features) -> positions (batch, 5), logits (batch, n_classes), state."""
        pos, logits, state = self.forward(frame[:, None, :], state)
        return pos[:, 0], logits[:, 0], state


def predict_sequences(model: RecurrentDecoder, features: np.ndarray, slices, *, device: str = "cpu"
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """Offline predictions over whole segments, the state carried within each and reset between them.

    Parameters
    ----------
    features : np.ndarray, shape (n, n_features)
    slices : list of slice
        The segments, e.g. :meth:`training.data.FrameSet.segment_slices`.

    Returns
    -------
    positions : np.ndarray, shape (n, 5)
    class_probabilities : np.ndarray, shape (n, n_classes)
    """
    model.eval()
    pos = np.zeros((len(features), 5), np.float32)
    prob = np.zeros((len(features), model.config.n_classes), np.float32)
    with torch.no_grad():
        for s in slices:
            x = torch.as_tensor(features[s], dtype=torch.float32, device=device)[None]
            p, logits, _ = model(x)
            pos[s] = p[0].float().cpu().numpy()
            prob[s] = torch.softmax(logits[0].float(), dim=-1).cpu().numpy()
    return pos, prob
