"""A GRU training kernel for the CPU: whole-sequence forward and hand-derived back-propagation through time.

PyTorch's CPU ``nn.GRU`` records a dozen autograd nodes per time step and layer; with the decoder's small state
(2 x 128) and 200-frame training windows, that bookkeeping is a noticeable part of a training step (measured on the
project's 2-core machine: 212 ms per step of 32 windows with ``nn.GRU``, 197 ms here, interleaved; in the training
loop with its data and validation, 1.2x less time). Here each layer is one autograd node: the
forward loop writes the gates into preallocated buffers, and the backward pass precomputes every factor that does
not depend on the incoming gradient for all steps at once, so the reverse loop is four operations per step; the
weight gradients are then one matrix product each over all steps.

It computes exactly what ``nn.GRU`` computes, with the module's own parameters (gate order r, z, n;
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``), so the trained module exports
and runs unchanged; ``tests/test_gru_cpu.py`` checks outputs and every gradient against ``nn.GRU`` in double
precision. Used by :class:`training.model.RecurrentDecoder` when it trains a GRU on the CPU.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from neurohand.decoder.validation import invalid_value


class _GRULayer(torch.autograd.Function):
    """One GRU layer over a time-major sequence: ``(x (T, B, I), h0 (B, H), weights) -> out (T, B, H)``."""

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh):  # noqa: D102 (autograd.Function API)
        T, B, _ = x.shape
        H = h0.shape[1]
        gi = torch.addmm(b_ih, x.reshape(T * B, -1), w_ih.t()).view(T, B, 3 * H)
        gh = x.new_empty(T, B, 3 * H)
        rz = x.new_empty(T, B, 2 * H)
        n = x.new_empty(T, B, H)
        out = x.new_empty(T, B, H)
        diff = x.new_empty(B, H)
        # per-step views made once (one call each) rather than indexed inside the loop
        gi_rz, gi_n = gi[..., :2 * H].unbind(0), gi[..., 2 * H:].unbind(0)
        gh_t, gh_rz, gh_n = gh.unbind(0), gh[..., :2 * H].unbind(0), gh[..., 2 * H:].unbind(0)
        rz_t, r, z = rz.unbind(0), rz[..., :H].unbind(0), rz[..., H:].unbind(0)
        n_t, out_t = n.unbind(0), out.unbind(0)
        w_hh_t = w_hh.t()
        h = h0
        for t in range(T):
            torch.addmm(b_hh, h, w_hh_t, out=gh_t[t])
            torch.add(gi_rz[t], gh_rz[t], out=rz_t[t])
            rz_t[t].sigmoid_()
            torch.addcmul(gi_n[t], r[t], gh_n[t], out=n_t[t])
            n_t[t].tanh_()
            torch.sub(h, n_t[t], out=diff)
            torch.addcmul(n_t[t], z[t], diff, out=out_t[t])
            h = out_t[t]
        ctx.save_for_backward(x, h0, w_ih, w_hh, gh, rz, n, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out):  # noqa: D102 (autograd.Function API)
        x, h0, w_ih, w_hh, gh, rz, n, out = ctx.saved_tensors
        T, B, H = n.shape
        r, z = rz[..., :H], rz[..., H:]
        h_prev = torch.cat([h0[None], out[:-1]])
        # Factors from dh (the total gradient reaching h_t) to each gate's pre-activation gradient; none of them
        # depends on dh, so they are computed for all steps at once.
        one_minus_z = 1 - z
        dn_coef = one_minus_z * (1 - n * n)
        coef = torch.stack([dn_coef * gh[..., 2 * H:] * r * (1 - r),  # -> d(r pre-activation)
                            (h_prev - n) * z * one_minus_z,  # -> d(z pre-activation)
                            dn_coef * r], dim=2)  # -> d(W_hn h + b_hn)
        dgh = x.new_empty(T, B, 3 * H)
        dh_all = x.new_empty(T, B, H)
        d_out_t = d_out.contiguous().unbind(0)
        dh_t, dh_bcast = dh_all.unbind(0), dh_all[:, :, None, :].unbind(0)
        coef_t, dgh_t, dgh3_t = coef.unbind(0), dgh.unbind(0), dgh.view(T, B, 3, H).unbind(0)
        z_t = z.contiguous().unbind(0)
        dh_z = x.new_empty(B, H)
        carry = torch.zeros_like(h0)
        for t in range(T - 1, -1, -1):
            torch.add(carry, d_out_t[t], out=dh_t[t])
            torch.mul(coef_t[t], dh_bcast[t], out=dgh3_t[t])
            torch.mul(dh_t[t], z_t[t], out=dh_z)
            carry = torch.addmm(dh_z, dgh_t[t], w_hh)
        dgi = dgh.clone()
        dgi[..., 2 * H:] = dh_all * dn_coef
        dgh_flat, dgi_flat = dgh.view(T * B, 3 * H), dgi.view(T * B, 3 * H)
        need = ctx.needs_input_grad
        d_x = (dgi_flat @ w_ih).view(T, B, -1) if need[0] else None
        d_w_ih = dgi_flat.t() @ x.reshape(T * B, -1) if need[2] else None
        d_w_hh = dgh_flat.t() @ h_prev.reshape(T * B, H) if need[3] else None
        return (d_x, carry if need[1] else None, d_w_ih, d_w_hh, dgi_flat.sum(0) if need[4] else None,
                dgh_flat.sum(0) if need[5] else None)


def supports(rnn: nn.Module) -> bool:
    """Whether :func:`gru_forward` computes what ``rnn`` computes (a unidirectional, batch-first GRU with biases)."""
    return isinstance(rnn, nn.GRU) and rnn.batch_first and not rnn.bidirectional and rnn.bias


def gru_forward(rnn: nn.GRU, x: torch.Tensor, h0: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Compute ``rnn(x, h0)`` for a batch-first GRU, differentiably, with one autograd node per layer.

    Parameters
    ----------
    rnn : nn.GRU
        Batch-first, unidirectional, with biases (:func:`supports`). Its ``dropout`` between layers applies in
        training mode, as in ``nn.GRU``.
    x : torch.Tensor, shape (batch, time, input_size)
    h0 : torch.Tensor, shape (layers, batch, hidden), optional
        Zeros when omitted.

    Returns
    -------
    out : torch.Tensor, shape (batch, time, hidden)
        The last layer's state at every step.
    h_n : torch.Tensor, shape (layers, batch, hidden)
        Every layer's final state.
    """
    if not supports(rnn):
        raise invalid_value("rnn", "expected a batch-first, unidirectional nn.GRU with biases, "
                         "got {!r}".format(rnn))
    if h0 is None:
        h0 = x.new_zeros(rnn.num_layers, x.shape[0], rnn.hidden_size)
    seq = x.transpose(0, 1).contiguous()
    finals = []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0 and rnn.training:
            seq = F.dropout(seq, rnn.dropout, training=True)
        seq = _GRULayer.apply(seq, h0[layer], getattr(rnn, "weight_ih_l{}".format(layer)),
                              getattr(rnn, "weight_hh_l{}".format(layer)), getattr(rnn, "bias_ih_l{}".format(layer)),
                              getattr(rnn, "bias_hh_l{}".format(layer)))
        finals.append(seq[-1])
    return seq.transpose(0, 1), torch.stack(finals)
