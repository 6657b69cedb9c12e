"""The running feature re-normalisation: causal, block-size invariant, the closed form, the bounds, the wiring."""

import json

import numpy as np
import pytest

from neurohand.decoder.adaptation import AdaptationConfig, FeatureAdapter

HOP_MS = 10.0  # 100 frames a second


def make(rng, F=6, **kw):
    mean = rng.normal(size=F)
    std = rng.uniform(0.5, 2.0, size=F)
    return FeatureAdapter(AdaptationConfig(**kw), hop_ms=HOP_MS, mean=mean, std=std), mean, std


def test_block_size_invariance_and_causality(rng):
    ad, mean, std = make(rng, prior_s=2.0, horizon_s=5.0)
    x = mean + std * rng.normal(size=(1500, 6)) * 1.5 + 0.7
    whole, s_whole = ad.process(ad.new_state(), x)
    parts, st, i = [], ad.new_state(), 0
    while i < len(x):
        n = int(rng.integers(1, 40))
        y, st = ad.process(st, x[i:i + n])
        parts.append(y)
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert st.n_frames == s_whole.n_frames == len(x)
    # causal: changing the future leaves the past untouched
    x2 = x.copy()
    x2[700:] += 50.0
    y2, _ = ad.process(ad.new_state(), x2)
    np.testing.assert_array_equal(y2[:700], whole[:700])
    assert np.max(np.abs(y2[700:] - whole[700:])) > 0.1


