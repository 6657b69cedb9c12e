"""A simulated prosthetic hand behind a real pseudo-terminal, speaking the neurohand protocol like its firmware.

It moves each finger toward its commanded position at a mechanical speed limit, reports STATUS at 20 Hz,
answers HELLO, honours ESTOP, and on its own goes to its safe posture when no valid SET_POSITIONS or HEARTBEAT
has arrived for ``watchdog_ms`` (200 ms), exactly as ``PROTOCOL.md`` requires of real firmware. The loop waits on
``select`` with a timeout (no busy-waiting).
"""

import os
import select
import threading
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .protocol import Caps, Estop, Fault, HandState, Heartbeat, Hello, Role, SetPositions, Status, StreamParser, encode
from .pty_device import PtyDevice


@dataclass(frozen=True)
class SimHandConfig:
    """Behaviour of the simulated hand.

    Parameters
    ----------
    speed_per_s : float
        Largest finger speed, in position units (0..1000) per second (1500: a full closure in 0.67 s).
    watchdog_ms : float
        Time without a valid command after which the hand goes to ``safe_posture`` on its own.
    status_hz : float
        STATUS messages per second.
    safe_posture : tuple of 5 int
        Positions (0..1000) held in the safe state: relaxed, slightly open.
    tick_ms : float
        Physics and I/O step.
    """

    speed_per_s: float = 1500.0
    watchdog_ms: float = 200.0
    status_hz: float = 20.0
    safe_posture: Tuple[int, int, int, int, int] = (100, 100, 100, 100, 100)
    tick_ms: float = 5.0


class SimHand(PtyDevice):
    """Simulated hand firmware on the master side of a pseudo-terminal; ``port`` is the path to open."""

    thread_name = "sim-hand"

    def __init__(self, config: SimHandConfig = SimHandConfig()) -> None:
        super().__init__()
        self.config = config
        self.positions = np.array(config.safe_posture, dtype=float)
        self.target = self.positions.copy()
        self.state = HandState.SAFE
        self.faults = Fault.WATCHDOG
        self.parser = StreamParser()
        self._seq = 0
        self._last_cmd = -1e9
        self._lock = threading.Lock()
        self.commands_received = 0
        self.last_command: Optional[Tuple[int, ...]] = None

    # -- firmware
    def _send(self, body) -> None:
        self._write(encode(body, self._seq))
        self._seq = (self._seq + 1) & 0xFFFF

    def _handle(self, msg, now: float) -> None:
        body = msg.body
        if isinstance(body, Hello):
            self._send(Hello(Role.HAND, Caps.POSITIONS | Caps.STATUS | Caps.WATCHDOG | Caps.ESTOP, name="sim-hand"))
        elif isinstance(body, Estop):
            self.state = HandState.STOPPED
            self.faults |= Fault.ESTOP
            self.target = np.array(self.config.safe_posture, float)
        elif self.state == HandState.STOPPED:
            return  # only a person restarts a stopped hand
        elif isinstance(body, SetPositions):
            self.target = np.array(body.positions, float)
            self.last_command = tuple(body.positions)
            self._last_cmd = now
            self.commands_received += 1
        elif isinstance(body, Heartbeat):
            self._last_cmd = now

    def reset_estop(self) -> None:
        """Press the reset button (a person's action): leave the stopped state."""
        with self._lock:
            self.state = HandState.SAFE
            self.faults &= ~Fault.ESTOP

    def run(self) -> None:
        """Run the firmware loop (blocks until :meth:`stop`)."""
        cfg = self.config
        last = time.monotonic()
        next_status = last
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._master], [], [], cfg.tick_ms / 1000.0)
            except (OSError, ValueError):
                break
            now = time.monotonic()
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                bad_before = self.parser.stats.frames_bad
                with self._lock:
                    for msg in self.parser.feed(data):
                        self._handle(msg, now)
                    if self.parser.stats.frames_bad > bad_before:
                        self.faults |= Fault.BAD_FRAMES
            with self._lock:
                if self.state != HandState.STOPPED:
                    if (now - self._last_cmd) * 1000.0 > cfg.watchdog_ms:
                        self.state = HandState.SAFE
                        self.faults |= Fault.WATCHDOG
                        self.target = np.array(cfg.safe_posture, float)
                    else:
                        self.state = HandState.RUNNING
                        self.faults &= ~Fault.WATCHDOG
                step = cfg.speed_per_s * (now - last)
                self.positions += np.clip(self.target - self.positions, -step, step)
                if now >= next_status:
                    self._send(Status(tuple(int(round(v)) for v in self.positions), self.faults, 7400, self.state))
                    self.faults &= ~Fault.BAD_FRAMES
                    next_status = now + 1.0 / cfg.status_hz
            last = now


def main_sim_hand(seconds: Optional[float] = None, *, view: bool = True) -> int:
    """``neurohand sim-hand``: print the port path, then show the hand until Ctrl-C (or ``seconds``).

    The first line of the output is the port, whatever follows: a live view on a terminal, a line per change of state
    or faults elsewhere, nothing with ``view=False``.
    """
    from .sim_hand_view import watch

    hand = SimHand()
    print(hand.port, flush=True)
    hand.start()
    try:
        if view:
            watch(hand, port=hand.port, seconds=seconds)
        elif seconds is None:
            while True:
                time.sleep(3600)
        else:
            time.sleep(seconds)
    except KeyboardInterrupt:
        pass
    finally:
        hand.stop()
    return 0


def track_following(sink, hand: SimHand) -> List[float]:
    """Wrap ``sink.write`` so that every command written records how far ``hand`` is from it.

    Returns
    -------
    list of float
        Filled as commands go out: the largest finger distance (0..1) between the hand and each command.
    """
    errors: List[float] = []
    write = sink.write

    def tracked(cmd, probs=None):
        ok = write(cmd, probs)
        errors.append(float(np.abs(hand.positions / 1000.0 - cmd).max()))
        return ok

    sink.write = tracked
    return errors
