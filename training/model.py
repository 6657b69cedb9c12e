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

from decoder.validation import check_int, check_option, check_positive

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
    """

    n_features: int
    n_classes: int = 1
    cell: str = "gru"
    hidden: int = 128
    layers: int = 2
    projection: int = 0
    dropout: float = 0.2
    positions: bool = True

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, minimum=1)
        check_int("n_classes", self.n_classes, minimum=1)
        check_option("cell", self.cell, CELLS)
        check_int("hidden", self.hidden, minimum=1)
        check_int("layers", self.layers, minimum=1)
        check_int("projection", self.projection, minimum=0)
        check_positive("dropout", self.dropout, allow_zero=True)
        if self.dropout >= 1:
            raise ValueError("Invalid value for 'dropout': expected 0 <= dropout < 1, got {}".format(self.dropout))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


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
            raise ValueError("Invalid value for 'projection': a fixed projection replaces the learned one; "
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
        state : the final state
        """
        z = (x - self.feature_mean) / self.feature_std
        z = self.proj(z)
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        if (self.config.cell == "gru" and z.device.type == "cpu" and torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu")):
            out, state = gru_forward(self.rnn, z, state)  # same result, less per-step overhead (training.gru_cpu)
        else:
            out, state = self.rnn(z, state)
        out = self.drop(out)
        logits = self.class_head(out.detach() if detach_class else out)
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
