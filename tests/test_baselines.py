import numpy as np
import pytest

from neurohand.training.baselines import (
    KalmanDecoder,
    LdaDecoder,
    WienerDecoder,
    fit_baselines,
    lagged,
    lagged_gram,
    load_baselines,
    save_baselines,
)
from neurohand.training.data import FrameSet
from neurohand.training.metrics import r2_per_finger


def synthetic(rng, n=3000, F=6, segments=3, lag=3):
    """Positions driven by features with a delay: a lagged linear model decodes them."""
    x = rng.normal(size=(n, F)).astype(np.float32)
    w = rng.normal(size=(F, 5))
    y = np.zeros((n, 5))
    y[lag:] = x[:-lag] @ w
    y = 1 / (1 + np.exp(-0.5 * y))
    lab = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1.0)  # classes visible in the current frame
    seg = np.repeat(np.arange(segments), n // segments)
    reps = seg + 1
    return FrameSet(features=x, positions=y.astype(np.float32), labels=lab, repetitions=reps, segment=seg,
                    hop_ms=10.0, class_names=("rest", "a", "b"))


def test_lagged_is_causal_and_restarts_per_segment():
    x = np.arange(10, dtype=np.float32)[:, None]
    out = lagged(x, [slice(0, 5), slice(5, 10)], 3, 2)
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    np.testing.assert_array_equal(out[:, 1], [0, 0, 0, 1, 2, 0, 0, 5, 6, 7])
    np.testing.assert_array_equal(out[:, 2], [0, 0, 0, 0, 0, 0, 0, 0, 0, 5])


@pytest.mark.parametrize("n_lags, spacing", [(1, 1), (3, 2), (4, 5)])
def test_lagged_gram_equals_the_dense_product(rng, n_lags, spacing):
    # segments longer than the lag span, shorter than it, shorter than one lag, and a single frame
    seg = np.repeat([0, 1, 2, 3, 4], [400, 9, 3, 1, 250])
    z = rng.normal(0.5, 1.0, size=(len(seg), 6)).astype(np.float32).astype(np.float64)  # as lagged() stores it
    y = rng.normal(size=(len(seg), 2))
    fs = FrameSet(features=z, positions=None, labels=None, repetitions=seg + 1, segment=seg, hop_ms=10.0,
                  class_names=("rest",))
    yc = y - y.mean(axis=0)
    X = lagged(z, fs.segment_slices(), n_lags, spacing).astype(np.float64)
    Xc = X - X.mean(axis=0)
    cache = {}
    lagged_gram(z, fs.segment_slices(), 2, spacing, yc, cache=cache)  # another layout fills part of the cache
    for c in (cache, None):
        gram, rhs, x_mean = lagged_gram(z, fs.segment_slices(), n_lags, spacing, yc, cache=c)
        np.testing.assert_allclose(x_mean, X.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gram, Xc.T @ Xc, rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(rhs, Xc.T @ yc, rtol=1e-10, atol=1e-9)


def test_wiener_matches_scikit_learn_ridge_and_finds_the_lag(rng):
    from sklearn.linear_model import Ridge

    fs = synthetic(rng)
    train, val = fs.subset(fs.segment < 2), fs.subset(fs.segment == 2)
    w = WienerDecoder.fit(train, val)
    assert (w.n_lags - 1) * w.spacing >= 3  # its history reaches the true delay
    z = ((train.features - w.mean) / w.std).astype(np.float32)
    X = lagged(z, train.segment_slices(), w.n_lags, w.spacing)
    ref = Ridge(alpha=w.alpha * X.shape[1]).fit(X, train.positions)
    np.testing.assert_allclose(w.coef, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(w.intercept, ref.intercept_, atol=1e-4)
    assert r2_per_finger(val.positions, w.predict(val)).mean() > 0.6


def test_kalman_and_lda_learn_and_round_trip(tmp_path, rng):
    fs = synthetic(rng)
    train, val = fs.subset(fs.segment < 2), fs.subset(fs.segment == 2)
    models = fit_baselines(train, val)
    assert set(models) == {"wiener", "kalman", "lda"}
    assert isinstance(models["kalman"], KalmanDecoder) and isinstance(models["lda"], LdaDecoder)
    assert np.mean(models["lda"].predict(val) == val.labels) > 0.5
    path = str(tmp_path / "b.npz")
    save_baselines(path, models)
    back = load_baselines(path)
    for name in models:
        np.testing.assert_array_equal(np.asarray(back[name].predict(val)), np.asarray(models[name].predict(val)))
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert all(z[k].dtype != object for k in z.files)


def test_kalman_tracks_a_random_walk(rng):
    """Textbook case: positions follow a slow random walk, features are noisy linear readouts."""
    n = 4000
    from scipy.signal import lfilter

    slow = lfilter([0.02], [1, -0.98], rng.normal(size=(n, 5)), axis=0)  # smooth, stationary
    pos = 0.5 + 0.3 * slow / np.abs(slow).max(axis=0)
    H = rng.normal(size=(12, 5))
    feats = (pos @ H.T + rng.normal(0, 0.3, (n, 12))).astype(np.float32)
    seg = (np.arange(n) >= 3000).astype(int)
    fs = FrameSet(features=feats, positions=pos.astype(np.float32), labels=None, repetitions=seg + 1, segment=seg,
                  hop_ms=10.0, class_names=("rest",))
    train, test = fs.subset(seg == 0), fs.subset(seg == 1)
    k = KalmanDecoder.fit(train, test)
    r2_kalman = r2_per_finger(pos[seg == 1], k.predict(test)).mean()
    # a per-frame least-squares readout of the same features, without dynamics
    X = np.c_[feats, np.ones(n)]
    w = np.linalg.lstsq(X[seg == 0], pos[seg == 0], rcond=None)[0]
    r2_static = r2_per_finger(pos[seg == 1], X[seg == 1] @ w).mean()
    assert r2_kalman > 0.7
    assert r2_kalman > r2_static + 0.05  # the dynamics model filters the observation noise


def test_binary_lda_has_two_columns(rng):
    fs = synthetic(rng)
    fs2 = FrameSet(features=fs.features, positions=None, labels=(fs.labels > 0).astype(np.int64),
                   repetitions=fs.repetitions, segment=fs.segment, hop_ms=10.0, class_names=("rest", "move"))
    m = LdaDecoder.fit(fs2.subset(fs2.segment < 2), fs2.subset(fs2.segment == 2))
    assert m.coef.shape[0] == 2
    pred = m.predict(fs2)
    assert set(np.unique(pred)) <= {0, 1}
    assert np.mean(pred == fs2.labels) > 0.6


@pytest.mark.parametrize("n_lags,spacing", [(1, 1), (5, 2)])
def test_lagged_shapes(n_lags, spacing):
    x = np.ones((20, 3), np.float32)
    assert lagged(x, [slice(0, 20)], n_lags, spacing).shape == (20, 3 * n_lags)


def _textbook_kalman(k: KalmanDecoder, frames: FrameSet) -> np.ndarray:
    """Predict / update per frame, restarting at each segment (Wu et al. 2003)."""
    obs = ((frames.features - k.mean) / k.std) @ k.pca
    out = np.zeros((len(obs), 5))
    eye = np.eye(len(k.x0))
    for s in frames.segment_slices():
        x, P = k.x0.copy(), k.P0.copy()
        for t in range(s.start, s.stop):
            x = k.A @ x
            P = k.A @ P @ k.A.T + k.W
            S = k.H @ P @ k.H.T + k.Q
            K = np.linalg.solve(S, k.H @ P).T
            x = x + K @ (obs[t] - k.H @ x)
            P = (eye - K @ k.H) @ P
            out[t] = x[:5]
    return np.clip(out, 0.0, 1.0)


def test_kalman_shared_gain_schedule_equals_the_textbook_loop(rng):
    fs = synthetic(rng, n=3000, segments=3)
    train = fs.subset(fs.segment < 2)
    # segments of unequal length, one shorter than the gain schedule's convergence and one much longer
    seg = np.repeat([0, 1, 2, 3], [7, 1500, 40, 1453])
    test = FrameSet(features=fs.features, positions=fs.positions, labels=None, repetitions=seg + 1, segment=seg,
                    hop_ms=10.0, class_names=("rest",))
    k = KalmanDecoder.fit(train, fs.subset(fs.segment == 2))
    K, M = k.gains(1500)
    assert len(K) < 1500  # the schedule converged and is cut short
    np.testing.assert_allclose(k.predict(test), _textbook_kalman(k, test), atol=1e-9)
