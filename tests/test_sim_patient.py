import numpy as np
import pytest

from neurohand.firmware_bridge.interface_link import GloveLink, SourceStalled
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.firmware_bridge.sim_glove import SimGlove
from neurohand.firmware_bridge.sim_interface import SimInterface
from neurohand.firmware_bridge.sim_patient import SimulatedPatient

CFG = SimulatorConfig(n_channels=4, fs_hz=4000.0, seed=5)


def follow(patient, seconds):
    pos, sig = [], []
    for _ in range(int(round(seconds * patient.glove_fs_hz))):
        chunk, _ = patient.read()
        sig.append(chunk)
        pos.append(patient.last_positions)
    return np.array(pos), np.concatenate(sig)


def test_patient_rests_until_the_cue_then_moves_the_cued_finger_after_a_reaction_delay():
    p = SimulatedPatient(CFG, fast=True)
    rest_pos, rest_sig = follow(p, 2.0)
    assert rest_pos.max() < 0.05  # tremor and glove noise only
    p.cue((0, 1, 0, 0, 0), ramp_s=0.5, hold_s=1.5)
    pos, sig = follow(p, 3.5)
    moving = np.flatnonzero(pos[:, 1] > 0.1)
    assert 0.15 <= moving[0] / 100.0 <= 0.5  # reaction delay, then the ramp starts
    hold = pos[80:180]
    assert hold[:, 1].min() > 0.6 and hold[:, 1].mean() > hold[:, [0, 4]].mean() + 0.5  # index flexed, others less
    assert pos[-30:].max() < 0.05  # released afterwards
    assert sig.shape[1] == 4 and len(sig) == int(3.5 * CFG.fs_hz)
    # the nerve fires more while the finger moves and holds than at rest (spike-band power)
    from scipy import signal

    sos = signal.butter(2, [300, 1800], "bandpass", output="sos", fs=CFG.fs_hz)
    active = signal.sosfilt(sos, sig[int(0.3 * CFG.fs_hz):int(2.0 * CFG.fs_hz)], axis=0).std()
    quiet = signal.sosfilt(sos, rest_sig, axis=0)[int(0.2 * CFG.fs_hz):].std()
    assert active > 1.2 * quiet


def test_real_time_pacing():
    import time

    p = SimulatedPatient(CFG)
    t0 = time.monotonic()
    follow(p, 0.3)
    assert time.monotonic() - t0 >= 0.28


def test_glove_streams_what_the_hand_did_over_a_pseudo_terminal():
    with SimGlove(fs_hz=100.0) as glove:
        p = SimulatedPatient(CFG, fast=True, on_glove=glove.push)
        link = GloveLink(glove.port)
        assert link.fs_hz == 100.0 and link.n_channels == 5
        p.cue((1, 0, 0, 0, 0), ramp_s=0.3, hold_s=0.5)
        sent, got = [], []
        for _ in range(120):
            p.read()
            sent.append(p.last_positions)
            got.append(link.poll())
        import time

        time.sleep(0.05)
        got.append(link.poll())
        got = np.concatenate(got)
        np.testing.assert_allclose(got, np.array(sent), atol=0.0006)  # 0..1000 on the wire
        assert link.dropped_samples == 0 and link.poll().shape == (0, 5)
        link.close()


def test_glove_link_refuses_a_device_that_is_not_a_glove():
    rec = simulate_recording(SimulatorConfig(minutes=0.02, n_channels=4, fs_hz=4000.0, seed=1))
    with SimInterface(rec) as interface:
        with pytest.raises(SourceStalled, match="no HELLO from the data glove"):
            GloveLink(interface.port, hello_timeout_s=0.3)
