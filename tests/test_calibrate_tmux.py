"""The clinician's terminal, for real: ``neurohand calibrate --source sim --fast`` in a tmux session, keys sent as
a person types them. ``q`` mid-trial ends the recording within a second, and the printed resume command, run as
printed, resumes with the same source and labels."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from neurohand.calibration.options import calibrate_options
from neurohand.cli import build_parser
from neurohand.decoder.session_file import read_recording

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


class Tmux:
    """One detached tmux session on a private server socket (so nobody else's tmux is touched)."""

    def __init__(self, tmp_path):
        self.socket = "nh-{}-{}".format(os.getpid(), id(self))
        self.log = str(tmp_path / "pane.log")
        self.tmux("new-session", "-d", "-s", "nh", "-x", "200", "-y", "60", "bash --norc --noprofile")
        bindir = os.path.dirname(sys.executable)  # where the `neurohand` script of this environment is
        self.type("export PATH={}:$PATH PYTHONPATH={} PS1='$ '; cd {}".format(
            shlex.quote(bindir), shlex.quote(ROOT), shlex.quote(str(tmp_path))), enter=True)

    def tmux(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args), check=True, capture_output=True,
                              text=True).stdout

    def type(self, text, enter=False):
        self.tmux("send-keys", "-t", "nh", "-l", text)
        if enter:
            self.tmux("send-keys", "-t", "nh", "Enter")

    def screen(self):
        return self.tmux("capture-pane", "-t", "nh", "-p", "-J", "-S", "-2000")

    def wait_for(self, pattern, timeout_s, *, count=1, poll_s=0.02):
        """Wait until ``pattern`` is on screen (in the scrollback too) ``count`` times; the last match, and when."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            found = list(re.finditer(pattern, self.screen()))
            if len(found) >= count:
                return found[count - 1], time.monotonic()
            time.sleep(poll_s)
        raise AssertionError("{!r} not on screen within {} s; screen:\n{}".format(pattern, timeout_s, self.screen()))

    def close(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_q_in_tmux_stops_within_a_second_and_the_printed_command_resumes_alike(tmp_path):
    store = str(tmp_path / "store")
    argv = ["calibrate", "--patient", "P1", "--store", store, "--source", "sim", "--labels", "glove:sim", "--fast",
            "--sim-channels", "4", "--sim-fs-hz", "4000", "--epochs", "1", "--hidden", "8"]
    tmux = Tmux(tmp_path)
    try:
        tmux.type("neurohand " + " ".join(shlex.quote(a) for a in argv), enter=True)
        tmux.wait_for(r"trial 2/45", 120)  # the live view is up, the second trial is recording
        tmux.wait_for(r"- hold", 30)  # mid-trial: the movement is being held
        sent = time.monotonic()
        tmux.type("p")
        _, seen = tmux.wait_for(r"PAUSED - press p to continue", 5)
        print("p: PAUSED on screen {:.0f} ms after the key".format(1000 * (seen - sent)))
        assert seen - sent < 0.5 and re.search(r"> paused: trial \d+ \(.*\) cut", tmux.screen())
        sent = time.monotonic()
        tmux.type("p")
        _, seen = tmux.wait_for(r"> resumed", 5)
        print("p again: 'resumed' on screen {:.0f} ms after the key".format(1000 * (seen - sent)))
        assert seen - sent < 0.5
        tmux.wait_for(r"- hold", 30)  # the cut trial is cued again and held (the live view redraws in place)
        sent = time.monotonic()
        tmux.type("q")
        m, seen = tmux.wait_for(r"Resume with: (neurohand calibrate .*--resume \S+)", 10)
        took = seen - sent
        print("q: recording ended and the resume command printed {:.0f} ms after the key".format(1000 * took))
        assert took < 1.0, "q took {:.2f} s to end the recording".format(took)
        cut = int(re.search(r"> stopped: trial (\d+) \(", tmux.screen()).group(1))  # acknowledged on screen
        printed = m.group(1)
        original = calibrate_options(build_parser().parse_args(argv))
        resumed = calibrate_options(build_parser().parse_args(shlex.split(printed)[1:]))
        assert resumed.resume and resumed.devices.source == "sim" and resumed.devices.labels == "glove:sim"
        assert resumed.simulator.fast and resumed == replace(original, resume=resumed.resume)
        path = resumed.resume
        names = [c["name"].decode() for c in read_recording(path).cues]
        assert names[-1] == "cut@{}".format(cut - 1)  # the trial on screen was cut, not finished
        assert names.count("cut@{}".format(cut - 1)) == 2  # by the pause, then by q: both parts kept

        tmux.type(printed, enter=True)  # run as printed
        tmux.wait_for(r"resuming .*continuing at trial {}\b".format(cut), 60)
        tmux.wait_for(r"labels: glove", 30)  # the glove is used again: the same labels
        tmux.wait_for(r"trial {}/45".format(cut + 1), 60)
        tmux.type("q")
        tmux.wait_for(r"Resume with: neurohand calibrate", 10, count=2)
        rec = read_recording(path)
        names = [c["name"].decode() for c in rec.cues]
        assert names[-1] == "cut@{}".format(cut) and sum(n.startswith("cut@") for n in names) == 3
        assert rec.metadata["labels"] == "glove" and rec.metadata["source_spec"] == "sim"
        # the trial recorded after resuming has the glove's measured positions (at its 100 Hz), as before the stop
        resumed_at = int(rec.cues["sample"][names.index("cut@{}".format(cut - 1)) + 1])
        trial_s = (2 * 0.6 + 2.0 + 2.0)
        assert np.sum(rec.position_index >= resumed_at) >= 0.9 * trial_s * 100
        glove = rec.positions[rec.position_index >= resumed_at]
        assert glove.std() > 0  # measured (noise and tremor), not a cue trajectory of exact zeros and plateaus
    finally:
        tmux.close()
