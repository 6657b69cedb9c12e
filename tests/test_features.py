import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from neurohand.decoder.feature_config import FEATURES, FeatureConfig, default_feature_config
from neurohand.decoder.features import FeatureExtractor, frames_for_config
from neurohand.decoder.filters import FilterConfig

ALL_TIME = ("mav", "rms", "wl", "zc", "ssc", "logvar", "mean", "logmean", "log_bandpower", "log_mav", "log_wl")


def reference_features(x, fs, cfg):
    """Straightforward per-window numpy formulas, independent of the block implementation."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    h = int(round(cfg.hop_ms * fs / 1000))
    N = int(round(cfg.window_ms * fs / 1000))
    xp = np.concatenate([np.zeros((2, x.shape[1])), x])  # x[i] = 0 before the start
    out = []
    for a in range(0, len(x) - N + 1, h):
        w = x[a:a + N]
        p1 = xp[a + 1:a + N + 1]  # x[i-1]
        p2 = xp[a:a + N]  # x[i-2]
        row = []
        for f in cfg.features:
            if f == "mav":
                row.append(np.mean(np.abs(w), axis=0))
            elif f == "rms":
                row.append(np.sqrt(np.mean(w**2, axis=0)))
            elif f == "wl":
                row.append(np.sum(np.abs(w - p1), axis=0))
            elif f == "zc":
                row.append(np.sum((w * p1 < 0) & (np.abs(w - p1) >= cfg.zc_threshold), axis=0))
            elif f == "ssc":
                s1, s2 = p1 - p2, p1 - w
                row.append(np.sum((s1 * s2 > 0) & (np.maximum(np.abs(s1), np.abs(s2)) >= cfg.ssc_threshold), axis=0))
            elif f == "log_mav":
                row.append(np.log(np.mean(np.abs(w), axis=0) + cfg.log_floor))
            elif f == "log_wl":
                row.append(np.log(np.sum(np.abs(w - p1), axis=0) + cfg.log_floor))
            elif f == "logvar":
                row.append(np.log(np.var(w, axis=0) + cfg.log_floor))
            elif f == "mean":
                row.append(np.mean(w, axis=0))
            elif f == "logmean":
                row.append(np.log(np.maximum(np.mean(w, axis=0), 0) + cfg.log_floor))
            elif f == "log_bandpower":
                freqs, pxx = signal.welch(w, fs=fs, window="hann", nperseg=h, noverlap=0, detrend="constant",
                                          axis=0)
                df = freqs[1] - freqs[0]
                for lo, hi in cfg.bands_hz:
                    m = (freqs >= lo) & (freqs < hi)
                    row.append(np.log(pxx[m].sum(axis=0) * df + cfg.log_floor))
        out.append(np.concatenate(row))
    return np.array(out)


@pytest.mark.parametrize("thr", [0.0, 0.7])
def test_golden_every_feature_matches_numpy_formula(rng, thr):
    fs = 1000.0
    x = rng.normal(0.0, 1.0, (700, 3)) + 0.2 * np.sin(2 * np.pi * 60 * np.arange(700) / fs)[:, None]
    x[:, 2] = np.abs(x[:, 2])  # an envelope-like channel for logmean
    cfg = FeatureConfig(filters=FilterConfig(), window_ms=100.0, hop_ms=20.0, features=ALL_TIME,
                        zc_threshold=thr, ssc_threshold=thr, bands_hz=((0.0, 100.0), (100.0, 250.0), (250.0, 500.0)))
    ex = FeatureExtractor(cfg, fs_hz=fs, n_channels=3)
    got = ex.transform(x)
    ref = reference_features(x, fs, cfg)
    assert got.shape == ref.shape == (31, ex.n_features)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)
    assert len(ex.feature_names) == ex.n_features
    assert ex.feature_names[0] == "mav:ch0"
    assert ex.feature_names[-1] == "log_wl:ch2"


def test_known_values_on_fixed_data():
    # One channel, hop 2 samples, window 4 samples: hand-computed values.
    x = np.array([[1.0], [-1.0], [2.0], [0.0], [-3.0], [1.0]])
    cfg = FeatureConfig(filters=FilterConfig(), window_ms=4.0, hop_ms=2.0, features=("mav", "wl", "zc", "ssc"))
    got = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=1).transform(x)
    # frame 0 = [1, -1, 2, 0] with x[-1] = 0: |1-0|+|-1-1|+|2+1|+|0-2| = 8; zc: (1,-1),(-1,2) = 2
    # ssc centres x[-1]=0 (0-0)*(0-1) no, x0=1 (1-0)(1+1)>0 yes, x1=-1 yes, x2=2 yes -> 3
    # frame 1 = [2, 0, -3, 1]: mav 1.5, wl |2+1|+2+3+4 = 12, zc: (0,-3) is 0 -> no; (-3,1) yes
    #   (x[1], x[2]) = (-1, 2) crosses too -> zc 2
    #   ssc centres x1=-1 yes, x2=2 yes, x3=0 ((0-2)*(0+3)) no, x4=-3 yes -> 3
    np.testing.assert_allclose(got, [[1.0, 8.0, 2.0, 3.0], [1.5, 12.0, 2.0, 3.0]])


CHUNKING_CASES = [
    (default_feature_config("emg"), 1000.0, 3),
    (default_feature_config("nerve"), 10000.0, 2),
    (default_feature_config("envelope"), 100.0, 2),
]


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(range(len(CHUNKING_CASES))),
       fractions=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=0, max_size=10))
def test_block_size_invariance(case, fractions):
    cfg, fs, C = CHUNKING_CASES[case]
    n = int(fs * 0.7)
    x = np.random.default_rng(case).normal(0.0, 30.0, (n, C)).astype(np.float32)
    if cfg.signal_kind == "envelope":
        x = np.abs(x)
    ex = FeatureExtractor(cfg, fs_hz=fs, n_channels=C)
    whole = ex.transform(x)
    cuts = sorted({int(f * n) for f in fractions})
    state = ex.new_state()
    parts = []
    for a, b in zip([0] + cuts, cuts + [n]):
        f, state = ex.process(state, x[a:b])
        parts.append(f)
    streamed = np.concatenate(parts)
    assert streamed.shape == whole.shape
    assert state.n_frames == len(whole)
    assert state.n_samples == n
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-5)


def test_impulse_gives_zero_output_before_it_arrives():
    fs = 1000.0
    cfg = FeatureConfig(filters=FilterConfig(bandpass_hz=(20.0, 450.0), notch_hz=50.0), window_ms=40.0,
                        hop_ms=10.0, features=("mav", "rms", "wl", "zc", "ssc"))
    ex = FeatureExtractor(cfg, fs_hz=fs, n_channels=2)
    x = np.zeros((500, 2))
    x[300] = 100.0
    frames = ex.transform(x)
    ends = ex.frame_end_samples(0, len(frames))
    before = ends < 300
    assert before.sum() > 20
    assert np.all(frames[before] == 0.0)
    assert np.all(frames[ends == 300][:, :2] > 0)  # the frame that holds the impulse sees it


def test_input_is_not_modified(rng):
    cfg = default_feature_config("emg")
    ex = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=4)
    x = rng.normal(size=(1000, 4)).astype(np.float32)
    x0 = x.copy()
    state = ex.new_state()
    _, s1 = ex.process(state, x[:333])
    ex.process(s1, x[333:])
    assert np.array_equal(x, x0)
    # the state passed in is not modified either
    _, s2 = ex.process(s1, x[333:])
    assert s2.n_samples == s1.n_samples + 667


def test_bad_input_raises_clear_errors(rng):
    ex = FeatureExtractor(default_feature_config("emg"), fs_hz=1000.0, n_channels=4)
    x = rng.normal(size=(100, 4))
    x[10, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(first at sample 10, channel 2\)"):
        ex.process(ex.new_state(), x)
    x[10, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        ex.process(ex.new_state(), x)
    with pytest.raises(ValueError, match="must have 4 channels"):
        ex.process(ex.new_state(), rng.normal(size=(100, 5)))
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_channels\)"):
        ex.process(ex.new_state(), rng.normal(size=100))


def test_config_validation_and_round_trip():
    for kind in ("nerve", "emg", "envelope"):
        cfg = default_feature_config(kind)
        assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="Invalid value for 'features': allowed"):
        FeatureConfig(features=("mav", "kurtosis"))
    with pytest.raises(ValueError, match="whole multiple of hop_ms"):
        FeatureConfig(window_ms=25.0, hop_ms=10.0)
    with pytest.raises(ValueError, match="'log_bandpower' needs at least one band"):
        FeatureConfig(features=("log_bandpower",))
    with pytest.raises(ValueError, match="Invalid value for 'signal_kind'"):
        default_feature_config("eeg")
    with pytest.raises(ValueError, match="Unknown feature config keys"):
        FeatureConfig.from_dict({"window_ms": 100.0, "phase": "zero"})
    with pytest.raises(ValueError, match="whole number"):
        FeatureExtractor(FeatureConfig(hop_ms=10.5, window_ms=21.0), fs_hz=1000.0, n_channels=1)
    with pytest.raises(ValueError, match="holds no frequency bin"):
        FeatureExtractor(FeatureConfig(features=("log_bandpower",), bands_hz=((10.0, 20.0),)),
                         fs_hz=1000.0, n_channels=1)
    assert set(FEATURES) >= set(ALL_TIME)


def test_frames_for_config_restarts_at_segments(rng):
    cfg = default_feature_config("envelope")
    x = np.abs(rng.normal(size=(300, 2)))
    frames, ends = frames_for_config(cfg, x, 100.0, segment_starts=[0, 100])
    ex = FeatureExtractor(cfg, fs_hz=100.0, n_channels=2)
    np.testing.assert_allclose(frames, np.concatenate([ex.transform(x[:100]), ex.transform(x[100:])]))
    assert ends[0] == ex.window_samples - 1
    assert np.all(np.diff(ends) > 0)
    assert ends.max() < 300


def test_frame_end_samples_align_with_frames():
    cfg = FeatureConfig(filters=FilterConfig(), window_ms=30.0, hop_ms=10.0, features=("mean",))
    ex = FeatureExtractor(cfg, fs_hz=1000.0, n_channels=1)
    x = np.arange(200, dtype=float)[:, None]
    f = ex.transform(x)
    ends = ex.frame_end_samples(0, len(f))
    # the mean of a ramp over a window ending at e is e - (N - 1) / 2
    np.testing.assert_allclose(f[:, 0], ends - (ex.window_samples - 1) / 2.0, rtol=1e-6)


def test_config_for_recording_uses_kind_rate_and_mains():
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.decoder.recording import Recording

    rec = Recording(signals=np.zeros((10, 2)), fs_hz=1000.0, signal_kind="emg", metadata={"mains_hz": "60"})
    cfg = config_for_recording(rec)
    assert cfg.signal_kind == "emg" and cfg.filters.notch_hz == 60.0
    nerve = Recording(signals=np.zeros((10, 2)), fs_hz=5000.0, signal_kind="nerve")
    assert config_for_recording(nerve).filters.bandpass_hz[1] <= 0.45 * 5000.0
