"""The LibEMG features (issue 26): IAV, VAR, MSR, WAMP, DASDV, MFL, L-score against LibEMG's formulas."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from neurohand.decoder.feature_config import FeatureConfig, default_feature_config
from neurohand.decoder.feature_kinds import lscore_weights
from neurohand.decoder.features import FeatureExtractor
from neurohand.decoder.filters import FilterConfig

NEW = ("iav", "var", "msr", "wamp", "dasdv", "mfl", "lscore")


def libemg_lscore(w):
    """LibEMG's ``__lmom(signal, 2)[0, 1]`` for one window: probability-weighted moments of the sorted samples."""
    n = len(w)
    s = np.sort(w)
    b0 = np.mean(w)
    num = np.arange(2, n + 1) - 1  # prod over r=1 rows of (j - 1), j = 2..n
    b1 = 1.0 / n * np.sum(num / (n - 1) * s[1:n])
    return 2 * b1 - b0  # shifted Legendre polynomial P1* = (2, -1) on (b1, b0)


def libemg_reference(x, cfg, fs):
    """LibEMG's formulas per window; difference features see the window and the sample before it (x = 0 before 0)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    h = int(round(cfg.hop_ms * fs / 1000))
    N = int(round(cfg.window_ms * fs / 1000))
    xp = np.concatenate([np.zeros((1, x.shape[1])), x])
    out = []
    for a in range(0, len(x) - N + 1, h):
        w = x[a:a + N].T  # (C, N), LibEMG's (channels, samples) per window
        we = xp[a:a + N + 1].T  # (C, N + 1): the window and the sample before it
        d = np.diff(we, axis=1)
        row = []
        for f in cfg.features:
            if f == "iav":
                row.append(np.sum(np.abs(w), axis=1))
            elif f == "var":
                row.append(np.var(w, axis=1))
            elif f == "msr":
                row.append(np.abs(np.mean(np.sqrt(w.astype("complex")), axis=1)))
            elif f == "wamp":
                thr = cfg.wamp_threshold
                if cfg.wamp_relative:
                    thr = thr * np.sqrt(np.mean(d**2, axis=1, keepdims=True))
                row.append(np.sum(np.abs(d) > thr, axis=1))
            elif f == "dasdv":
                row.append(np.sqrt(np.mean(d**2, axis=1)))
            elif f == "mfl":
                row.append(np.log10(np.sum(np.abs(d), axis=1) + cfg.log_floor))
            elif f == "lscore":
                row.append(np.array([libemg_lscore(c) for c in w]))
        out.append(np.concatenate(row))
    return np.array(out)


def plain(features, **kw):
    return FeatureConfig(filters=FilterConfig(), window_ms=40.0, hop_ms=10.0, features=features, **kw)


@pytest.mark.parametrize("thr,relative", [(0.0, False), (0.8, False), (1.0, True)])
def test_new_features_match_libemg_formulas_on_random_windows(thr, relative):
    rng = np.random.default_rng(26)
    x = rng.normal(0.0, 1.0, (400, 3)) + rng.standard_t(3, (400, 3))
    x[:, 2] += 0.5  # an offset channel: msr's negative and positive parts differ, var removes the mean
    cfg = plain(NEW, wamp_threshold=thr, wamp_relative=relative)
    ex = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=3)
    got = ex.transform(x)
    ref = libemg_reference(x, cfg, 1000.0)
    assert got.shape == ref.shape == (37, 21)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    assert ex.feature_names[:4] == ["iav:ch0", "iav:ch1", "iav:ch2", "var:ch0"]


def test_lscore_is_half_the_mean_absolute_difference_of_pairs():
    rng = np.random.default_rng(1)
    for n in (2, 3, 17, 40):
        w = rng.normal(size=n)
        pairs = np.abs(w[:, None] - w[None, :]).sum() / (n * (n - 1))
        assert np.sort(w) @ lscore_weights(n) == pytest.approx(pairs / 2)
        assert libemg_lscore(w) == pytest.approx(pairs / 2)
    assert lscore_weights(1).tolist() == [0.0]


def test_physics_constant_scale_and_offset():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 2))
    feats = ("msr", "lscore", "wamp", "dasdv", "iav", "var", "mfl")
    for relative in (False, True):
        ex = FeatureExtractor(plain(feats, wamp_relative=relative, wamp_threshold=0.5), fs_hz=1000.0, n_channels=2)
        const = ex.transform(np.full((300, 2), 3.0))
        # after the step from the rest before the start: no variability at all
        np.testing.assert_array_equal(const[4:, 4:6], 0.0)  # wamp
        np.testing.assert_allclose(const[4:, 2:4], 0.0, atol=1e-12)  # lscore
        a, b = ex.transform(x), ex.transform(4.0 * x)  # a power of two: exact in floating point
        n = ex.n_features // len(feats)
        col = {f: slice(i * n, (i + 1) * n) for i, f in enumerate(feats)}
        np.testing.assert_allclose(b[:, col["msr"]], 2.0 * a[:, col["msr"]], rtol=1e-5)  # sqrt of the gain
        np.testing.assert_allclose(b[:, col["lscore"]], 4.0 * a[:, col["lscore"]], rtol=1e-5)
        np.testing.assert_allclose(b[:, col["dasdv"]], 4.0 * a[:, col["dasdv"]], rtol=1e-5)
        np.testing.assert_allclose(b[:, col["var"]], 16.0 * a[:, col["var"]], rtol=1e-5)
        np.testing.assert_allclose(b[:, col["mfl"]], a[:, col["mfl"]] + np.log10(4.0), atol=1e-4)
        if relative:  # a relative threshold does not see the gain
            np.testing.assert_array_equal(b[:, col["wamp"]], a[:, col["wamp"]])
        else:  # an absolute one counts more of the larger differences
            assert np.all(b[:, col["wamp"]] >= a[:, col["wamp"]]) and b[:, col["wamp"]].sum() > a[:, col["wamp"]].sum()
    shifted = FeatureExtractor(plain(("lscore",)), fs_hz=1000.0, n_channels=2)
    np.testing.assert_allclose(shifted.transform(x + 5.0)[4:], shifted.transform(x)[4:], atol=1e-4)  # location-free


EMG_ALL = FeatureConfig(filters=FilterConfig(bandpass_hz=(20.0, 450.0), notch_hz=60.0), window_ms=200.0, hop_ms=20.0,
                        features=("mav", "zc") + NEW, wamp_threshold=0.7, wamp_relative=True)
CASES = [EMG_ALL, FeatureConfig(filters=FilterConfig(), window_ms=30.0, hop_ms=10.0, features=NEW, wamp_threshold=3.0),
         FeatureConfig(filters=FilterConfig(), window_ms=5.0, hop_ms=5.0, features=("lscore", "wamp", "ssc"),
                       wamp_relative=True, wamp_threshold=0.5)]


@settings(max_examples=30, deadline=None)
@given(case=st.sampled_from(range(len(CASES))),
       fractions=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=12))
def test_any_chunking_gives_identical_frames(case, fractions):
    cfg = CASES[case]
    n = 700
    x = np.random.default_rng(case).normal(0.0, 30.0, (n, 3)).astype(np.float32)
    ex = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=3)
    whole = ex.transform(x)
    cuts = sorted({int(f * n) for f in fractions})
    state, parts = ex.new_state(), []
    for a, b in zip([0] + cuts, cuts + [n]):
        f, state = ex.process(state, x[a:b])
        parts.append(f)
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape and state.n_frames == len(whole)
    np.testing.assert_array_equal(streamed[:, cfg.features.index("lscore") * 3:][:, :3],
                                  whole[:, cfg.features.index("lscore") * 3:][:, :3])  # per-frame: bit for bit
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-5)


def test_old_config_dicts_still_load_and_new_fields_round_trip():
    old = default_feature_config("emg").to_dict()
    for k in ("wamp_threshold", "wamp_relative"):
        old.pop(k)
    cfg = FeatureConfig.from_dict(old)
    assert cfg.wamp_threshold == 0.0 and cfg.wamp_relative is False
    # a config at the defaults writes no WAMP keys: device software from before them still reads it
    assert "wamp_threshold" not in default_feature_config("nerve").to_dict()
    new = FeatureConfig(features=("wamp", "lscore"), wamp_threshold=1.5, wamp_relative=True)
    assert FeatureConfig.from_dict(new.to_dict()) == new
    with pytest.raises(ValueError, match="wamp_threshold"):
        FeatureConfig(features=("wamp",), wamp_threshold=-1.0)
    with pytest.raises(TypeError, match="wamp_relative"):
        FeatureConfig(features=("wamp",), wamp_relative="yes")
