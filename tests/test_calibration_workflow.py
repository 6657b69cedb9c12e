"""The clinician's whole flow, simulator to accepted bundle, on a short cue protocol."""

import io
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from rich.console import Console

from neurohand.calibration.model_store import ModelStore
from neurohand.calibration.workflow import CalibrationStopped, record_session, run_calibration
from neurohand.decoder.bundle import Bundle
from neurohand.decoder.session_file import read_recording
from neurohand.training.model_dir import load_model_dir
from tests.calibration_options import flat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = """repetitions = 3
hold_s = 1.0
rest_s = 0.5
ramp_s = 0.3
randomize = true
seed = 1

[movements]
index_flexion = [0.0, 1.0, 0.0, 0.0, 0.0]
little_flexion = [0.0, 0.0, 0.0, 0.0, 1.0]
power_grip = [0.8, 1.0, 1.0, 1.0, 1.0]
"""


@pytest.fixture
def protocol_file(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return str(p)


def options(tmp_path, protocol_file, **kw):
    base = dict(patient="P1", store=str(tmp_path / "store"), cue_protocol=protocol_file, fast=True, tui=False,
                yes=True, epochs=2, hidden=16, sim_channels=6, sim_fs_hz=4000.0)
    base.update(kw)
    return flat(**base)


def quiet():
    return Console(file=io.StringIO(), width=120)


def trial_names(path):
    return [c["name"].decode() for c in read_recording(path).cues]


def clinician_accepts(asked):
    """Answer every question with its default, except "Accept?": accept (the clinician overrides the default)."""
    def ask(question, choices, default):
        asked.append((question, default))
        return "accept" if question.startswith("Accept") else default

    return ask


@pytest.mark.slow
def test_calibrate_recalibrate_and_roll_back(tmp_path, protocol_file):
    asked = []
    out = run_calibration(options(tmp_path, protocol_file, labels="glove:sim", yes=False), console=quiet(),
                          ask=clinician_accepts(asked))
    verdict = out.evaluation["verdict"]
    assert asked[-1] == ("Accept this model for patient P1?", "accept" if verdict["ready"] else "reject")
    store = ModelStore(str(tmp_path / "store"), "P1")
    assert out.version == "v001" and store.current() == "v001" and out.verdict in ("ok", "warn")
    rec = read_recording(out.session)
    assert len(rec.cues) == 9 and rec.metadata["labels"] == "glove" and rec.metadata["patient_id"] == "P1"
    assert os.path.dirname(out.session) == store.sessions_dir()  # the recording stays with the patient
    assert not os.path.exists(out.session + ".inprogress")
    meta = store.meta("v001")
    assert set(out.evaluation["decoders"]) == {"gru", "wiener", "kalman", "lda"}  # baselines side by side
    assert meta["metrics"]["gru_r2_mean"] == pytest.approx(out.evaluation["decoders"]["gru"]["r2_mean"])
    assert meta["sessions"] == [os.path.abspath(out.session)] and meta["notes"].startswith("calibrated from scratch")
    assert meta["decoder"] == "gru" and meta["verdict"] == verdict["summary"]
    assert os.path.exists(os.path.join(store.root, "versions", "v001", "report", "report.html"))
    Bundle(store.bundle_path()).check_source(fs_hz=4000.0, n_channels=6)

    again = run_calibration(options(tmp_path, protocol_file, recalibrate=True, minutes=0.25, sim_day=2, yes=False),
                            console=quiet(), ask=clinician_accepts(asked))
    assert again.version == "v002" and store.current() == "v002"
    assert again.before is not None  # the unadapted model was evaluated on the same held-out repetition
    assert len(read_recording(again.session).cues) == 2 * 3  # --minutes 0.25: 2 repetitions fit
    v1, _ = load_model_dir(store.model_path("v001"))
    v2, meta2 = load_model_dir(store.model_path("v002"))
    kept = meta2["recalibration"]["kept"]  # the best of v001 and the candidates on the adapt-on part's held-out end
    assert kept in ("source", "renormalise", "fine_tune")
    assert torch.equal(v1.rnn.weight_hh_l0, v2.rnn.weight_hh_l0)
    assert torch.equal(v1.rnn.weight_ih_l0, v2.rnn.weight_ih_l0) == (kept != "fine_tune")
    assert store.meta("v002")["notes"].startswith("recalibrated from v001 (kept: {})".format(kept))
    assert "before_recalibration_r2_mean" in store.meta("v002")["metrics"]

    from neurohand.cli import main

    assert main(["models", "--patient", "P1", "--store", str(tmp_path / "store"), "--rollback", "v001"]) == 0
    assert store.current() == "v001" and store.versions() == ["v001", "v002"]


@pytest.mark.slow
def test_clinician_rejects_or_stops(tmp_path, protocol_file):
    asked = []

    def stop_at_quality(question, choices, default):
        asked.append((question, choices, default))
        return "stop"

    with pytest.raises(CalibrationStopped, match="Stopped at the quality check"):
        run_calibration(options(tmp_path, protocol_file, yes=False), console=quiet(), ask=stop_at_quality)
    assert asked[0][1] == ["continue", "re-record", "stop"] and asked[0][2] == "continue"

    answers = iter(["re-record", "continue", "reject"])
    out = run_calibration(options(tmp_path, protocol_file, yes=False), console=quiet(),
                          ask=lambda q, c, d: next(answers))
    store = ModelStore(str(tmp_path / "store"), "P1")
    assert out.version is None and store.current() is None and store.versions() == []
    sessions = sorted(f for f in os.listdir(store.sessions_dir()) if f.endswith(".h5"))
    assert len(sessions) == 3  # the stopped one, the re-recorded one and its replacement: nothing is lost


@pytest.mark.slow
def test_yes_rejects_a_model_worse_than_wiener_and_says_why(tmp_path, protocol_file, capsys):
    """A one-epoch, 4-unit GRU is worse than the Wiener filter: --yes rejects it (exit 4); the report says so first."""
    from neurohand.cli import main

    store = str(tmp_path / "store")
    rc = main(["calibrate", "--patient", "P1", "--store", store, "--cue-protocol", protocol_file, "--no-tui", "--yes",
               "--fast", "--sim-channels", "6", "--sim-fs-hz", "4000", "--epochs", "1", "--hidden", "4",
               "--layers", "1"])
    text = " ".join(capsys.readouterr().out.split())
    assert rc == 4 and ModelStore(store, "P1").versions() == []
    assert "not ready: " in text and "is worse than wiener's" in text
    assert "Accept this model for patient P1? -> reject (--yes)" in text
    work = os.path.join(store, "P1", "work")
    report = open(os.path.join(work, os.listdir(work)[0], "report", "report.html"), encoding="utf-8").read()
    assert report.split("<body>", 1)[1].lstrip().startswith("<p id='verdict' class='verdict notready'>not ready: ")


def test_the_accept_default_follows_the_verdict(tmp_path, protocol_file):
    from neurohand.calibration.workflow import accept_default

    ready = {"ready": True, "summary": "ready: finger R² 0.91", "reasons": []}
    worse = {"ready": False, "summary": "not ready: finger R² 0.40 is worse than wiener's 0.89",
             "reasons": ["finger R² 0.40 is worse than wiener's 0.89"]}
    console = quiet()
    assert accept_default(ready, options(tmp_path, protocol_file), console) == "accept"
    assert accept_default(worse, options(tmp_path, protocol_file), console, current="v002") == "reject"
    assert accept_default(worse, options(tmp_path, protocol_file, accept_worse=True), console) == "accept"
    text = console.file.getvalue()
    assert "not ready: finger R² 0.40 is worse than wiener's 0.89" in text
    assert "The default is to reject: the patient keeps v002" in text


def test_recalibration_needs_a_current_model(tmp_path, protocol_file):
    with pytest.raises(CalibrationStopped, match="no accepted model"):
        run_calibration(options(tmp_path, protocol_file, recalibrate=True), console=quiet())


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="Invalid value for '--labels'"):
        flat(patient="P", store="s", labels="camera")
    with pytest.raises(ValueError, match="needs '--source sim'"):
        flat(patient="P", store="s", labels="glove:sim", source="serial:/dev/ttyUSB0")
    with pytest.raises(ValueError, match="Invalid value for '--source'"):
        flat(patient="P", store="s", source="replay:x.h5")


