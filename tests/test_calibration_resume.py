"""A responsive session: keys act mid-trial, a complete resume command, discarding, --minutes checked up front,
and a source that dies mid-session."""

import io
import os
import re
import shlex
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from rich.console import Console

from neurohand.calibration.interrupted import check_resume_matches, interrupted_sessions, resume_command
from neurohand.calibration.model_store import ModelStore
from neurohand.calibration.options import calibrate_options
from neurohand.calibration.workflow import CalibrationInterrupted, CalibrationStopped, record_session, run_calibration
from neurohand.cli import build_parser, main
from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.session_file import read_recording
from tests.calibration_options import changed, flat

TINY = """repetitions = 3
hold_s = 1.0
rest_s = 0.5
ramp_s = 0.3
randomize = false

[movements]
index_flexion = [0.0, 1.0, 0.0, 0.0, 0.0]
power_grip = [0.8, 1.0, 1.0, 1.0, 1.0]
"""


@pytest.fixture
def protocol_file(tmp_path):
    p = tmp_path / "my protocols" / "tiny.toml"  # a space: the resume command must quote it
    p.parent.mkdir()
    p.write_text(TINY)
    return str(p)


def quiet():
    return Console(file=io.StringIO(), width=120)


def parse(command):
    words = shlex.split(command)
    assert words[:2] == ["neurohand", "calibrate"]
    return calibrate_options(build_parser().parse_args(words[1:]))


def test_the_resume_command_repeats_every_option(tmp_path, protocol_file):
    opts = flat(patient="P 1", store=str(tmp_path / "store"), source="sim", labels="glove:sim",
                            cue_protocol=protocol_file, recalibrate=True, minutes=2.5, yes=True, tui=False, fast=True,
                            epochs=3, hidden=8, layers=2, seed=4, signal_kind="emg", mains_hz=60.0, sim_seed=3,
                            sim_day=2, sim_channels=6, sim_fs_hz=4000.0)
    path = str(tmp_path / "store" / "s 1.h5")
    command = resume_command(opts, path)
    assert parse(command) == replace(opts, resume=path)
    for flag in ("--source sim", "--labels glove:sim", "--fast", "--recalibrate", "--minutes 2.5", "--no-tui"):
        assert flag in command
    plain = flat(patient="P1", store="st")
    assert resume_command(plain, "st/s.h5") == ("neurohand calibrate --patient P1 --store st --source sim --labels cue "
                                                "--resume st/s.h5")
    assert parse(resume_command(plain, "st/s.h5")) == replace(plain, resume="st/s.h5")


def test_a_resume_with_other_labels_source_or_mode_is_refused():
    meta = {"labels": "glove", "labels_spec": "glove:/dev/ttyACM0", "source_spec": "serial:/dev/ttyUSB0",
            "mode": "calibration"}
    opts = flat(patient="P", store="s", source="serial:/dev/ttyUSB0", labels="glove:/dev/ttyACM1")
    check_resume_matches(opts, meta, "s.h5")  # another glove port is the same kind of labels
    with pytest.raises(InvalidValueError, match=r"s.h5 was recorded with glove labels \(--labels glove:/dev/ttyACM0\)"
                       r"; resume it with the same, not --labels cue"):
        check_resume_matches(changed(opts, labels="cue"), meta, "s.h5")
    with pytest.raises(InvalidValueError, match=r"recorded with --source serial:/dev/ttyUSB0; resume it with a source "
                       r"of the same kind \(serial:...\), not sim"):
        check_resume_matches(changed(opts, source="sim", labels="glove:sim"), meta, "s.h5")
    # the interface re-enumerated under another name: the same kind of source is accepted (its rate and channels are
    # checked once it is open)
    check_resume_matches(changed(opts, source="serial:/dev/ttyUSB1"), meta, "s.h5")
    with pytest.raises(InvalidValueError, match="recorded with --recalibrate calibration"):
        check_resume_matches(replace(opts, recalibrate=True), meta, "s.h5")


