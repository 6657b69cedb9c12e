"""The host's link to a neural interface streaming SAMPLES over serial: a runtime source.

``read()`` blocks (in pyserial, with a timeout, never spinning) until samples arrive and returns them in signal
units with their arrival time. Gaps in ``first_sample`` are counted as dropped samples; corrupted frames are dropped
by the parser and counted; no data within ``stall_timeout_s`` raises :class:`SourceStalled`.
"""

import time
from typing import Optional, Tuple

import numpy as np

from neurohand.decoder.errors import DeviceError, InvalidValueError

from .protocol import Hello, Role, Samples, StreamParser, encode


class SourceStalled(DeviceError):
    """No samples within the timeout."""


class InterfaceSource:
    """Samples from a neural interface on ``port``; waits for its HELLO to learn rate, channels and scale."""

    role = Role.INTERFACE
    what = "interface"

    def __init__(self, port: str, *, baud: int = 3000000, stall_timeout_s: float = 0.1,
                 hello_timeout_s: float = 3.0) -> None:
        import serial

        self._ser = serial.Serial(port, baud, timeout=stall_timeout_s)
        self.port = port
        self.parser = StreamParser()
        self.stall_timeout_s = stall_timeout_s
        self.hello: Optional[Hello] = None
        self.dropped_samples = 0
        self._next_first: Optional[int] = None
        self._pending = []
        self._ser.write(encode(Hello(Role.HOST, 0, name="neurohand"), 0))
        t0 = time.monotonic()
        while self.hello is None:
            if time.monotonic() - t0 > hello_timeout_s:
                self._ser.close()
                raise SourceStalled("no HELLO from the {} on {} within {:g} s".format(self.what, port, hello_timeout_s))
            self._ingest(self._ser.read(4096))
        self.fs_hz = float(self.hello.fs_hz)
        self.n_channels = int(self.hello.n_channels)
        self.channel_names = None

    def _ingest(self, data: bytes) -> None:
        for msg in self.parser.feed(data):
            if isinstance(msg.body, Hello) and msg.body.role == self.role:
                self.hello = msg.body
            elif isinstance(msg.body, Samples) and self.hello is not None:
                s = msg.body
                if self._next_first is not None and s.first_sample != self._next_first:
                    self.dropped_samples += (s.first_sample - self._next_first) & 0xFFFFFFFF
                self._next_first = (s.first_sample + len(s.data)) & 0xFFFFFFFF
                self._pending.append(s.data.astype(np.float32) * self.hello.scale)

    def read(self) -> Tuple[np.ndarray, float]:
        """Block until samples arrive: ``(chunk (n, n_channels) float32, arrival time)``."""
        deadline = time.monotonic() + self.stall_timeout_s
        while not self._pending:
            waiting = self._ser.in_waiting
            data = self._ser.read(max(1, waiting))
            self._ingest(data)
            if not self._pending and time.monotonic() > deadline:
                raise SourceStalled("no samples from {} for {:.0f} ms".format(self.port, self.stall_timeout_s * 1000))
        chunk = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        return chunk, time.monotonic()

    def close(self) -> None:
        """Close the port."""
        self._ser.close()


class GloveLink(InterfaceSource):
    """Finger positions from a data glove on ``port`` (SAMPLES with 5 channels in 0..1, see PROTOCOL.md).

    The calibration session reads the neural source and, after each chunk, :meth:`poll` s the glove for whatever
    arrived meanwhile; the positions are stored at the neural sample count of their arrival (synchronised by
    arrival time, as both streams reach the host within a millisecond).
    """

    role = Role.GLOVE
    what = "data glove"

    def __init__(self, port: str, **kw) -> None:
        super().__init__(port, **kw)
        if self.n_channels != 5:
            raise InvalidValueError(
                "The device on {} is not a 5-finger data glove: its HELLO announces {} channels".format(
                port, self.n_channels))

    def poll(self) -> np.ndarray:
        """Positions that arrived since the last call, shape (m, 5) in 0..1 (m may be 0); never blocks."""
        waiting = self._ser.in_waiting
        if waiting:
            self._ingest(self._ser.read(waiting))
        if not self._pending:
            return np.zeros((0, 5), np.float32)
        out = np.concatenate(self._pending)
        self._pending = []
        return np.clip(out, 0.0, 1.0)
