"""The hand as a runtime sink: finger commands over the firmware bridge's serial link, and what the hand answered."""

import time
from typing import Optional

import numpy as np

from neurohand.decoder.errors import DeviceError
from neurohand.firmware_bridge.devices import Sink
from neurohand.firmware_bridge.protocol import fault_names, state_name


class HandSink(Sink):
    """Finger commands to the hand over the firmware bridge's :class:`HandLink`.

    The device must answer as a hand: its HELLO (role hand) within ``hello_timeout_s`` of opening the port, or the
    run does not start (one line naming the port and what came instead); then a valid frame (STATUS, at least 10 a
    second) at least every ``answer_timeout_s``, else every write is a link fault (safe posture, logged) until it
    answers again. After a reconnect no command is sent before its HELLO.
    """

    name = "hand"

    def __init__(self, port: str, *, hello_timeout_s: float = 1.0, answer_timeout_s: float = 0.5) -> None:
        from neurohand.firmware_bridge.hand_link import HandLink

        self.link = HandLink(port, answer_timeout_s=answer_timeout_s)
        if not self.link.ensure_open():
            raise DeviceError("Cannot open the hand on {}: {}".format(port, self.link.open_error or "no such port"))
        t0 = time.monotonic()
        while self.link.hand_hello is None and self.link.wrong_role is None:
            if time.monotonic() - t0 > hello_timeout_s:
                self.link.close()
                bad = self.link.parser.stats.frames_bad
                raise DeviceError("No hand answered on {} within {:g} s: expected its HELLO (role hand), got {}".format(
                    port, hello_timeout_s, "{} corrupted frames".format(bad) if bad else "nothing"))
            self.link.poll()
            time.sleep(0.005)
        if self.link.wrong_role is not None:
            self.link.close()
            raise DeviceError("The device on {} is not a hand: its HELLO announces a {}".format(
                port, self.link.wrong_role))
        self.safe_posture = tuple(float(v) for v in self.link.safe_posture)
        self._reconnects = self.link.reconnects

    def start_posture(self):
        """Where the hand reports it is (a STATUS within 50 ms of opening), else its safe posture."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.05:
            status = self.link.poll()
            if status is not None:
                return tuple(v / 1000.0 for v in status.positions)
            time.sleep(0.005)
        return self.safe_posture

    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Send a command; False when the link is down (it reconnects with backoff) or has just reconnected.

        After a reconnect the hand may have gone to its safe posture (its watchdog): the command is not sent, the
        runtime treats it as a link fault (safe posture, logged) and ramps from the safe posture.
        """
        if not self.link.ensure_open():
            return False
        if self.link.reconnects != self._reconnects:
            self._reconnects = self.link.reconnects
            self.link.last_error = "the link to the hand on {} was re-established".format(self.link.port_name)
            return False
        self.link.poll()
        problem = self.link.answer_error()
        if problem is not None or self.link.hand_hello is None:
            # silent, garbled, the wrong device, or reconnected and not yet announced: no command moves it
            self.link.last_error = problem or "waiting for the HELLO of the hand on {}".format(self.link.port_name)
            return False
        return self.link.send_positions(command)

    def safe(self) -> bool:
        """Send the safe posture."""
        return self.link.safe()

    def link_error(self) -> Optional[str]:
        """Return the link's last error (``'None'`` when it gave none: a failed write is still a link fault)."""
        return str(self.link.last_error)

    def close(self) -> None:
        """Safe posture, then close the port."""
        self.link.safe()
        self.link.close()

    def report(self) -> str:
        """Say what the hand acknowledged, in one line, for the end of a run.

        Its name, the commands sent, the STATUS messages it answered with, its last state and faults, its battery,
        and how far its last reported position was from the last command (the hand moves at its own speed limit).
        """
        link = self.link
        hello = link.hand_hello
        head = "hand {}on {}: {} commands sent, {} STATUS received".format(
            "{!r} ".format(hello.name) if hello is not None and hello.name else "", link.port_name,
            link.commands_sent, link.status_received)
        status = link.last_status
        if status is None:
            return head + ", no STATUS: the hand reported nothing"
        gap = ""
        if link.last_command is not None:
            gap = ", {:.3f} from the last command".format(float(np.max(np.abs(
                np.asarray(status.positions) / 1000.0 - link.last_command))))
        return "{} (last: {}, faults: {}, battery {:.1f} V{}){}".format(
            head, state_name(status.state), ", ".join(fault_names(status.faults)) or "none",
            status.battery_mv / 1000.0, gap, "; {} reconnects".format(link.reconnects - 1)
            if link.reconnects > 1 else "")
