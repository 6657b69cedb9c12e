"""The hand must answer (issue 28.2): its HELLO before the first command, a valid frame at least every 0.5 s after.

Every device here is a real pseudo-terminal: a port that stays silent, one that sends random bytes, a neural
interface given as the hand, and the simulated hand falling silent or garbling its frames mid-run.
"""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from neurohand.decoder.errors import DeviceError
from neurohand.deploy.runtime import HandSink, Runtime, RuntimeConfig
from neurohand.deploy.sources import RecordingSource
from neurohand.firmware_bridge.pty_device import PtyDevice
from neurohand.firmware_bridge.sim_hand import SimHand
from neurohand.firmware_bridge.sim_interface import SimInterface

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Silent(PtyDevice):
    """Reads whatever the host sends and never answers."""

    def run(self):
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if ready:
                try:
                    os.read(self._master, 4096)
                except OSError:
                    return


class Noise(Silent):
    """Answers with random bytes, 2 kB a second."""

    def run(self):
        rng = np.random.default_rng(0)
        while not self._stop.is_set():
            self._write(rng.integers(0, 256, 40, dtype=np.uint8).tobytes())
            time.sleep(0.02)


class MutableHand(SimHand):
    """The simulated hand, which a test can silence or make speak noise."""

    mode = "ok"

    def _send(self, body):
        if self.mode == "ok":
            super()._send(body)
        elif self.mode == "noise":
            self._write(bytes(np.random.default_rng().integers(1, 256, 30, dtype=np.uint8)) + b"\x00")


@pytest.mark.parametrize("device, got", [(Silent, "got nothing"), (Noise, r"got \d+ corrupted frames")])
def test_a_port_that_does_not_answer_as_a_hand_is_refused_within_a_second(device, got):
    with device() as dev:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=r"No hand answered on {} within 1 s: expected its HELLO \(role hand\), "
                                              "{}".format(dev.port, got)):
            HandSink(dev.port)
        assert time.monotonic() - t0 < 1.5


def test_a_neural_interface_given_as_the_hand_is_refused(short_rec):
    with SimInterface(short_rec) as iface:
        with pytest.raises(DeviceError, match="The device on {} is not a hand: its HELLO announces a neural "
                                              "interface".format(iface.port)):
            HandSink(iface.port)


def test_neurohand_run_with_a_silent_hand_exits_2_in_one_line(short_rec, adapted_bundle, tmp_path):
    from neurohand.decoder.session_file import write_recording

    session = str(tmp_path / "s.h5")
    write_recording(short_rec, session)
    with Silent() as dev:
        r = subprocess.run([sys.executable, "-m", "neurohand", "run", "--bundle", adapted_bundle.path, "--source",
                            "replay:" + session, "--hand", "serial:" + dev.port, "--allow-replay-into-hand"],
                           cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                           timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "No hand answered on {}".format(dev.port) in r.stderr, r.stderr


@pytest.mark.parametrize("mode, says", [("silent", "sent no valid frame for"), ("noise", "corrupted frames")])
def test_a_hand_that_stops_answering_mid_run_faults_within_a_second_and_recovers(short_rec, adapted_bundle, mode,
                                                                                 says):
    hop = int(round(adapted_bundle.fs_hz * adapted_bundle.feature_config.hop_ms / 1000.0))
    with MutableHand() as hand:
        sink = HandSink(hand.port)
        rt = Runtime(adapted_bundle, RecordingSource(short_rec, chunk_samples=hop), sink,
                     config=RuntimeConfig(engine="numpy"))
        t_mode = {}

        def set_mode(m):
            t_mode[m] = time.monotonic()
            hand.mode = m

        timers = [threading.Timer(1.0, set_mode, args=(mode,)), threading.Timer(2.5, set_mode, args=("ok",))]
        for t in timers:
            t.start()
        stats = rt.run(seconds=4.0)
        for t in timers:
            t.cancel()
    ev = [e for e in stats.safe_events if e["kind"] == "link"]
    assert ev, stats.summary()
    assert ev[0]["time"] - t_mode[mode] < 1.0, "the fault came {:.2f} s after".format(ev[0]["time"] - t_mode[mode])
    assert says in ev[0]["message"] and hand.port in ev[0]["message"]
    assert stats.faults_cleared >= 1 and stats.state == "running"  # it answered again: decoding resumed
