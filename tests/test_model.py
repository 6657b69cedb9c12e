import numpy as np
import pytest
import torch

from neurohand.training.model import ModelConfig, RecurrentDecoder, predict_sequences


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_sequence(cell, layers):
    torch.manual_seed(0)
    m = RecurrentDecoder(ModelConfig(n_features=7, n_classes=4, cell=cell, hidden=16, layers=layers, projection=8))
    m.set_normalisation(np.full(7, 0.5), np.full(7, 2.0))
    m.eval()
    x = torch.randn(1, 60, 7)
    with torch.no_grad():
        pos_seq, log_seq, _ = m(x)
        state = m.initial_state(1)
        steps_p, steps_l = [], []
        for t in range(60):
            p, logit, state = m.step(x[:, t], state)
            steps_p.append(p)
            steps_l.append(logit)
    torch.testing.assert_close(torch.stack(steps_p, 1), pos_seq, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.stack(steps_l, 1), log_seq, rtol=1e-5, atol=1e-6)
    assert pos_seq.min() >= 0 and pos_seq.max() <= 1


def test_the_pooled_class_output_is_the_product_of_the_head_and_the_discriminant(rng):
    from neurohand.training.baselines import LdaDecoder

    torch.manual_seed(0)
    F, C = 7, 4
    m = RecurrentDecoder(ModelConfig(n_features=F, n_classes=C, hidden=16, layers=2, projection=8, class_pool=True))
    plain = RecurrentDecoder(ModelConfig(n_features=F, n_classes=C, hidden=16, layers=2, projection=8))
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("pool_")})
    for mod in (m, plain):
        mod.set_normalisation(np.full(F, 0.5), np.full(F, 2.0))
        mod.eval()
    x = torch.randn(1, 80, F)
    with torch.no_grad():
        _, pooled0, _ = m(x)
        _, head, _ = plain(x)
    # zeros until set: the same softmax, so the training loss is the plain model's
    torch.testing.assert_close(torch.softmax(pooled0, -1), torch.softmax(head, -1), rtol=1e-5, atol=1e-6)
    # a discriminant on its own standardisation of the raw frames, rows in another class order
    order = np.array([2, 0, 3, 1])
    lda = LdaDecoder(mean=rng.normal(size=F), std=rng.uniform(0.5, 2.0, F), coef=rng.normal(size=(C, F)),
                     intercept=rng.normal(size=C), classes=order, shrinkage="auto")
    m.set_class_pool(lda.mean, lda.std, lda.coef, lda.intercept, lda.classes)
    with torch.no_grad():
        _, pooled, _ = m(x)
        state, steps = m.initial_state(1), []
        for t in range(80):
            _, logit, state = m.step(x[:, t], state)
            steps.append(logit)
    xr = x[0].double().numpy()
    scores = np.empty((80, C))
    scores[:, order] = ((xr - lda.mean) / lda.std) @ lda.coef.T + lda.intercept
    expected = torch.log_softmax(head[0], -1) + torch.log_softmax(torch.as_tensor(scores), -1).float()
    torch.testing.assert_close(pooled[0], expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.stack(steps, 1), pooled, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected rows for classes 0..3, got \[0, 1, 3\]"):
        m.set_class_pool(lda.mean, lda.std, lda.coef[:3], lda.intercept[:3], np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="does not pool its classes"):
        plain.set_class_pool(lda.mean, lda.std, lda.coef, lda.intercept, lda.classes)


def test_causal_future_frames_do_not_change_the_past():
    torch.manual_seed(0)
    m = RecurrentDecoder(ModelConfig(n_features=5, n_classes=3, hidden=12))
    m.eval()
    x = torch.randn(1, 40, 5)
    y = x.clone()
    y[:, 25:] += 10.0
    with torch.no_grad():
        a, _, _ = m(x)
        b, _, _ = m(y)
    torch.testing.assert_close(a[:, :25], b[:, :25])
    assert not torch.allclose(a[:, 25:], b[:, 25:])


def test_predict_sequences_resets_state_between_segments():
    torch.manual_seed(0)
    m = RecurrentDecoder(ModelConfig(n_features=3, n_classes=2, hidden=8))
    x = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    pos, prob = predict_sequences(m, x, [slice(0, 10), slice(10, 30)])
    alone, _ = predict_sequences(m, x[10:], [slice(0, 20)])
    np.testing.assert_allclose(pos[10:], alone, rtol=1e-5)
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-5)


def test_a_pooled_class_output_needs_a_class_head():
    with pytest.raises(ValueError, match="Invalid value for 'class_pool': a pooled class output needs a class head"):
        ModelConfig(n_features=4, n_classes=1, class_pool=True)


def test_config_validation():
    with pytest.raises(ValueError, match="Invalid value for 'cell'"):
        ModelConfig(n_features=3, cell="rnn")
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig(n_features=3, dropout=1.0)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_a_fixed_projection_folds_into_a_plain_decoder_with_the_same_outputs(cell):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = RecurrentDecoder(ModelConfig(n_features=9, n_classes=4, cell=cell, hidden=12, layers=2))
    m.set_normalisation(rng.normal(size=9), rng.uniform(0.5, 2.0, size=9))
    m.set_fixed_projection(rng.normal(size=(3, 9)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    assert m.rnn.input_size == 3 and not any(p.requires_grad for p in m.proj.parameters())
    plain = m.without_fixed_projection()
    assert not any(k.startswith("proj.") for k in plain.state_dict())
    assert plain.rnn.weight_ih_l0.shape[1] == 9  # what its config says, so it saves, loads and exports as usual
    m.eval()
    plain.eval()
    x = torch.as_tensor(rng.normal(size=(2, 50, 9)), dtype=torch.float32)
    with torch.no_grad():
        for a, b in zip(m(x)[:2], plain(x)[:2]):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="Invalid value for 'projection': a fixed projection replaces"):
        RecurrentDecoder(ModelConfig(n_features=9, projection=4)).set_fixed_projection(np.zeros((3, 9)), np.zeros(3))