def test_minutes_and_the_protocol_are_checked_before_recording(tmp_path, protocol_file, capsys):
    store = str(tmp_path / "store")
    base = dict(patient="P1", store=store, cue_protocol=protocol_file, fast=True, tui=False, yes=True)
    # one repetition of TINY: 2 x (0.6 + 1.0 + 0.5) = 4.2 s; 3 of them (a calibration) need 13.1 s
    with pytest.raises(InvalidValueError, match=r"Invalid value for '--minutes': 0.2 min fits 2 repetition\(s\) of "
                       r"the cue protocol \(0.07 min each\); a calibration needs at least 3 \(one to train on, one to "
                       r"validate, one to test\): use --minutes 0.3 or more"):
        run_calibration(flat(minutes=0.2, **base), console=quiet())
    assert not os.path.exists(os.path.join(store, "P1", "sessions")) or not os.listdir(
        ModelStore(store, "P1").sessions_dir())  # nothing recorded
    two = tmp_path / "two.toml"
    two.write_text(TINY.replace("repetitions = 3", "repetitions = 2"))
    with pytest.raises(InvalidValueError, match="the cue protocol .*two.toml has 2; a calibration needs at least 3 .*"
                       "set repetitions = 3 in it"):
        run_calibration(flat(**dict(base, cue_protocol=str(two))), console=quiet())
    rc = main(["calibrate", "--patient", "P1", "--store", store, "--cue-protocol", protocol_file, "--minutes", "0.1",
               "--fast", "--no-tui", "--yes"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "use --minutes 0.3 or more" in err


def test_an_interrupted_session_is_discarded_by_moving_it_aside(tmp_path, capsys):
    store = ModelStore(str(tmp_path / "store"), "P1")
    paths = []
    for name in ("a.h5", "b.h5"):
        p = os.path.join(store.sessions_dir(), name)
        with open(p, "w") as f:
            f.write("recorded " + name)
        with open(p + ".inprogress", "w") as f:
            f.write("neurohand calibrate --patient P1 --store x --resume {}\n".format(p))
        paths.append(p)
    assert interrupted_sessions(store) == paths
    argv = ["calibrate", "--patient", "P1", "--store", store.root.rsplit(os.sep, 1)[0], "--discard-interrupted"]
    assert main(argv + ["nope.h5"]) == 2
    assert "Invalid value for '--discard-interrupted': allowed 'all' or one of" in capsys.readouterr().err
    assert main(argv + [paths[0]]) == 0
    moved = os.path.join(store.sessions_dir(), "discarded", "a.h5")
    assert interrupted_sessions(store) == [paths[1]] and open(moved).read() == "recorded a.h5"  # kept, not deleted
    assert "discarded {}: moved to {}".format(paths[0], moved) in capsys.readouterr().out
    assert main(argv) == 0 and interrupted_sessions(store) == []
    # the same name again (a later interrupted a.h5) never overwrites the first discard
    with open(paths[0], "w") as f:
        f.write("second a")
    open(paths[0] + ".inprogress", "w").close()
    assert main(argv + ["a.h5"]) == 0
    assert open(moved).read() == "recorded a.h5"
    assert open(os.path.join(store.sessions_dir(), "discarded", "a-2.h5")).read() == "second a"


class PressLater:
    """KeyControls with a key pressed from another thread once the session records; when it was pressed."""

    def __init__(self, key, after_s):
        from neurohand.calibration.tui import KeyControls

        self.keys = KeyControls(read_terminal=False)
        self.key, self.after_s = key, after_s
        self.pressed_at = None
        threading.Thread(target=self._press, daemon=True).start()

    def _press(self):
        time.sleep(self.after_s)
        self.pressed_at = time.monotonic()
        self.keys.press(self.key)

    def __getattr__(self, name):
        return getattr(self.keys, name)


def test_q_mid_trial_stops_within_a_second_and_prints_the_whole_resume_command(tmp_path, protocol_file):
    long = tmp_path / "long.toml"
    long.write_text(TINY.replace("hold_s = 1.0", "hold_s = 20.0"))  # one trial takes 21.1 s in real time
    opts = flat(patient="P1", store=str(tmp_path / "store"), cue_protocol=str(long), tui=True,
                            labels="glove:sim", sim_channels=4, sim_fs_hz=4000.0)
    path = os.path.join(ModelStore(opts.store, "P1").sessions_dir(), "s.h5")
    keys = PressLater("q", 1.5)
    buf = io.StringIO()
    with pytest.raises(CalibrationStopped) as stopped:
        record_session(opts, replace(_protocol(long), repetitions=3), path,
                       Console(file=buf, width=150, force_terminal=True, color_system=None), controls=keys)
    took = time.monotonic() - keys.pressed_at
    assert took < 1.0, "q took {:.2f} s to end the recording".format(took)
    message = str(stopped.value)
    assert message.startswith("Stopped by the clinician; 0 complete trial(s), 1 cut are kept in " + path)
    assert parse(message.split("Resume with: ", 1)[1]) == replace(opts, resume=path)
    rec = read_recording(path)
    assert [c["name"].decode() for c in rec.cues] == ["index_flexion@0", "cut@0"]
    assert 0.2 < rec.duration_s < 3.0 < 21.1 and rec.metadata["labels"] == "glove"  # kept up to the key, not after
    assert "stopped: trial 1 (index flexion) cut" in buf.getvalue()  # acknowledged on screen
    assert open(path + ".inprogress").read().strip() == message.split("Resume with: ", 1)[1]


def _protocol(path):
    from neurohand.calibration.cue_protocol import load_cue_protocol

    return load_cue_protocol(str(path))


@pytest.mark.parametrize("how", ["stalls", "unplugged"])
def test_an_interface_that_dies_mid_session_stops_it_cleanly(tmp_path, protocol_file, short_rec, how, monkeypatch):
    """A simulated interface on a real pseudo-terminal stops sending or disappears, for longer than the session
    waits for it (RECOVER_S, shortened here)."""
    from neurohand.calibration import workflow
    from neurohand.firmware_bridge.protocol import Samples, encode
    from neurohand.firmware_bridge.sim_interface import SimInterface

    monkeypatch.setattr(workflow, "RECOVER_S", 2.0)
    iface = SimInterface(short_rec).start()
    opts = flat(patient="P1", store=str(tmp_path / "store"), cue_protocol=protocol_file, tui=False,
                            source="serial:" + iface.port)
    path = os.path.join(ModelStore(opts.store, "P1").sessions_dir(), "s.h5")
    buf = io.StringIO()
    console = Console(file=buf, width=150)

    def malformed():  # a SAMPLES message with 3 channels where the HELLO announced 4
        iface.inject(encode(Samples(0, np.zeros((20, 3), np.int16)), 1))

    class KillInTrial2:
        """No keys; the interface dies half a second into the second trial."""

        stopped = False

        def clinician(self, trial):
            if trial.index == 1:
                kill = {"stalls": iface.pause, "unplugged": iface.stop, "malformed": malformed}[how]
                threading.Timer(0.5, kill).start()
            return "continue"

        def close(self):
            pass

    try:
        with pytest.raises(CalibrationStopped) as stopped:
            record_session(opts, _protocol(protocol_file), path, console, controls=KillInTrial2())
    finally:
        iface.stop()
    message = str(stopped.value)
    assert message.startswith("The recording stopped: the source failed (")
    # a vanished pseudo-terminal reads as pyserial's "device disconnected" or as the kernel's EIO, by timing
    assert re.search({"stalls": re.escape("no samples from {} for 1000 ms (SourceStalled)".format(iface.port)),
                      "unplugged": r"device disconnected|\[Errno 5\] Input/output error|cannot reopen the source: "
                                   r"Cannot open the interface on " + re.escape(iface.port)}[how], message)
    assert "1 complete trial(s), 1 cut are kept in {}".format(path) in message
    assert parse(message.split("resume with: ", 1)[1]) == replace(opts, resume=path)
    rec = read_recording(path)
    assert [c["name"].decode() for c in rec.cues] == ["index_flexion@0", "power_grip@1", "cut@1"]
    assert rec.metadata["source_spec"] == "serial:" + iface.port
    assert "the source failed: trial 2 (power grip) cut" in buf.getvalue()
    assert "waiting up to 2 s for the source to come back" in buf.getvalue()
    assert interrupted_sessions(ModelStore(opts.store, "P1")) == [path]


@pytest.mark.parametrize("how", ["malformed", "unplugged and back"])
def test_a_malformed_frame_or_a_short_unplug_pauses_the_trial_and_cues_it_again(tmp_path, protocol_file, short_rec,
                                                                                how):
    """The interface sends one malformed message, or vanishes for 0.3 s and comes back under the same name (a USB
    device re-enumerated behind its udev link): the trial is cut and kept, the session waits for clean samples,
    reopens the port when it vanished, cues the trial again and completes."""
    from neurohand.firmware_bridge.protocol import Samples, encode
    from neurohand.firmware_bridge.sim_interface import SimInterface

    link = str(tmp_path / "neurohand-interface")  # the stable name, as a udev rule gives
    devices = [SimInterface(short_rec).start()]
    os.symlink(devices[0].port, link)
    opts = flat(patient="P1", store=str(tmp_path / "store"), cue_protocol=protocol_file, tui=False,
                source="serial:" + link)
    path = os.path.join(ModelStore(opts.store, "P1").sessions_dir(), "s.h5")
    buf = io.StringIO()

    def replug():
        devices[0].stop()
        time.sleep(0.3)
        devices.append(SimInterface(short_rec).start())
        os.remove(link)
        os.symlink(devices[-1].port, link)

    def fault():
        if how == "malformed":
            devices[0].inject(encode(Samples(0, np.zeros((20, 3), np.int16)), 1))
        else:
            replug()

    class FaultInTrial2:
        stopped = fired = False

        def clinician(self, trial):
            if trial.index == 1 and not self.fired:  # once: the second time trial 2 is cued, nothing happens
                self.fired = True
                threading.Timer(0.5, fault).start()
            return "continue"

        def close(self):
            pass

    controls = FaultInTrial2()
    try:
        record_session(opts, _protocol(protocol_file), path, Console(file=buf, width=150), controls=controls)
    finally:
        for d in devices:
            d.stop()
    log = buf.getvalue()
    assert "the source failed: trial 2 (power grip) cut" in log and "the source is back" in log, log
    assert "trial 2 (power grip) is cued again" in log
    rec = read_recording(path)
    names = [c["name"].decode() for c in rec.cues]
    assert names[:3] == ["index_flexion@0", "power_grip@1", "cut@1"] and names.count("power_grip@1") == 2, names
    assert not os.path.exists(path + ".inprogress")  # complete: nothing to resume


@pytest.mark.slow
def test_keys_act_within_100_ms_while_a_trial_records(tmp_path, monkeypatch):
    """Real-time pacing, the live view drawing: from each key press to the session acting on it (and saying so)."""
    from neurohand.calibration.cue_protocol import DEFAULT_CUE_PROTOCOL, load_cue_protocol
    from neurohand.calibration.tui import KeyControls

    opts = flat(patient="P1", store=str(tmp_path / "store"), tui=True, sim_channels=16)
    keys = KeyControls(read_terminal=False)
    acted = []  # (message, seconds from the key)
    pressed = [None]
    script = ["p", "p", "r", "s", "p", "p", "q"]  # 'r' and 's' mid-movement (cut at once), 'q' at the end

    class Timed:
        def __getattr__(self, name):
            return getattr(keys, name)

    def press_all():
        time.sleep(1.5)
        for k in script:
            pressed[0] = time.monotonic()
            keys.press(k)
            time.sleep(0.7)

    buf = io.StringIO()
    console = Console(file=buf, width=150, force_terminal=True, color_system=None)
    from neurohand.calibration import session as session_module

    class Session(session_module.CalibrationSession):
        def _event(self, message):
            if pressed[0] is not None:
                acted.append((message, time.monotonic() - pressed[0]))
                pressed[0] = None
            super()._event(message)

    monkeypatch.setattr(session_module, "CalibrationSession", Session)
    threading.Thread(target=press_all, daemon=True).start()
    with pytest.raises(CalibrationStopped, match="Stopped by the clinician"):
        record_session(opts, replace(load_cue_protocol(DEFAULT_CUE_PROTOCOL), hold_s=4.0), str(tmp_path / "s.h5"),
                       console, controls=Timed())
    assert [m.split(":")[0].split(" ")[0] for m, _ in acted] == ["paused", "resumed", "repeating", "skipped",
                                                                 "paused", "resumed", "stopped"]
    took = sorted(t for _, t in acted)
    assert took[len(took) // 2] < 0.1 and took[-1] < 1.0, acted


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_landing_in_a_finaliser_still_ends_the_recording(tmp_path, protocol_file, name):
    """Python prints and drops an exception raised inside a finaliser (``__del__``): a handler that raised
    KeyboardInterrupt there let the recording run on to its end and go on to training (a CI run saw exit 4 after a
    SIGTERM). The signal is kept and ends the recording at the session's next poll, and the handlers are put back."""
    import signal

    sig = getattr(signal, name)
    opts = flat(patient="P1", store=str(tmp_path / "store"), cue_protocol=protocol_file, tui=False, fast=True)
    path = os.path.join(ModelStore(opts.store, "P1").sessions_dir(), "s.h5")
    before = signal.getsignal(sig)

    class Dropped:
        def __del__(self):
            os.kill(os.getpid(), sig)
            time.sleep(0.05)  # the handler runs in here, inside the finaliser

    class SignalAtTrial2:
        stopped = False

        def clinician(self, trial):
            if trial.index == 1:
                Dropped()  # dropped at once: its finaliser runs now
            return "continue"

        def close(self):
            pass

    with pytest.raises(CalibrationInterrupted, match=r"^Interrupted; 1 complete trial\(s\) are kept in .*Resume with: "
                                                     r"neurohand calibrate "):
        record_session(opts, _protocol(protocol_file), path, quiet(), controls=SignalAtTrial2())
    assert signal.getsignal(sig) is before
    # trial 2 began (its cue is on file) and has no end mark: a resume drops it and cues it again
    assert [c["name"].decode() for c in read_recording(path).cues] == ["index_flexion@0", "power_grip@1"]


@pytest.mark.slow
def test_ctrl_c_or_sigterm_while_recording_or_resuming_prints_the_resume_command(tmp_path):
    """Every way out of a recording says how to resume: Ctrl-C (exit 130) and SIGTERM, during a first recording and
    during a resume of it."""
    import signal
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    store = str(tmp_path / "store")
    protocol_file = tmp_path / "my protocols" / "long.toml"  # 16 trials, 34 s: no round reaches the end
    protocol_file.parent.mkdir()
    protocol_file.write_text(TINY.replace("repetitions = 3", "repetitions = 8"))
    argv = ["calibrate", "--patient", "P1", "--store", store, "--cue-protocol", str(protocol_file), "--no-tui",
            "--yes", "--sim-channels", "4", "--sim-fs-hz", "4000"]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGINT):
        proc = subprocess.Popen([sys.executable, "-m", "neurohand"] + argv, cwd=root,
                                env=dict(os.environ, PYTHONPATH=root, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        seen = []
        while not any(line.startswith("trial ") for line in seen):  # recording (however slow the start was)
            seen.append(proc.stdout.readline())
            assert seen[-1] or proc.poll() is None, (seen, proc.stderr.read())
        time.sleep(3.0)  # into the second trial of this round (real time)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (proc.returncode, out, err)
        assert "Traceback" not in err and "Interrupted; " in err, err
        command = err.split("Resume with: ", 1)[1].strip()
        argv = shlex.split(command)[1:]  # the next round resumes with exactly what was printed
        assert argv[-2] == "--resume" and os.path.isfile(argv[-1])
    assert len(read_recording(argv[-1]).cues) >= 2
