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
    assert "skipped trial 3 (index flexion)" in s.log  # numbered from 1, as on screen
    assert s.log[:3] == ["paused before trial 2 (power grip)", "resumed", "repeating trial 1 (index flexion)"]
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


PER_TRIAL = int(round((2 * 0.1 + 0.3 + 0.2) * 4000))  # samples of one trial of PROTOCOL at 4000 Hz
MOVE = int(round((2 * 0.1 + 0.3) * 4000))  # of its movement (the rest follows)


class Keys:
    """Keys pressed while a given trial records, after a given number of its samples: {(trial, sample): action}."""

    def __init__(self, script):
        self.script = dict(script)
        self.session = None
        self.trial = None
        self.got = 0
        self.seen = []  # (trial on screen, the upcoming trial the rest screen announces)

    def on_trial(self, trial):
        self.trial, self.got = trial.index, 0

    def on_chunk(self, trial, chunk, t_s, target, glove):
        if trial is not None:
            self.got = int(round(t_s * 4000))
            nxt = self.session.upcoming()
            self.seen.append((trial.index, nxt.index if nxt is not None else None))

    def interrupt(self):
        for (k, at), action in list(self.script.items()):
            if k == self.trial and self.got >= at:
                del self.script[(k, at)]
                return action
        return None


def keyed_session(path, sim, script, **kw):
    keys = Keys(script)
    s = CalibrationSession(PROTOCOL, source(sim), path, interrupt=keys.interrupt, on_trial=keys.on_trial,
                           on_chunk=keys.on_chunk, **kw)
    keys.session = s
    return s, keys


def cue_names(path):
    return [c["name"].decode() for c in read_recording(path).cues]


def test_stop_mid_trial_cuts_it_keeps_everything_and_resumes(tmp_path, sim):
    path = str(tmp_path / "s.h5")
    s, _ = keyed_session(path, sim, {(1, 400): "stop"})
    assert s.run() == [0]
    assert s.stopped and s.cut == [1] and s.log[-1] == "stopped: trial 2 (power grip) cut; what it recorded is kept"
    rec = read_recording(path)
    assert rec.n_samples == PER_TRIAL + 400  # acted on the chunk after the key (40 samples = 10 ms): nothing lost
    assert cue_names(path) == ["index_flexion@0", "power_grip@1", "cut@1"]
    assert rec.cues["sample"][-1] == PER_TRIAL + 399 and rec.cues["duration_samples"][-1] == 400
    again = resume(None, source(sim), path)
    assert again.next_index == 1 and again.completed == [0]
    again.run()
    rec = read_recording(path)
    assert rec.n_samples == 4 * PER_TRIAL + 400  # the cut part is kept, the trial recorded again in full
    assert cue_names(path) == ["index_flexion@0", "power_grip@1", "cut@1", "power_grip@1", "index_flexion@2",
                               "power_grip@3"]


def test_repeat_and_skip_act_mid_trial_and_the_rest_screen_announces_what_comes(tmp_path, sim):
    path = str(tmp_path / "s.h5")
    # trial 0: 'r' during its movement (cut, cued again); its repeat: 's' during the rest (trial 1 is skipped);
    # trial 2: 'r' during the rest (trial 2 again next); then trial 3
    s, keys = keyed_session(path, sim, {(0, 200): "repeat", (0, MOVE + 200): "skip", (2, MOVE + 200): "repeat"})
    done = s.run()
    assert done == [0, 2, 2, 3] and s.cut == [0] and s.skipped == [1]
    assert cue_names(path) == ["index_flexion@0", "cut@0", "index_flexion@0", "index_flexion@2", "index_flexion@2",
                               "power_grip@3"]
    assert "skipping trial 2 (power grip) after this rest" in s.log
    assert "repeating trial 3 (index flexion) after this rest" in s.log
    # what the rest screen announced: trial 1 until 's', then trial 2; during trial 2's rest after 'r', trial 2
    announced_0 = [n for k, n in keys.seen if k == 0]
    assert announced_0[0] == 1 and announced_0[-1] == 2
    announced_2 = [n for k, n in keys.seen if k == 2]
    assert announced_2[0] == 3 and 2 in announced_2 and announced_2[-1] == 3  # the repeat's own rest: trial 3
    assert read_recording(path).n_samples == 4 * PER_TRIAL + 200


def test_pause_mid_trial_cuts_it_and_cues_it_again_on_resume(tmp_path, sim):
    path = str(tmp_path / "s.h5")
    answers = iter(["continue", "pause", "pause", "continue"])
    s, _ = keyed_session(path, sim, {(0, 800): "pause"}, clinician=lambda trial: next(answers, "continue"))
    assert s.run() == [0, 1, 2, 3] and s.cut == [0]
    assert "paused: trial 1 (index flexion) cut; what it recorded is kept; it is cued again on resume" in s.log
    rec = read_recording(path)
    assert cue_names(path)[:3] == ["index_flexion@0", "cut@0", "index_flexion@0"]
    assert rec.n_samples == 4 * PER_TRIAL + 800
    assert list(rec.segment_starts) == [0, 800]  # the pause (its samples discarded) starts a new segment


def test_a_glove_unplugged_mid_trial_stops_the_session_and_keeps_the_trial(tmp_path, sim):
    class Glove:
        fs_hz = 100.0
        polls = 0

        def poll(self):
            self.polls += 1
            if self.polls > 30:
                raise OSError("device reports readiness to read but returned no data")
            return np.full((1, 5), 0.5, np.float32)

    path = str(tmp_path / "s.h5")
    s = CalibrationSession(PROTOCOL, source(sim), path, glove=Glove())
    assert s.run() == [] and s.cut == [0]
    assert s.fault == "data glove: device reports readiness to read but returned no data (OSError)"
    assert s.log[-1].startswith("the source failed: trial 1 (index flexion) cut; what it recorded is kept")
    rec = read_recording(path)
    assert cue_names(path) == ["index_flexion@0", "cut@0"] and rec.n_samples == 30 * 40  # the failing chunk too
