import numpy as np
import pytest

from neurohand.calibration.cue_protocol import CueProtocol
from neurohand.calibration.session import CalibrationSession, resume
from neurohand.decoder.session_file import read_recording
from neurohand.deploy.sources import RecordingSource
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

PROTOCOL = CueProtocol(movements=(("index_flexion", (0, 1, 0, 0, 0)), ("power_grip", (0.8, 1, 1, 1, 1))),
                       repetitions=2, hold_s=0.3, rest_s=0.2, ramp_s=0.1, randomize=False)


@pytest.fixture(scope="module")
def sim():
    return simulate_recording(SimulatorConfig(minutes=0.1, n_channels=4, fs_hz=4000.0, seed=4))


def source(sim, **kw):
    return RecordingSource(sim, chunk_samples=40, fast=True, loop=True, **kw)


def scripted(actions):
    it = iter(actions)
    return lambda trial: next(it, "continue")


def test_clinician_pause_repeat_skip(tmp_path, sim):
    path = str(tmp_path / "s.h5")
    shown = []
    s = CalibrationSession(PROTOCOL, source(sim), path, patient_id="P9",
                           clinician=scripted(["continue", "pause", "pause", "repeat", "continue", "skip"]),
                           on_trial=lambda t: shown.append(t.index))
    done = s.run()
    # trial 0, repeat of 0, trial 1, skip 2, trial 3
    assert done == [0, 0, 1, 3] and shown == done
    assert any("skipped trial 2" in m for m in s.log)
    assert s.log[:2] == ["paused before trial 1", "resumed"]  # one pause, however long
    rec = read_recording(path)
    per_trial = int(round((2 * 0.1 + 0.3 + 0.2) * 4000))
    assert rec.n_samples == 4 * per_trial
    assert [c["name"].decode() for c in rec.cues] == ["index_flexion@0", "index_flexion@0", "power_grip@1",
                                                      "power_grip@3"]
    assert rec.metadata["patient_id"] == "P9" and rec.class_names == PROTOCOL.class_names
    # labels and positions follow the cue: during index flexion the index target rises to 1, others stay 0
    hold = int((0.1 + 0.15) * 4000)
    assert rec.labels[hold] == 1
    np.testing.assert_allclose(rec.positions_at([hold])[0], [0, 1, 0, 0, 0], atol=1e-6)
    assert set(np.unique(rec.repetitions)) == {1, 2}


def test_killed_session_resumes_after_the_last_complete_trial(tmp_path, sim):
    path = str(tmp_path / "s.h5")
    per_trial = int(round((2 * 0.1 + 0.3 + 0.2) * 4000))
    crash_at = (2 * per_trial + per_trial // 2) // 40  # halfway through the third trial

    def inject(i, x):
        if i == crash_at:
            raise RuntimeError("power lost")
        return x

    s = CalibrationSession(PROTOCOL, source(sim, inject=inject), path)
    with pytest.raises(RuntimeError, match="power lost"):
        s.run()  # the process 'dies': the writer is never closed
    again = resume(PROTOCOL, source(sim), path)
    assert again.next_index == 2 and again.completed == [0, 1]
    again.run()
    rec = read_recording(path)
    assert [c["name"].decode() for c in rec.cues] == ["index_flexion@0", "power_grip@1", "index_flexion@2",
                                                      "power_grip@3"]
    assert rec.n_samples == 4 * per_trial  # the interrupted half-trial was dropped and recorded again
    np.testing.assert_array_equal(np.diff(rec.cues["sample"]), per_trial)


def test_invalid_action_is_refused(tmp_path, sim):
    s = CalibrationSession(PROTOCOL, source(sim), str(tmp_path / "s.h5"), clinician=lambda t: "dance")
    with pytest.raises(ValueError, match="Invalid value for 'action'"):
        s.run()
