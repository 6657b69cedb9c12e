"""The devices of a calibration session: source, data glove, reopening a vanished source, the signals that stop it.

Every source is opened through :func:`deploy.sources.open_source` (the runtime's one factory); whatever was opened is
closed at the end, each even when another fails, and the failures are reported.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from neurohand.deploy.sources import open_source

from .options import CalibrateOptions


class SessionDevices:
    """The source, the glove and whatever must be closed afterwards."""

    def __init__(self, opts: CalibrateOptions) -> None:
        from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig

        self.closers: List[Callable[[], None]] = []
        self.glove = None
        self.sim_glove = None
        sim = opts.simulator
        cfg = SimulatorConfig(seed=sim.seed, day=sim.day, session=sim.session, n_channels=sim.channels,
                              fs_hz=sim.fs_hz, mains_hz=opts.devices.mains_hz)
        self._open = lambda: open_source(opts.devices.source, patient=cfg, fast=sim.fast, stall_timeout_s=1.0,
                                         allowed=("sim", "serial", "lsl"))
        self.source = self._open()
        if opts.devices.labels == "glove:sim":
            from neurohand.firmware_bridge.sim_glove import SimGlove

            self.sim_glove = SimGlove(fs_hz=cfg.glove_fs_hz).start()
            self.closers.append(self.sim_glove.stop)
            self.source.on_glove = self.sim_glove.push
        self.closers.append(self.source.close)
        if opts.devices.labels.startswith("glove:"):
            from neurohand.firmware_bridge.interface_link import GloveLink

            port = self.sim_glove.port if self.sim_glove is not None else opts.devices.labels.split(":", 1)[1]
            self.glove = GloveLink(port, stall_timeout_s=0.2)
            self.closers.insert(0, self.glove.close)

    def reopen_source(self):
        """Open the source again (its device vanished: a USB interface re-enumerated); returns it.

        The session closed the old one; the new one replaces it among what :meth:`close` closes.
        """
        old = self.source
        self.source = self._open()
        self.closers = [self.source.close if c == old.close else c for c in self.closers]
        return self.source

    def close(self) -> List[str]:
        """Close everything (each even when one fails); returns what failed, one line each."""
        failed = []
        for close in self.closers:
            try:
                close()
            except Exception as e:  # noqa: BLE001 - every device is closed; the failures are reported
                failed.append("while closing {}: {}: {}".format(getattr(close, "__self__", close), type(e).__name__,
                                                                  e))
        return failed


class StopSignals:
    """Ctrl-C and SIGTERM (a shutdown, ``kill``) end a recording at the session's next poll, with the resume command.

    The first signal only sets :attr:`received`; :meth:`check`, polled by the session after every chunk it reads,
    raises ``KeyboardInterrupt`` there. A handler that raised at once could land inside a finaliser, where Python
    prints the exception and goes on (the recording then ran to its end), or between two writes of one chunk. A second
    signal raises at once: the clinician insists.
    """

    def __init__(self):
        self.received: Optional[int] = None
        self._old: Dict[int, Any] = {}

    def install(self) -> "StopSignals":
        """Take over SIGINT and SIGTERM (in the main thread; elsewhere this does nothing); returns itself."""
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave them
                break
        return self

    def _handler(self, signum, _frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` when a signal came."""
        if self.received is not None:
            raise KeyboardInterrupt

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}