class Scripted:
    """The clinician's keys, as a script: pause (held over a few chunks), resume, skip, then stop."""

    def __init__(self, actions):
        self.actions = list(actions)
        self.stopped = False

    def clinician(self, trial):
        action = self.actions.pop(0) if self.actions else "continue"
        self.stopped = action == "stop"
        return action

    def close(self):
        pass


@pytest.mark.slow
def test_live_view_renders_and_a_stopped_session_resumes(tmp_path, protocol_file):
    opts = options(tmp_path, protocol_file, tui=True)
    store = ModelStore(opts.store, "P1")
    path = os.path.join(store.sessions_dir(), "s.h5")
    buf = io.StringIO()
    console = Console(file=buf, width=120, force_terminal=True, color_system=None)
    from neurohand.calibration.cue_protocol import load_cue_protocol

    script = Scripted(["continue", "pause", "pause", "pause", "continue", "skip", "continue", "stop"])
    with pytest.raises(CalibrationStopped, match="--resume"):
        record_session(opts, load_cue_protocol(protocol_file), path, console, controls=script)
    screen = buf.getvalue()
    assert "neurohand calibration  patient P1" in screen and "signal level per channel" in screen
    assert "PAUSED" in screen and "median0" in screen and "p pause/resume" in screen
    assert "paused before trial 2" in screen and "skipped trial 3" in screen  # numbered as on screen, from 1
    assert [int(n.split("@")[1]) for n in trial_names(path)] == [0, 1, 3]  # trial 2 skipped, stopped before 4
    assert os.path.exists(path + ".inprogress")
    from neurohand.calibration.workflow import interrupted_sessions

    assert interrupted_sessions(store) == [path]
    out = run_calibration(options(tmp_path, protocol_file, resume=path, accept_worse=True), console=quiet())
    names = trial_names(path)
    assert [int(n.split("@")[1]) for n in names] == [0, 1, 3, 4, 5, 6, 7, 8]
    assert out.version == "v001" and interrupted_sessions(store) == []


