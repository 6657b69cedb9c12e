"""A simulated neural interface on a real pseudo-terminal: HELLO, then SAMPLES frames in real time.

It streams a recording (the simulator's, or a replayed session) as int16 values of ``scale`` signal units per LSB,
one SAMPLES message every ``chunk_ms``, paced by sleeping until each is due.
"""

import os
import select
import threading
import time

import numpy as np

from neurohand.decoder.recording import Recording

from .protocol import Caps, Hello, Role, Samples, StreamParser, encode
from .pty_device import PtyDevice


class SimInterface(PtyDevice):
    """Serve ``recording`` on a pseudo-terminal; ``port`` is the path the host opens.

    Parameters
    ----------
    recording : Recording
    scale : float
        Signal units per LSB (0.25 uV gives a +-8 mV range on int16).
    chunk_ms : float
        Time covered by one SAMPLES message.
    loop : bool
        Start again at the end.
    corrupt_every : int
        Flip a byte in every n-th frame (0: never), for fault tests.
    """

    thread_name = "sim-interface"

    def __init__(self, recording: Recording, *, scale: float = 0.25, chunk_ms: float = 5.0, loop: bool = True,
                 corrupt_every: int = 0) -> None:
        super().__init__()
        self.recording = recording
        self.scale = float(scale)
        self.chunk = max(1, int(round(recording.fs_hz * chunk_ms / 1000.0)))
        self.loop = loop
        self.corrupt_every = int(corrupt_every)
        self._pause = threading.Event()
        self.sent_samples = 0
        self._parser = StreamParser()
        self._extra = []  # wire bytes a test injects, sent between two SAMPLES messages
        self._extra_lock = threading.Lock()

    def inject(self, wire: bytes) -> None:
        """Send ``wire`` (encoded messages, e.g. a second HELLO or a malformed SAMPLES) after the next block."""
        with self._extra_lock:
            self._extra.append(bytes(wire))

    def pause(self, paused: bool = True) -> None:
        """Stop sending for a while (a stalled interface)."""
        if paused:
            self._pause.set()
        else:
            self._pause.clear()

    def run(self) -> None:
        """Send HELLO, then SAMPLES at the recording's rate until stopped."""
        rec = self.recording
        seq = 0
        hello = encode(Hello(Role.INTERFACE, Caps.SAMPLES, rec.n_channels, rec.fs_hz, self.scale, "sim-interface"), 0)
        self._write(hello)  # on "power-up"; a host that opens the port later gets one in reply to its HELLO
        t0 = time.monotonic()
        pos = 0
        sample_index = 0
        frame = 0
        while not self._stop.is_set():
            if pos >= rec.n_samples:
                if not self.loop:
                    break
                pos = 0
            block = rec.signals[pos:pos + self.chunk]
            due = t0 + (sample_index + len(block)) / rec.fs_hz
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                ready, _, _ = select.select([self._master], [], [], 0)
            except (OSError, ValueError):  # stopped: the pseudo-terminal is closed
                break
            if ready:
                try:
                    incoming = os.read(self._master, 4096)
                except OSError:
                    incoming = b""
                for msg in self._parser.feed(incoming):
                    if isinstance(msg.body, Hello) and msg.body.role == Role.HOST:
                        self._write(hello)
            pos += len(block)
            first = sample_index
            sample_index += len(block)
            if self._pause.is_set():
                continue  # samples are lost: the host sees a gap in first_sample
            data = np.clip(np.round(block / self.scale), -32768, 32767).astype(np.int16)
            seq = (seq + 1) & 0xFFFF
            wire = bytearray(encode(Samples(first, data), seq))
            frame += 1
            if self.corrupt_every and frame % self.corrupt_every == 0 and len(wire) > 4:
                wire[len(wire) // 2] ^= 0x5A
            self._write(bytes(wire))
            self.sent_samples += len(block)
            with self._extra_lock:
                extra, self._extra = self._extra, []
            for w in extra:
                self._write(w)
