"""The simulated hand and the host's hand link, over real pseudo-terminals."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from neurohand.firmware_bridge.hand_link import HandLink
from neurohand.firmware_bridge.protocol import Fault, HandState, SetPositions, encode
from neurohand.firmware_bridge.sim_hand import SimHandConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_for(cond, timeout=2.0, step=0.005):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if cond():
            return time.monotonic() - t0
        time.sleep(step)
    raise AssertionError("condition not met within {} s".format(timeout))


def drive(link, pos, seconds):
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        link.send_positions(pos)
        link.poll()
        time.sleep(0.01)


def test_hand_follows_commands_with_a_speed_limit(Hand):
    with Hand(SimHandConfig(speed_per_s=1000.0)) as hand:
        link = HandLink(hand.port)
        assert link.ensure_open()
        t0 = time.monotonic()
        drive(link, [1.0, 0.5, 0.0, 0.2, 0.8], 0.3)
        # 0.3 s at 1000 units/s cannot reach 1000 from 100: the speed limit holds
        assert hand.positions[0] < 100 + 1000 * (time.monotonic() - t0) + 20
        drive(link, [1.0, 0.5, 0.0, 0.2, 0.8], 1.0)
        np.testing.assert_allclose(hand.positions, [1000, 500, 0, 200, 800], atol=1)
        assert hand.state == HandState.RUNNING
        wait_for(lambda: link.poll() is not None and link.last_status.positions[0] == 1000)
        link.close()


def test_watchdog_goes_to_safe_posture_when_commands_stop(Hand):
    with Hand() as hand:
        link = HandLink(hand.port)
        drive(link, [0.9] * 5, 0.8)
        assert hand.state == HandState.RUNNING
        dt = wait_for(lambda: hand.state == HandState.SAFE, timeout=1.0)  # counted from the last command
        assert 0.15 <= dt <= 0.35  # the 200 ms watchdog, 5 ms ticks
        wait_for(lambda: np.allclose(hand.positions, 100, atol=1), timeout=2.0)
        link.poll()
        wait_for(lambda: link.poll() is not None and link.last_status.faults & Fault.WATCHDOG)
        # commands resume: the hand recovers by itself
        drive(link, [0.5] * 5, 0.8)
        assert hand.state == HandState.RUNNING and np.allclose(hand.positions, 500, atol=1)


def test_estop_holds_until_a_person_resets(Hand):
    with Hand() as hand:
        link = HandLink(hand.port)
        drive(link, [0.9] * 5, 0.3)
        link.estop()
        wait_for(lambda: hand.state == HandState.STOPPED)
        drive(link, [0.9] * 5, 0.5)
        assert hand.state == HandState.STOPPED  # commands are ignored
        hand.reset_estop()
        drive(link, [0.9] * 5, 0.8)
        assert hand.state == HandState.RUNNING


def test_corrupted_bytes_are_ignored_and_reported(Hand):
    with Hand() as hand:
        link = HandLink(hand.port)
        drive(link, [0.3] * 5, 0.5)
        bad = bytearray(encode(SetPositions((1000,) * 5), 1))
        bad[3] ^= 0x10
        link._ser.write(bytes(bad) + os.urandom(64).replace(b"\x00", b"\x01") + b"\x00")
        drive(link, [0.3] * 5, 0.2)
        assert hand.parser.stats.frames_bad >= 1
        assert np.allclose(hand.target, 300)  # the corrupted command never moved the hand


def test_link_reconnects_after_the_port_closes(Hand):
    with Hand() as hand:
        link = HandLink(hand.port, backoff_s=0.05)
        drive(link, [0.4] * 5, 0.2)
        link.close()  # e.g. USB unplugged
        assert not link.is_open
        drive(link, [0.6] * 5, 0.5)
        assert link.is_open and link.reconnects == 2
        assert np.allclose(hand.positions, 600, atol=1)


def test_link_backs_off_on_a_missing_port(tmp_path):
    link = HandLink(str(tmp_path / "nope"), backoff_s=0.05, max_backoff_s=0.2)
    assert not link.send_positions([0.5] * 5)
    assert "cannot open" in link.last_error
    assert not link.ensure_open()  # within the backoff: no new attempt
    assert link._backoff == pytest.approx(0.1)


HOST_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from neurohand.firmware_bridge.hand_link import HandLink
    link = HandLink(sys.argv[1])
    print("ready", flush=True)
    while True:
        link.send_positions([0.8] * 5)
        time.sleep(0.01)
    """
)


def test_host_killed_with_sigkill_hand_watchdog_takes_over(Hand):
    with Hand() as hand:
        proc = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT, hand.port], stdout=subprocess.PIPE, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
        try:
            assert proc.stdout.readline().startswith("ready")
            wait_for(lambda: hand.state == HandState.RUNNING and hand.positions[0] > 700, timeout=3)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
            t_kill = time.monotonic()
            wait_for(lambda: hand.state == HandState.SAFE, timeout=1.0)
            assert time.monotonic() - t_kill < 0.4
        finally:
            if proc.poll() is None:
                proc.kill()
