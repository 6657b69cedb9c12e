import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from neurohand.decoder.filters import CausalFilterBank, FilterConfig, design_sos, group_delay_ms

EMG = FilterConfig(bandpass_hz=(20.0, 450.0), bandpass_order=4, notch_hz=50.0, notch_harmonics=3)


def test_causal_impulse_zero_before_arrival():
    """Physics of a causal filter (MNE test_iir_phase): nothing comes out before the impulse."""
    bank = CausalFilterBank(EMG, fs_hz=1000.0, n_channels=2)
    x = np.zeros((400, 2))
    x[200, :] = 1.0
    y, _ = bank.process(bank.new_state(), x)
    assert np.all(y[:200] == 0.0)
    assert np.abs(y[200:]).max() > 0.01
    assert bank.phase == "causal"


def test_notch_and_passband_gain():
    fs = 1000.0
    bank = CausalFilterBank(EMG, fs_hz=fs, n_channels=1)
    t = np.arange(int(4 * fs)) / fs
    cases = ((50.0, -300, -30), (150.0, -300, -30), (200.0, -1.5, 0.5), (100.0, -300, -30), (5.0, -300, -30))
    for f0, lo_db, hi_db in cases:
        x = np.sin(2 * np.pi * f0 * t)[:, None]
        y, _ = bank.process(bank.new_state(), x)
        gain_db = 20 * np.log10(np.std(y[int(2 * fs):]) / np.std(x[int(2 * fs):]))
        assert lo_db < gain_db < hi_db, (f0, gain_db)


def test_design_errors_name_the_problem():
    with pytest.raises(ValueError, match="below Nyquist"):
        design_sos(FilterConfig(bandpass_hz=(20.0, 600.0)), 1000.0)
    with pytest.raises(ValueError, match="'notch_hz'.*below Nyquist"):
        design_sos(FilterConfig(notch_hz=600.0), 1000.0)
    with pytest.raises(ValueError, match="'bandpass_hz'"):
        FilterConfig(bandpass_hz=(100.0, 50.0))
    assert design_sos(FilterConfig(), 100.0).shape == (0, 6)


def test_unstable_design_is_refused(monkeypatch):
    bad = np.array([[1.0, 0, 0, 1.0, -2.5, 1.2]])  # poles outside the unit circle
    monkeypatch.setattr(signal, "butter", lambda *a, **k: bad)
    with pytest.raises(ValueError, match="Unstable filter"):
        design_sos(FilterConfig(bandpass_hz=(20.0, 450.0)), 1000.0)


def test_input_not_modified_and_wrong_channels(rng):
    bank = CausalFilterBank(EMG, fs_hz=1000.0, n_channels=3)
    x = rng.normal(size=(100, 3))
    x0 = x.copy()
    bank.process(bank.new_state(), x)
    assert np.array_equal(x, x0)
    with pytest.raises(ValueError, match="3 channels"):
        bank.process(bank.new_state(), rng.normal(size=(10, 4)))


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=600), min_size=0, max_size=8))
def test_block_size_invariance(cuts):
    x = np.random.default_rng(1).normal(size=(600, 2)).astype(np.float32)
    bank = CausalFilterBank(EMG, fs_hz=1000.0, n_channels=2)
    whole, _ = bank.process(bank.new_state(), x)
    state = bank.new_state()
    parts = []
    bounds = [0] + sorted(cuts) + [600]
    for a, b in zip(bounds[:-1], bounds[1:]):
        y, state = bank.process(state, x[a:b])
        parts.append(y)
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-6)


def test_group_delay_is_positive_and_small():
    sos = design_sos(FilterConfig(bandpass_hz=(300.0, 3000.0), bandpass_order=2), 30000.0)
    gd = group_delay_ms(sos, 30000.0, 1000.0)
    assert 0.0 < gd < 2.0
    assert group_delay_ms(np.zeros((0, 6)), 100.0, 10.0) == 0.0


def test_config_round_trip():
    d = EMG.to_dict()
    assert FilterConfig.from_dict(d) == EMG
    with pytest.raises(ValueError, match="Unknown filter config keys"):
        FilterConfig.from_dict({**d, "phase": "zero"})


@pytest.mark.parametrize("fast", [True, False])
def test_fast_path_equals_public_sosfilt(monkeypatch, rng, fast):
    import neurohand.decoder.filters as filters

    if not fast:
        monkeypatch.setattr(filters, "_sosfilt_inplace", None)
    elif filters._sosfilt_inplace is None:
        pytest.skip("this scipy has no scipy.signal._sosfilt._sosfilt; the public path is used")
    bank = CausalFilterBank(EMG, fs_hz=1000.0, n_channels=3)
    x = rng.normal(size=(500, 3)).astype(np.float32)
    state = bank.new_state()
    y1, state = bank.process(state, x[:200])
    y2, state = bank.process(state, x[200:])
    ref = signal.sosfilt(bank.sos.astype(np.float32), x, axis=0)
    np.testing.assert_allclose(np.concatenate([y1, y2]), ref, rtol=1e-5, atol=1e-5)
