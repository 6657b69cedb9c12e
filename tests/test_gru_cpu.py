import pytest
import torch
from torch import nn

from neurohand.training.gru_cpu import gru_forward
from neurohand.training.model import ModelConfig, RecurrentDecoder


def _outputs_and_grads(fn, rnn, x, h0, w_out, w_state):
    for p in rnn.parameters():
        p.grad = None
    x.grad = None
    if h0 is not None:
        h0.grad = None
    out, h_n = fn(x, h0)
    ((out * w_out).sum() + (h_n * w_state).sum()).backward()
    grads = [x.grad] + ([h0.grad] if h0 is not None else []) + [p.grad for p in rnn.parameters()]
    return [out.detach(), h_n.detach()] + [g.clone() for g in grads]


@pytest.mark.parametrize("layers,with_h0", [(1, True), (2, True), (2, False), (3, True)])
def test_outputs_and_every_gradient_equal_nn_gru(layers, with_h0):
    rng = torch.Generator().manual_seed(0)
    rnn = nn.GRU(7, 12, layers, batch_first=True).double()
    x = torch.randn(3, 25, 7, dtype=torch.float64, generator=rng, requires_grad=True)
    h0 = torch.randn(layers, 3, 12, dtype=torch.float64, generator=rng, requires_grad=True) if with_h0 else None
    w_out = torch.randn(3, 25, 12, dtype=torch.float64, generator=rng)
    w_state = torch.randn(layers, 3, 12, dtype=torch.float64, generator=rng)
    native = _outputs_and_grads(lambda a, h: rnn(a, h), rnn, x, h0, w_out, w_state)
    kernel = _outputs_and_grads(lambda a, h: gru_forward(rnn, a, h), rnn, x, h0, w_out, w_state)
    assert len(native) == len(kernel)
    for a, b in zip(native, kernel):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)


def test_dropout_between_layers_only_in_training_mode():
    torch.manual_seed(0)
    rnn = nn.GRU(4, 8, 2, batch_first=True, dropout=0.5)
    x = torch.randn(2, 30, 4)
    rnn.eval()
    torch.testing.assert_close(gru_forward(rnn, x)[0], rnn(x)[0])
    rnn.train()
    a, b = gru_forward(rnn, x)[0], gru_forward(rnn, x)[0]
    assert not torch.allclose(a, b)  # a fresh mask each call, as nn.GRU draws one


def test_the_decoder_trains_with_it_on_the_cpu_and_gets_nn_grus_gradients():
    torch.manual_seed(0)
    model = RecurrentDecoder(ModelConfig(n_features=6, n_classes=3, hidden=10, layers=2, dropout=0.0)).double()
    model.train()
    x = torch.randn(4, 20, 6, dtype=torch.float64)

    def grads(use_kernel):
        model.zero_grad()
        if use_kernel:
            pos, logits, _ = model(x)
        else:  # what the module computes with the native recurrent layer
            z, _ = model.rnn((x - model.feature_mean) / model.feature_std)
            pos, logits = torch.sigmoid(model.position_head(z)), model.class_head(z)
        (pos.sum() + logits.square().sum()).backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    via_model, native = grads(True), grads(False)
    for k in native:
        torch.testing.assert_close(via_model[k], native[k], rtol=1e-10, atol=1e-12, msg=k)


@pytest.mark.parametrize("rnn", [nn.LSTM(3, 4, batch_first=True), nn.GRU(3, 4), nn.GRU(3, 4, batch_first=True,
                                                                                          bidirectional=True)])
def test_refuses_what_it_does_not_compute(rnn):
    with pytest.raises(ValueError, match="Invalid value for 'rnn': expected a batch-first, unidirectional nn.GRU"):
        gru_forward(rnn, torch.zeros(1, 2, 3))
