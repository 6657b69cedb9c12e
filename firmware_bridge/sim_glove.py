"""A simulated data glove on a real pseudo-terminal: HELLO (role GLOVE), then SAMPLES of 5 finger positions.

Positions in 0..1 travel as int16 with ``scale`` 0.001 (0..1000, the same resolution as SET_POSITIONS). The glove
sends whatever :meth:`SimGlove.push` gives it as it arrives: in the simulator the patient's mirroring hand, one
glove sample per 10 ms.
"""

import os
import select
import threading

import numpy as np

from .protocol import Caps, Hello, Role, Samples, StreamParser, encode
from .pty_device import PtyDevice


class SimGlove(PtyDevice):
    """Serve pushed finger positions on a pseudo-terminal; ``port`` is the path the host opens."""

    thread_name = "sim-glove"
    SCALE = 0.001

    def __init__(self, *, fs_hz: float = 100.0) -> None:
        super().__init__()
        self.fs_hz = float(fs_hz)
        self._hello = encode(Hello(Role.GLOVE, Caps.SAMPLES, 5, self.fs_hz, self.SCALE, "sim-glove"), 0)
        self._lock = threading.Lock()
        self._seq = 0
        self.sent_samples = 0
        self._parser = StreamParser()

    def push(self, positions: np.ndarray) -> None:
        """Send positions, shape (m, 5) in 0..1, as one SAMPLES frame."""
        data = np.clip(np.round(np.asarray(positions, float).reshape(-1, 5) / self.SCALE), 0, 1000).astype(np.int16)
        with self._lock:
            self._seq = (self._seq + 1) & 0xFFFF
            self._write(encode(Samples(self.sent_samples, data), self._seq))
            self.sent_samples += len(data)

    def run(self) -> None:
        """Announce the glove, then answer a host's HELLO until stopped."""
        with self._lock:
            self._write(self._hello)
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                incoming = os.read(self._master, 4096)
            except OSError:
                return
            for msg in self._parser.feed(incoming):
                if isinstance(msg.body, Hello) and msg.body.role == Role.HOST:
                    with self._lock:
                        self._write(self._hello)
