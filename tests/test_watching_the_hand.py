"""Watching the hand: ``neurohand sim-hand`` shows the fingers, state and faults; ``neurohand run`` ends by saying
what the hand acknowledged."""

import io
import os
import re
import subprocess
import sys
import time

import numpy as np
from rich.console import Console

from neurohand.firmware_bridge.hand_link import HandLink
from neurohand.firmware_bridge.sim_hand import SimHand
from neurohand.firmware_bridge.sim_hand_view import bar, snapshot, watch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_finger_bar_is_filled_to_its_position_and_marks_its_target():
    assert bar(0.0, 1.0, width=10) == ".........|"
    assert bar(0.5, 0.2, width=10) == "##|##....."
    assert bar(1.0, 1.0, width=10) == "#########|"


def test_the_live_view_follows_the_hand_it_watches():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100, color_system=None)
    with SimHand() as hand:
        link = HandLink(hand.port)
        assert link.ensure_open()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:  # commands at 50 Hz: the hand runs and closes its index
            link.send_positions([0.1, 0.9, 0.1, 0.1, 0.1])
            time.sleep(0.02)
        snap = snapshot(hand)
        watch(hand, port=hand.port, seconds=0.3, console=console)
        link.close()
    assert snap["state"] == "running" and snap["faults"] == [] and snap["commands"] >= 20
    assert abs(snap["target"][1] - 0.9) < 1e-9 and snap["positions"][1] > 0.5
    text = buf.getvalue()
    assert "RUNNING on {}".format(hand.port) in text and "faults: none" in text
    assert re.search(r"index +#+.*\|?.* 0\.\d\d +-> 0\.90", text), text
    assert re.search(r"\d+ commands, \d+/s, last \d+ ms ago", text), text


def test_sim_hand_prints_its_port_first_then_each_change_of_state():
    r = subprocess.run([sys.executable, "-m", "neurohand", "sim-hand", "--seconds", "0.5"], cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=60)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and lines[0].startswith("/dev/pts/"), r.stdout + r.stderr
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} safe; faults: watchdog; positions 0\.10 0\.10 0\.10 0\.10 0\.10$",
                    lines[1]), lines
    r = subprocess.run([sys.executable, "-m", "neurohand", "sim-hand", "--seconds", "0.3", "--quiet"], cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1, r.stdout


def test_run_ends_by_saying_what_the_hand_acknowledged(rec, bundle, tmp_path, capsys):
    from neurohand.cli import main
    from neurohand.decoder.session_file import write_recording

    session = str(tmp_path / "s.h5")
    write_recording(rec, session)
    with SimHand() as hand:
        rc = main(["run", "--bundle", bundle.path, "--source", "replay:" + session, "--hand", "serial:" + hand.port,
                   "--allow-replay-into-hand", "--seconds", "1", "--engine", "numpy"])
        out = capsys.readouterr().out
        sent = int(re.search(r"(\d+) commands sent", out).group(1))
        t0 = time.monotonic()
        while hand.commands_received < sent and time.monotonic() - t0 < 2.0:  # the last ones still on the line
            time.sleep(0.01)
        received = hand.commands_received
        final = np.array(hand.positions) / 1000.0
    assert rc == 0, out
    m = re.search(r"^hand 'sim-hand' on (\S+): (\d+) commands sent, (\d+) STATUS received \(last: (\w+), faults: "
                  r"(\w+), battery 7\.4 V, (\d\.\d{3}) from the last command\)$", out, re.M)
    assert m, out
    assert m.group(1) == hand.port and int(m.group(2)) == received  # every command sent was received
    assert 10 <= int(m.group(3)) <= 30  # STATUS at 20 Hz for about a second
    assert m.group(4) == "running" and m.group(5) == "none"
    assert float(m.group(6)) <= 1.0 and final.shape == (5,)
