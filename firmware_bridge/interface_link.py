"""The host's link to a neural interface streaming SAMPLES over serial: a runtime source.

``read()`` blocks (in pyserial, with a timeout, never spinning) until samples arrive and returns them in signal
units with their arrival time: when the last of them reached the host, from the interface's sample counter
(:class:`firmware_bridge.sample_clock.SampleClock`), so samples read late from a backlog are known to be old. Gaps
in ``first_sample`` are counted as dropped samples; corrupted frames are dropped by the parser and counted; no data
within ``stall_timeout_s`` raises :class:`SourceStalled`.
"""

import time
from typing import List, Optional, Tuple

import numpy as np

from neurohand.decoder.errors import DeviceError, InvalidValueError

from .devices import Source
from .port_errors import port_error_reason
from .protocol import Hello, ProtocolError, Role, Samples, StreamParser, encode
from .sample_clock import SampleClock

FULL_SCALE_LSB = 32767  # SAMPLES are int16: an interface's full scale is this many times its HELLO's scale


class SourceStalled(DeviceError):
    """No samples within the timeout."""


class SourceFault(DeviceError):
    """The source delivered what must not be decoded: a malformed SAMPLES message, a HELLO changing the stream.

    The runtime goes to the safe posture, logs it, and reads on.

    Attributes
    ----------
    kind : str
        ``'signal'`` (malformed samples) or ``'hello'`` (the stream's parameters changed).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class InterfaceSource(Source):
    """Samples from a neural interface on ``port``; waits for its HELLO to learn rate, channels and scale."""

    role = Role.INTERFACE
    what = "interface"

    def __init__(self, port: str, *, baud: int = 3000000, stall_timeout_s: float = 0.1,
                 hello_timeout_s: float = 3.0) -> None:
        import serial

        try:
            self._ser = serial.Serial(port, baud, timeout=stall_timeout_s)
        except (serial.SerialException, OSError, ValueError) as e:
            raise DeviceError("Cannot open the {} on {}: {}".format(self.what, port, port_error_reason(e))) from None
        self.port = port
        self.parser = StreamParser()
        self.stall_timeout_s = stall_timeout_s
        self.hello: Optional[Hello] = None
        self._faults: List[Tuple[str, str]] = []
        self._changed: Optional[Hello] = None  # a mid-stream HELLO with other parameters
        self.dropped_samples = 0
        self._next_first: Optional[int] = None
        self._pending = []
        self._arrival = 0.0  # arrival time of the last sample pending
        self._clock: Optional[SampleClock] = None  # from the HELLO's rate
        self._device_end: Optional[int] = None  # the device's counter after the last SAMPLES (u32)
        self._n_end = 0  # samples the device made since the clock's anchor, gaps included
        self._ser.write(encode(Hello(Role.HOST, 0, name="neurohand"), 0))
        t0 = time.monotonic()
        while self.hello is None:
            if time.monotonic() - t0 > hello_timeout_s:
                self._ser.close()
                raise SourceStalled("no HELLO from the {} on {} within {:g} s".format(self.what, port, hello_timeout_s))
            self._ingest(self._ser.read(4096), time.monotonic())
        self.fs_hz = float(self.hello.fs_hz)
        self.n_channels = int(self.hello.n_channels)
        self.channel_names = None
        self.full_scale = FULL_SCALE_LSB * float(self.hello.scale)  # |x| at which a sample is saturated

    def _ingest(self, data: bytes, t_read: float) -> None:
        """Parse what one read delivered at ``t_read`` (monotonic)."""
        for msg in self.parser.feed(data):
            if isinstance(msg.body, Hello) and msg.body.role == self.role:
                self._on_hello(msg.body)
            elif isinstance(msg.body, Samples) and self.hello is not None:
                s = msg.body
                if s.data.shape[1] != self.hello.n_channels:
                    self._faults.append(("signal", "malformed SAMPLES from {}: {} channels, the HELLO announced {}; "
                                         "dropped".format(self.port, s.data.shape[1], self.hello.n_channels)))
                    self._next_first = None
                    continue
                if self._changed is not None:
                    continue  # the stream's meaning changed: nothing is decoded until the first HELLO's returns
                if self._next_first is not None and s.first_sample != self._next_first:
                    self.dropped_samples += (s.first_sample - self._next_first) & 0xFFFFFFFF
                self._next_first = (s.first_sample + len(s.data)) & 0xFFFFFFFF
                self._pending.append(s.data.astype(np.float32) * self.hello.scale)
                self._arrival = self._clock_arrival(self._next_first, len(s.data), t_read)

    def _clock_arrival(self, device_end: int, n: int, t_read: float) -> float:
        """Arrival time of the sample before the device's counter ``device_end`` (u32), ``n`` samples just read."""
        if self._clock is None:
            self._clock = SampleClock(float(self.hello.fs_hz))
        step = n if self._device_end is None else (device_end - self._device_end) & 0xFFFFFFFF
        if step >= 1 << 31:  # the counter went back: the device restarted, its samples anchor the clock again
            self._clock.reset()
            self._n_end, step = 0, n
        self._device_end = device_end
        self._n_end += step
        return self._clock.observe(self._n_end, t_read)

    def _on_hello(self, hello: Hello) -> None:
        try:
            hello.check_stream()
        except ProtocolError as e:
            if self.hello is None:
                self._ser.close()
                raise ProtocolError("{} on {}: {}".format(self.what, self.port, e)) from None
            self._faults.append(("hello", "{}; samples refused".format(e)))
            self._changed = hello
            return
        if self.hello is None:
            self.hello = hello
        elif hello.stream_parameters() != self.hello.stream_parameters():
            self._faults.append(("hello", "mid-stream HELLO from {} changes (n_channels, fs_hz, scale) from {} to {}; "
                                 "samples refused until the first HELLO's parameters return".format(
                                     self.port, self.hello.stream_parameters(), hello.stream_parameters())))
            self._changed = hello
            self._pending = []
        elif self._changed is not None:
            self._changed = None  # the original parameters are back
            self._next_first = None

    def read(self) -> Tuple[np.ndarray, float]:
        """Block until samples arrive: ``(chunk (n, n_channels) float32, arrival time of its last sample)``.

        Raises
        ------
        SourceStalled
            No samples within ``stall_timeout_s``.
        SourceFault
            A malformed SAMPLES message or a HELLO changing the stream's parameters (once per event), and then on
            every read while the changed parameters stand.
        """
        deadline = time.monotonic() + self.stall_timeout_s
        drained = False
        while not self._pending:
            if self._faults:
                kind, message = self._faults.pop(0)
                raise SourceFault(kind, message)
            waiting = self._ser.in_waiting
            data = self._ser.read(max(1, waiting))
            self._ingest(data, time.monotonic())
            if self._changed is not None and not self._faults and time.monotonic() > deadline:
                raise SourceFault("hello", "the stream's parameters changed mid-stream (HELLO {}); samples "
                                  "refused".format(self._changed.stream_parameters()))
            if not self._pending and time.monotonic() > deadline:
                if not drained and self._ser.in_waiting:  # the process was held up past the deadline: read first
                    drained = True
                    continue
                raise SourceStalled("no samples from {} for {:.0f} ms".format(self.port, self.stall_timeout_s * 1000))
        if self._faults:  # a fault among the pending samples: report it first, the samples stay queued
            kind, message = self._faults.pop(0)
            raise SourceFault(kind, message)
        chunk = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        return chunk, self._arrival

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
            self._ingest(self._ser.read(waiting), time.monotonic())
        if not self._pending:
            return np.zeros((0, 5), np.float32)
        out = np.concatenate(self._pending)
        self._pending = []
        return np.clip(out, 0.0, 1.0)
