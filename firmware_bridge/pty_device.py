"""A simulated serial device behind a real pseudo-terminal: the lifecycle the simulated hand and interface share."""

import os
import threading
import tty
from typing import Optional


class PtyDevice:
    """Opens a raw pseudo-terminal; ``port`` is the path a host opens with pyserial. Subclasses implement ``run``."""

    thread_name = "pty-device"

    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def run(self) -> None:  # pragma: no cover - abstract
        """Run the device loop; return when ``self._stop`` is set."""
        raise NotImplementedError

    def start(self):
        """Run the device loop in a background thread."""
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop and close the pseudo-terminal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write(self, data: bytes) -> None:
        """Send bytes to the host; dropped when nobody listens (as a UART would)."""
        try:
            os.write(self._master, data)
        except OSError:
            pass