def test_closed_form_while_the_prior_still_counts(rng):
    # with a horizon far beyond the data the estimates are a plain average with the prior counted as n0 frames
    ad, mean, std = make(rng, prior_s=1.0, horizon_s=1e6, limit_sd=1e6)
    n0 = 100
    x = mean + std * rng.normal(size=(300, 6)) + 0.3
    y, st = ad.process(ad.new_state(), x)
    t = np.arange(1, len(x) + 1)[:, None]
    m = (n0 * mean + np.cumsum(x, axis=0)) / (n0 + t)
    # variance about the running mean of the prior (n0 frames at mean0 with variance std0**2) and the data
    csum2 = np.cumsum(x ** 2, axis=0)
    ex2 = (n0 * (std ** 2 + mean ** 2) + csum2) / (n0 + t)
    v = ex2 - m ** 2
    expected = mean + std * (x - m) / np.sqrt(v)
    np.testing.assert_allclose(y, expected, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(st.mean, m[-1], rtol=1e-10)


def test_a_gain_and_offset_change_is_mapped_back_onto_the_training_statistics(rng):
    ad, mean, std = make(rng, prior_s=5.0, horizon_s=20.0, limit_sd=10.0)
    train_like = mean + std * rng.normal(size=(12000, 6))
    shifted = 2.5 * (train_like - mean) + mean + 1.5 * std  # the electrodes moved: gain x2.5, offset 1.5 sd
    y, _ = ad.process(ad.new_state(), shifted)
    late = y[6000:]  # after five horizons
    np.testing.assert_allclose(late.mean(0), mean, atol=0.15 * std.max())
    np.testing.assert_allclose(late.std(0), std, rtol=0.1)
    # without a change the adapter leaves frames nearly as they are
    same, _ = ad.process(ad.new_state(), train_like)
    assert np.max(np.abs(same - train_like) / std) < 0.6
    assert np.median(np.abs(same - train_like) / std) < 0.05


def test_a_long_rest_cannot_amplify_noise_beyond_the_limit(rng):
    ad, mean, std = make(rng, prior_s=1.0, horizon_s=2.0, limit_sd=2.0)
    rest = mean - 3.0 * std + 1e-3 * std * rng.normal(size=(3000, 6))  # far below the mean, almost no spread
    y, st = ad.process(ad.new_state(), rest)
    assert np.all(np.sqrt(st.var) < 0.01 * std)  # the running spread itself has collapsed
    late = y[2000:]
    # the output spread is the input's amplified at most limit_sd times, the mean moved by at most limit_sd sd
    assert np.all(late.std(0) <= 2.0 * rest[2000:].std(0) * 1.01)
    # closed form with both bounds active: m clipped to m0 - 2 s0, s to s0 / 2, so x = m0 - 3 s0 maps to m0 - 2 s0
    np.testing.assert_allclose(late.mean(0), mean - 2.0 * std, atol=0.01 * std.max())


def test_a_glitch_cannot_pin_the_estimates_and_nan_leaves_them_alone(rng):
    ad, mean, std = make(rng, prior_s=1.0, horizon_s=10.0)  # 1000-frame horizon
    x = mean + std * rng.normal(size=(6000, 6))
    clean, s_clean = ad.process(ad.new_state(), x)
    bad = x.copy()
    bad[500, 0] = 1e25  # a finite glitch, far beyond anything physical
    bad[500:511, 1] = np.nan  # a feature that could not be computed for 11 frames
    bad[600, 2] = -np.inf
    y, st = ad.process(ad.new_state(), bad)
    assert np.all(np.isfinite(st.mean)) and np.all(np.isfinite(st.var))
    _, at = ad.process(ad.new_state(), bad[:501])
    _, before = ad.process(ad.new_state(), bad[:500])
    # the glitch's pull is clipped at clip_sd = 25 running deviations: the mean moves by 25 a, the variance grows
    # by at most (1 + 25**2 a), with a = 1 / 601 here (still in the plain-average phase: 100 prior frames + 501)
    a = 1.0 / 601.0
    assert abs(at.mean[0] - before.mean[0]) == pytest.approx(25.0 * a * np.sqrt(before.var[0]), rel=1e-9)
    assert at.var[0] <= before.var[0] * (1 + 625.0 * a)
    assert np.isnan(y[500:511, 1]).all() and np.isneginf(y[600, 2])  # bad in, visibly bad out
    # after a few horizons the output is back to the clean one (unclipped, a 1e25 frame would have pinned the mean
    # at its bound for ln(1e25) = 58 horizons); the NaN frames only skip their update
    np.testing.assert_allclose(y[-500:], clean[-500:], atol=0.01 * std.max())
    assert abs(st.mean[0] - s_clean.mean[0]) < 0.01 * std[0]
    np.testing.assert_array_equal(y[:500], clean[:500])
    # frames nowhere near the clip are untouched by it: the same output as with no clip at all
    unclipped = FeatureAdapter(AdaptationConfig(prior_s=1.0, horizon_s=10.0, clip_sd=1e9), hop_ms=HOP_MS,
                               mean=mean, std=std)
    np.testing.assert_array_equal(unclipped.process(unclipped.new_state(), x)[0], clean)


def test_bad_settings_and_frames_are_refused(rng):
    with pytest.raises(ValueError, match="Invalid value for 'horizon_s': expected at least prior_s=30.0, got 10"):
        AdaptationConfig(prior_s=30.0, horizon_s=10)
    with pytest.raises(ValueError, match="Invalid value for 'limit_sd': expected a factor > 1, got 1.0"):
        AdaptationConfig(limit_sd=1.0)
    with pytest.raises(ValueError, match="'prior_s'"):
        AdaptationConfig(prior_s=-1.0)
    ad, _, _ = make(rng)
    with pytest.raises(ValueError, match=r"expected shape \(n, 6\), got \(4, 5\)"):
        ad.process(ad.new_state(), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="positive standard deviations"):
        FeatureAdapter(AdaptationConfig(), hop_ms=HOP_MS, mean=np.zeros(3), std=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected mean and std of shape \(n_features,\), got \(3,\) and \(2,\)"):
        FeatureAdapter(AdaptationConfig(), hop_ms=HOP_MS, mean=np.zeros(3), std=np.ones(2))
    with pytest.raises(ValueError, match=r"got \(2, 3\) and \(2, 3\)"):
        FeatureAdapter(AdaptationConfig(), hop_ms=HOP_MS, mean=np.zeros((2, 3)), std=np.ones((2, 3)))
    with pytest.raises(ValueError, match="Invalid value for 'clip_sd': expected a factor > 1, got 0.5"):
        AdaptationConfig(clip_sd=0.5)
    with pytest.raises(ValueError, match=r"'horizon_s': expected at least one frame \(20.0 ms\), got 0.01 s"):
        FeatureAdapter(AdaptationConfig(prior_s=0.001, horizon_s=0.01), hop_ms=20.0, mean=np.zeros(2),
                       std=np.ones(2))
    with pytest.raises(ValueError, match=r"expected the keys \['prior_s', 'horizon_s', 'limit_sd', 'clip_sd'\]"):
        AdaptationConfig.from_dict({"prior_s": 30.0, "horizon_s": 60.0, "limit_sd": 2.0})
    with pytest.raises(ValueError, match=r"expected the keys \['config', 'mean', 'std'\], got \['config'\]"):
        FeatureAdapter.from_dict({"config": AdaptationConfig().to_dict()}, hop_ms=HOP_MS)
    with pytest.raises(ValueError, match="'mean' and 'std' must be lists of numbers"):
        FeatureAdapter.from_dict({"config": AdaptationConfig().to_dict(), "mean": ["a"], "std": [1.0]},
                                 hop_ms=HOP_MS)


def test_round_trip_through_json(rng):
    ad, _, _ = make(rng, prior_s=3.0, horizon_s=9.0, limit_sd=3.0)
    back = FeatureAdapter.from_dict(json.loads(json.dumps(ad.to_dict())), hop_ms=HOP_MS)
    x = rng.normal(size=(50, 6))
    np.testing.assert_array_equal(back.process(back.new_state(), x)[0], ad.process(ad.new_state(), x)[0])
    assert back.config == ad.config


def test_adapt_frames_restarts_at_each_recording(rng):
    from neurohand.training.data import FrameSet, adapt_frames

    ad, mean, std = make(rng, prior_s=0.5, horizon_s=1.0)
    x = (mean + std * rng.normal(size=(400, 6)) + 3 * std).astype(np.float32)
    rec = np.repeat([0, 1], 200)
    fs = FrameSet(features=x, positions=None, labels=None, repetitions=np.ones(400, np.int64),
                  segment=np.arange(400) // 50, hop_ms=HOP_MS, class_names=("rest",), recording=rec)
    out = adapt_frames(fs, ad)
    np.testing.assert_array_equal(out.features[:200], ad.process(ad.new_state(), x[:200])[0])
    np.testing.assert_array_equal(out.features[200:], ad.process(ad.new_state(), x[200:])[0])
    assert adapt_frames(fs, None) is fs


def _frameset(labels, hop_ms=HOP_MS, n_classes=4):
    from neurohand.training.data import FrameSet

    n = len(labels)
    return FrameSet(features=np.zeros((n, 2), np.float32), positions=None, labels=np.asarray(labels, np.int64),
                    repetitions=np.ones(n, np.int64), segment=np.zeros(n, np.int64), hop_ms=hop_ms,
                    class_names=tuple("c{}".format(k) for k in range(n_classes)))


def test_movement_mix_drift_tells_interleaved_from_blocked_protocols():
    from neurohand.training.data import movement_mix_drift

    trial = 100  # 1 s trials at 10 ms frames
    interleaved = np.tile(np.repeat([0, 1, 0, 2, 0, 3], trial), 20)  # every movement every 6 s
    blocked = np.concatenate([np.tile(np.repeat([0, c], trial), 45) for c in (1, 2, 3, 4, 5)])  # 90 s a movement
    assert movement_mix_drift(interleaved, 4, window_frames=6000) < 0.02
    assert movement_mix_drift(blocked, 6, window_frames=6000) > 0.3
    assert movement_mix_drift(blocked, 6, window_frames=10 ** 6) == 0.0  # one window: the session itself
    assert movement_mix_drift(np.zeros(50, np.int64), 4, window_frames=10) == 0.0


def test_auto_adaptation_follows_the_training_protocol():
    from neurohand.training.config import AdaptationPolicy, TrainConfig

    trial = 100
    interleaved = _frameset(np.tile(np.repeat([0, 1, 0, 2, 0, 3], trial), 20))
    blocked = _frameset(np.concatenate([np.tile(np.repeat([0, c], trial), 45) for c in (1, 2, 3, 4, 5)]),
                        n_classes=6)
    cfg, why = TrainConfig().adaptation.choose(interleaved)
    assert cfg == AdaptationConfig() and why["on"] and "interleaves" in why["reason"]
    cfg, why = TrainConfig().adaptation.choose(blocked)
    assert cfg is None and not why["on"] and "blocks" in why["reason"] and why["mix_drift"] > 0.3
    no_classes = _frameset(np.zeros(600, np.int64), n_classes=1)
    assert TrainConfig().adaptation.choose(no_classes)[0] is None
    assert AdaptationPolicy(mode="on").choose(blocked)[0] == AdaptationConfig()
    assert AdaptationPolicy(mode="off").choose(interleaved)[0] is None
    # shorter than two horizons the check cannot see blocks (a 40 s session is one 60 s window): off, saying why
    short_blocked = _frameset(np.concatenate([np.tile(np.repeat([0, c], trial), 5) for c in (1, 2, 3, 4)]),
                              n_classes=5)
    cfg, why = TrainConfig().adaptation.choose(short_blocked)
    assert cfg is None and not why["on"] and "too short to check its movement mix (40 s" in why["reason"]
    with pytest.raises(ValueError, match="Invalid value for 'adapt': allowed 'auto', 'on', 'off', got 'yes'"):
        AdaptationPolicy(mode="yes")
