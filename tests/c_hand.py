"""The reference firmware's host build (firmware_bridge/firmware, ``hand_pty``) as a hand, with SimHand's interface.

The C hand runs in its own process on a pseudo-terminal; what the tests read of it (positions, target, state,
faults, commands received, the last command) comes from the state line it prints every 10 ms.
"""

import os
import shutil
import subprocess
import threading
import time
from types import SimpleNamespace
from typing import Optional

import numpy as np

from neurohand.firmware_bridge.protocol import Fault, HandState
from neurohand.firmware_bridge.sim_hand import SimHandConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware_bridge", "firmware")
BINARY = os.path.join(FIRMWARE, "build", "hand_pty")


def build_c_hand() -> str:
    """Build the pseudo-terminal hand (make host); returns why it cannot be built here, or '' when it is built."""
    if shutil.which("make") is None or shutil.which(os.environ.get("CC", "cc")) is None:
        return "no C compiler or make here"
    r = subprocess.run(["make", "-s", "-C", FIRMWARE, "host"], capture_output=True, text=True, timeout=300)
    return "" if r.returncode == 0 else "the firmware did not build: " + r.stderr[-2000:]


class CHand:
    """The C firmware as a hand on a pseudo-terminal: ``port``, ``positions`` (0..1000), ``target``, ``state``,
    ``faults``, ``commands_received``, ``last_command``, ``received`` (every SET_POSITIONS that arrived),
    ``reset_estop()``, a context manager."""

    def __init__(self, config: Optional[SimHandConfig] = None) -> None:
        config = config or SimHandConfig()
        self.config = config
        self._args = [BINARY, "--speed", str(int(config.speed_per_s)), "--watchdog-ms", str(int(config.watchdog_ms)),
                      "--status-hz", str(int(config.status_hz))]
        self.positions = np.array(config.safe_posture, float)
        self.target = self.positions.copy()
        self.state, self.faults = HandState.SAFE, Fault.WATCHDOG
        self.commands_received = 0
        self.last_command = None
        self.received = []  # every SET_POSITIONS that arrived, as positions (0..1000)
        self.timed = []  # the same as (time.monotonic() when it arrived, positions in 0..1)
        self.parser = SimpleNamespace(stats=SimpleNamespace(frames_bad=0))  # as SimHand's parser counts them
        self._lock = threading.Lock()
        self._lines = 0
        self._proc = None
        self.port = None

    def start(self) -> "CHand":
        self._proc = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.port = self._proc.stdout.readline().strip()
        threading.Thread(target=self._read, daemon=True).start()
        t0 = time.monotonic()
        while self._lines == 0 and time.monotonic() - t0 < 5:
            time.sleep(0.005)
        return self

    def _read(self) -> None:
        for line in self._proc.stdout:
            w = line.split()
            if len(w) == 7 and w[0] == "cmd":
                positions = tuple(int(v) for v in w[2:])
                self.received.append(positions)
                self.timed.append((float(w[1]), np.asarray(positions, float) / 1000.0))
                continue
            if len(w) != 26 or w[0] != "state":
                continue
            with self._lock:
                self.state, self.faults, self.commands_received = int(w[1]), int(w[3]), int(w[5])
                self.positions = np.array([float(v) for v in w[7:12]])
                self.target = np.array([float(v) for v in w[13:18]])
                self.last_command = tuple(int(v) for v in w[19:24]) if self.commands_received else None
                self.parser.stats.frames_bad = int(w[25])
                self._lines += 1

    def reset_estop(self) -> None:
        """Press the reset button; returns once the hand has left the stopped state."""
        self._proc.stdin.write("reset\n")
        self._proc.stdin.flush()
        t0 = time.monotonic()
        while self.state == HandState.STOPPED and time.monotonic() - t0 < 2:
            time.sleep(0.005)

    def stop(self) -> None:
        if self._proc is None:
            return
        try:
            self._proc.stdin.write("quit\n")
            self._proc.stdin.flush()
            self._proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> "CHand":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