@pytest.mark.slow
def test_killed_calibration_resumes(tmp_path, protocol_file):
    """SIGKILL the real command mid-recording (real-time pacing); resuming keeps every complete trial."""
    store = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "neurohand", "calibrate", "--patient", "P1", "--store", store, "--cue-protocol",
           protocol_file, "--no-tui", "--yes", "--sim-channels", "4", "--sim-fs-hz", "4000", "--epochs", "2",
           "--hidden", "16"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "trial   4/9" in line:  # trials 1-3 are complete and flushed
                break
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    sessions = ModelStore(store, "P1").sessions_dir()
    path = os.path.join(sessions, next(f for f in os.listdir(sessions) if f.endswith(".h5")))
    assert os.path.exists(path + ".inprogress")
    out = run_calibration(options(tmp_path, protocol_file, resume=path, sim_channels=4, accept_worse=True),
                          console=quiet())
    assert [int(n.split("@")[1]) for n in trial_names(path)] == list(range(9))
    assert out.version == "v001"


def test_closed_stdin_stops_with_a_clear_message(tmp_path, protocol_file, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CalibrationStopped, match="standard input is closed.*--yes"):
        run_calibration(options(tmp_path, protocol_file, yes=False), console=quiet())
    store = ModelStore(str(tmp_path / "store"), "P1")
    assert len([f for f in os.listdir(store.sessions_dir()) if f.endswith(".h5")]) == 1  # the recording is kept


@pytest.mark.slow
def test_calibrate_with_a_pretrained_base_records_less_and_adapts_it(tmp_path):
    """calibrate --base: three repetitions of a five-repetition protocol, the base adapted, its record kept."""
    from neurohand.calibration.cue_protocol import load_cue_protocol
    from neurohand.decoder.errors import InvalidValueError
    from neurohand.training.config import TrainConfig, with_overrides
    from neurohand.training.train import train

    five = tmp_path / "five.toml"
    five.write_text(TINY.replace("repetitions = 3", "repetitions = 5"))
    people = []
    for seed in (1, 2):  # two other simulated people, recorded as a clinic records them
        path = str(tmp_path / "person{}.h5".format(seed))
        opts = options(tmp_path, str(five), patient="S{}".format(seed), labels="glove:sim", sim_seed=seed)
        record_session(opts, load_cue_protocol(str(five)), path, quiet())
        people.append(read_recording(path))
    base = str(tmp_path / "base")
    train(people, base, config=with_overrides(TrainConfig(), {"model.hidden": 16, "schedule.epochs": 2,
                                                              "schedule.min_epochs": 1}, device="cpu"),
          progress=False, log=lambda m: None, pretraining=True)
    out = run_calibration(options(tmp_path, str(five), labels="glove:sim", sim_seed=3, base=base, hidden=None,
                                  accept_worse=True), console=quiet())
    assert len(read_recording(out.session).cues) == 3 * 3  # three repetitions of three movements, not five
    store = ModelStore(str(tmp_path / "store"), "P1")
    model, meta = load_model_dir(store.model_path())
    assert meta["init"]["base"] == os.path.abspath(base) and meta["init"]["people"] == ["S1", "S2"]
    assert model.config.hidden == 16
    # a source the base cannot serve is refused before anything is recorded
    sessions = set(os.listdir(store.sessions_dir()))
    with pytest.raises(InvalidValueError, match=r"pre-trained on 6 channels at 4000 Hz \(2 people\); the source sim "
                                                r"has 8 channels at 4000 Hz: .* without --base"):
        run_calibration(options(tmp_path, str(five), labels="glove:sim", base=base, hidden=None, sim_channels=8),
                        console=quiet())
    assert set(os.listdir(store.sessions_dir())) == sessions
    with pytest.raises(InvalidValueError, match="Invalid value for '--base': it adapts a pre-trained base"):
        options(tmp_path, str(five), base=base, hidden=None, recalibrate=True)
