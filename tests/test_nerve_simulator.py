import numpy as np
import pytest
from scipy import signal
from scipy.stats import kurtosis

from neurohand.decoder.feature_config import default_feature_config
from neurohand.decoder.features import FeatureExtractor
from neurohand.firmware_bridge.nerve_simulator import (
    CLASS_NAMES,
    MOVEMENTS,
    SimulatorConfig,
    make_patient,
    simulate_recording,
    unit_rates,
)


def test_shapes_units_and_metadata(small_sim):
    rec = small_sim
    assert rec.signals.shape == (int(0.5 * 60 * 5000), 8)
    assert rec.signals.dtype == np.float32 and rec.units == "uV" and rec.signal_kind == "nerve"
    assert rec.channel_names[:4] == ("median0", "median1", "median2", "median3")
    assert rec.channel_names[4] == "ulnar0"
    assert rec.class_names == CLASS_NAMES and len(CLASS_NAMES) == len(MOVEMENTS) + 1
    assert rec.positions.min() >= 0 and rec.positions.max() <= 1
    assert np.all(np.diff(rec.position_index) > 0)
    assert rec.metadata["source"] == "simulator"
    assert len(rec.cues) >= 5
    assert np.isfinite(rec.signals).all()


def test_deterministic_for_a_seed():
    cfg = SimulatorConfig(minutes=0.05, n_channels=4, fs_hz=4000.0, seed=11)
    a, b = simulate_recording(cfg), simulate_recording(cfg)
    assert np.array_equal(a.signals, b.signals) and np.array_equal(a.positions, b.positions)
    c = simulate_recording(SimulatorConfig(minutes=0.05, n_channels=4, fs_hz=4000.0, seed=12))
    assert not np.array_equal(a.signals, c.signals)


def test_mains_interference_at_configured_frequency():
    for mains in (50.0, 60.0):
        rec = simulate_recording(SimulatorConfig(minutes=0.1, n_channels=2, fs_hz=4000.0, mains_hz=mains, seed=1))
        f, p = signal.welch(rec.signals[:, 0], fs=rec.fs_hz, nperseg=4000)
        band = (f > 30) & (f < 90)
        assert abs(f[band][np.argmax(p[band])] - mains) <= 1.0


def test_spiking_activity_is_heavy_tailed_in_the_spike_band(small_sim):
    sos = signal.butter(2, [300, 2000], btype="bandpass", output="sos", fs=small_sim.fs_hz)
    y = signal.sosfilt(sos, small_sim.signals, axis=0)
    # Gaussian noise has excess kurtosis 0; superimposed spikes make it clearly positive
    assert np.median(kurtosis(y, axis=0)) > 1.0


def test_cues_precede_movement_by_a_reaction_delay(small_sim):
    rec = small_sim
    delays = []
    for cue in rec.cues:
        s = int(cue["sample"])
        after = np.flatnonzero(rec.labels[s:] == cue["label"])
        if len(after):
            delays.append(after[0] / rec.fs_hz)
    delays = np.array(delays)
    assert len(delays) >= 5
    assert np.all(delays >= 0.14) and np.all(delays <= 0.36)


def test_moving_finger_moves_most(small_sim):
    rec = small_sim
    pos = rec.positions_at(np.arange(0, rec.n_samples, 50))
    lab = rec.labels[::50]
    for k, (name, target) in enumerate(MOVEMENTS[:5], start=1):
        if (lab == k).sum() < 10:
            continue
        change = pos[lab == k].mean(0) - pos[lab == 0].mean(0)
        assert np.argmax(change) == int(np.argmax(target)), name


def test_rates_are_nonlinear_in_position_and_velocity():
    patient = make_patient(SimulatorConfig(n_channels=4, units_per_nerve=10, seed=2))
    p = np.zeros((5, 5))
    for i, v in enumerate(np.linspace(0, 1, 5)):
        p[i, :] = v
    still = unit_rates(patient, np.repeat(p, 50, axis=0), 1000.0)[25::50]  # mid-plateau: zero velocity
    flexors = ~patient.extensor
    r = still[:, flexors]
    assert np.all(r[-1] > r[0])  # flexor units fire more with flexion
    second = np.diff(r, 2, axis=0)
    assert np.abs(second).max() > 1.0  # not a straight line in position
    ramp = np.linspace(0, 1, 1000)[:, None] * np.ones((1, 5))
    moving = unit_rates(patient, ramp, 1000.0)[500]
    static = unit_rates(patient, np.full((1000, 5), 0.5), 1000.0)[500]
    assert np.mean(moving[flexors] - static[flexors]) > 0  # velocity adds drive


def test_features_carry_the_fingers(small_sim):
    rec = small_sim
    ex = FeatureExtractor(default_feature_config("nerve", fs_hz=rec.fs_hz), fs_hz=rec.fs_hz, n_channels=rec.n_channels)
    frames = ex.transform(rec.signals)
    pos = rec.positions_at(ex.frame_end_samples(0, len(frames)))
    z = (frames - frames.mean(0)) / (frames.std(0) + 1e-9)
    for j in range(5):
        p = (pos[:, j] - pos[:, j].mean()) / (pos[:, j].std() + 1e-9)
        assert np.max(np.abs(z.T @ p / len(p))) > 0.4


def test_days_drift_but_stay_the_same_patient():
    base = dict(minutes=0.05, n_channels=8, fs_hz=4000.0, seed=5)
    p1 = make_patient(SimulatorConfig(day=1, **base))
    p2 = make_patient(SimulatorConfig(day=2, **base))
    p3 = make_patient(SimulatorConfig(day=3, **base))
    assert not np.allclose(p1.gain, p2.gain)
    same_units = np.all(p1.weights == p2.weights, axis=1)
    assert 0.6 < same_units.mean() < 1.0  # some units lost and replaced, most kept
    amp_corr = np.corrcoef(p1.amplitude.ravel(), p2.amplitude.ravel())[0, 1]
    assert amp_corr > 0.5
    assert np.array_equal(make_patient(SimulatorConfig(day=3, **base)).gain, p3.gain)
    assert p3.noise_scale > p2.noise_scale > p1.noise_scale


def test_config_validation():
    with pytest.raises(ValueError, match="'fs_hz'.*2000"):
        SimulatorConfig(fs_hz=1000.0)
    with pytest.raises(ValueError, match="'day'"):
        SimulatorConfig(day=0)
    with pytest.raises(ValueError, match="'n_channels'"):
        SimulatorConfig(n_channels=1)
