"""The host's link to the hand: pyserial, HELLO, SET_POSITIONS, heartbeat, ESTOP, STATUS, reconnect with backoff.

Writes never block the decoding loop for long (``write_timeout``); a failed write or a closed port marks the link
down, and :meth:`HandLink.ensure_open` reopens it with exponential backoff (0.1 s doubling to 2 s). While the link
is down the hand's own 200 ms watchdog has already put it in its safe posture.

The link also knows whether a hand is answering: :meth:`HandLink.answer_error` says what is wrong until the device
has sent a HELLO with the role of a hand since the port opened, and whenever no valid frame came from it for
``answer_timeout_s`` (a hand sends STATUS at least 10 times a second, PROTOCOL.md).
"""

import threading
import time
from typing import Optional

import numpy as np

from .port_errors import port_error_reason
from .protocol import Estop, Heartbeat, Hello, Role, SetPositions, Status, StreamParser, encode


def role_name(role: int) -> str:
    """Return a HELLO's role as words: 'host', 'hand', 'neural interface', 'data glove' (or the number)."""
    return {Role.HOST: "host", Role.HAND: "hand", Role.INTERFACE: "neural interface",
            Role.GLOVE: "data glove"}.get(role, "device of role {}".format(int(role)))


class HandLink:
    """Serial link to the hand's motor controller.

    Parameters
    ----------
    port : str
        Serial device (``/dev/ttyACM0``, or the path ``neurohand sim-hand`` printed).
    baud : int
    safe_posture : array_like, shape (5,)
        Positions in 0..1 sent by :meth:`safe`.
    """

    def __init__(self, port: str, *, baud: int = 921600, safe_posture=(0.1, 0.1, 0.1, 0.1, 0.1),
                 backoff_s: float = 0.1, max_backoff_s: float = 2.0, answer_timeout_s: float = 0.5) -> None:
        self.port_name = port
        self.baud = baud
        self.safe_posture = np.asarray(safe_posture, float)
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._backoff = backoff_s
        self._next_try = 0.0
        self._ser = None
        self._seq = 0
        self._t0 = time.monotonic()
        self.parser = StreamParser()
        self.last_status: Optional[Status] = None
        self.last_status_time = 0.0
        self.reconnects = 0
        self.write_errors = 0
        self.commands_sent = 0  # SET_POSITIONS written
        self.status_received = 0
        self.last_command: Optional[np.ndarray] = None  # the last positions written (0..1, on the wire's grid)
        self.last_error: Optional[str] = None
        self.open_error: Optional[str] = None  # why the port last failed to open, one phrase
        self.answer_timeout_s = answer_timeout_s
        self.hand_hello: Optional[Hello] = None  # the hand's HELLO since the port last opened
        self.wrong_role: Optional[str] = None  # the role a device announced that is not a hand
        self.opened_at = 0.0
        self.last_frame_time = 0.0  # when the last valid frame came from the device
        # one lock around the port: a close from another thread (a watchdog, a UI) never races a write
        self._lock = threading.RLock()

    @property
    def is_open(self) -> bool:
        """Whether the port is open."""
        return self._ser is not None

    def ensure_open(self) -> bool:
        """Open the port if it is closed and the backoff allows; returns whether it is open."""
        with self._lock:
            return self._ensure_open_locked()

    def _ensure_open_locked(self) -> bool:
        if self._ser is not None:
            return True
        now = time.monotonic()
        if now < self._next_try:
            return False
        import serial

        try:
            self._ser = serial.Serial(self.port_name, self.baud, timeout=0, write_timeout=0.05)
            self._backoff = self.backoff_s
            self.reconnects += 1
            self.hand_hello, self.wrong_role = None, None
            self.opened_at = self.last_frame_time = time.monotonic()
            self.parser = StreamParser()
            self._write(Hello(Role.HOST, 0, name="neurohand"))
            return self._ser is not None
        except (serial.SerialException, OSError) as e:
            self.open_error = port_error_reason(e)
            self.last_error = "cannot open {}: {}".format(self.port_name, self.open_error)
            self._next_try = now + self._backoff
            self._backoff = min(self._backoff * 2, self.max_backoff_s)
            return False

    def _write(self, body) -> bool:
        import serial

        with self._lock:
            if self._ser is None:
                return False
            try:
                self._ser.write(encode(body, self._seq))
                self._seq = (self._seq + 1) & 0xFFFF
                return True
            except (serial.SerialException, serial.SerialTimeoutException, OSError) as e:
                self.write_errors += 1
                self.last_error = "write to {} failed: {}".format(self.port_name, e)
                self.close()
                self._next_try = time.monotonic() + self._backoff
                return False

    def send_positions(self, positions) -> bool:
        """Command finger positions in 0..1 (clipped); False when the link is down."""
        if not self.ensure_open():
            return False
        msg = SetPositions.from_unit(positions)
        if not self._write(msg):
            return False
        self.commands_sent += 1
        self.last_command = np.asarray(msg.positions, float) / 1000.0
        return True

    def heartbeat(self) -> bool:
        """Tell the hand the host is alive without moving it."""
        if not self.ensure_open():
            return False
        return self._write(Heartbeat(int((time.monotonic() - self._t0) * 1000)))

    def safe(self) -> bool:
        """Command the safe posture."""
        return self.send_positions(self.safe_posture)

    def estop(self, reason: int = 2) -> bool:
        """Emergency stop: the hand holds its safe posture until a person restarts it."""
        if not self.ensure_open():
            return False
        return self._write(Estop(reason))

    def poll(self) -> Optional[Status]:
        """Read what the hand sent (non-blocking); returns the latest STATUS."""
        import serial

        with self._lock:
            if self._ser is None:
                return self.last_status
            try:
                data = self._ser.read(4096)
            except (serial.SerialException, OSError) as e:
                self.last_error = "read from {} failed: {}".format(self.port_name, e)
                self.close()
                return self.last_status
        now = time.monotonic()
        for msg in self.parser.feed(data):
            self.last_frame_time = now
            if isinstance(msg.body, Status):
                self.last_status = msg.body
                self.last_status_time = now
                self.status_received += 1
            elif isinstance(msg.body, Hello):
                if msg.body.role == Role.HAND:
                    self.hand_hello, self.wrong_role = msg.body, None
                else:
                    self.wrong_role = role_name(msg.body.role)
        return self.last_status

    def answer_error(self) -> Optional[str]:
        """Return what is wrong with the device's answers (None: a hand is answering); call after :meth:`poll`.

        The device announced another role; or no hand HELLO yet and ``answer_timeout_s`` has passed since the port
        opened; or no valid frame for ``answer_timeout_s``. Corrupted frames received are named (a device speaking
        something else, or noise on the line).
        """
        if self._ser is None:
            return None  # the link is down: ensure_open's error says why
        if self.wrong_role is not None:
            return "the device on {} is not a hand: its HELLO announces a {}".format(self.port_name, self.wrong_role)
        now = time.monotonic()
        bad = self.parser.stats.frames_bad
        noise = " ({} corrupted frames received)".format(bad) if bad else ""
        if self.hand_hello is None and now - self.opened_at > self.answer_timeout_s:
            return "no HELLO from a hand on {} within {:.0f} ms of opening it{}".format(
                self.port_name, self.answer_timeout_s * 1000, noise)
        if self.hand_hello is not None and now - self.last_frame_time > self.answer_timeout_s:
            return "the hand on {} sent no valid frame for {:.0f} ms (it must send STATUS 10 times a second){}".format(
                self.port_name, (now - self.last_frame_time) * 1000, noise)
        return None

    def close(self) -> None:
        """Close the port (no safe posture is sent: use :meth:`safe` first)."""
        with self._lock:
            if self._ser is not None:
                try:
                    self._ser.close()
                except Exception:  # noqa: BLE001 - closing a dead port
                    pass
                self._ser = None
