import numpy as np
import pytest

from neurohand.training.metrics import (
    classification_metrics,
    confusion_matrix,
    decoding_delay_ms,
    macro_f1,
    pearson_per_finger,
    r2_per_finger,
    regression_metrics,
)


def test_r2_pearson_rmse_known_values(rng):
    y = rng.uniform(size=(500, 5))
    np.testing.assert_allclose(r2_per_finger(y, y), 1.0)
    np.testing.assert_allclose(r2_per_finger(y, np.tile(y.mean(0), (500, 1))), 0.0, atol=1e-12)
    np.testing.assert_allclose(pearson_per_finger(y, 2 * y + 1), 1.0)
    m = regression_metrics(y, y + 0.1, hop_ms=10.0)
    assert m["rmse_mean"] == pytest.approx(0.1)
    assert m["r2_mean"] < 1.0 and m["pearson_r_mean"] == pytest.approx(1.0)


@pytest.mark.parametrize("lag", [0, 7, -3])
def test_delay_recovers_a_known_shift(lag):
    rng = np.random.default_rng(1)
    t = np.stack([np.convolve(rng.normal(size=2000), np.hanning(30), mode="same") for _ in range(5)], axis=1)
    pred = np.roll(t, lag, axis=0)  # prediction lags the truth by `lag` frames
    assert decoding_delay_ms(t[50:-50], pred[50:-50], hop_ms=10.0) == pytest.approx(10.0 * lag)


def test_confusion_and_f1():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    cm = confusion_matrix(y, p, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # per-class F1: 0.5, 0.8, 0.667
    assert macro_f1(cm) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    m = classification_metrics(y, p, 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
