"""``neurohand run --live``: a terminal view of the running decoder (rich).

One bar per finger (the command sent), the decoded class and its probability, the signal level per channel (named,
in the source's units), and the latency percentiles. The decoding loop only takes a snapshot of these figures, at
most ``refresh_hz`` times a second (a few microseconds: no drawing); a separate process draws it. Drawing in the
loop cost up to 45 ms a redraw, more than a 10 ms hop: frames overran their budget while the screen was written.
"""

import multiprocessing
import os
import queue
import signal
import time
from typing import Any, Dict, Optional, Sequence

import numpy as np

from neurohand.decoder.vocabulary import FINGERS


def render(command: Optional[np.ndarray], probabilities: Optional[np.ndarray], class_names: Sequence[str],
           channel_rms: Optional[np.ndarray], latency_ms: Any, state: str, faults: dict, *,
           channel_names: Optional[Sequence[str]] = None, units: str = "signal units", drives_fingers: bool = True):
    """Build the rich renderable for one refresh.

    ``latency_ms`` is the runtime's histogram, a sequence of latencies, or a ``(median, p99)`` pair.
    """
    from rich.console import Group
    from rich.table import Table

    title = "fingers (0 open .. 1 flexed)" if drives_fingers else \
        "fingers: safe posture held (class-only model: no positions were trained)"
    fingers = Table(title=title, show_header=False, expand=False)
    cmd = np.zeros(5) if command is None else np.asarray(command)
    for name, v in zip(FINGERS, cmd):
        n = int(round(float(v) * 30))
        fingers.add_row(name, "[green]" + "#" * n + "[/green]" + "." * (30 - n), "{:.2f}".format(float(v)))
    info = Table(show_header=False, expand=False)
    if probabilities is not None and len(probabilities):
        k = int(np.argmax(probabilities))
        info.add_row("class", "{} ({:.0%})".format(class_names[k] if k < len(class_names) else k, probabilities[k]))
    if hasattr(latency_ms, "percentile"):  # the runtime's bounded histogram
        med, p99 = latency_ms.percentile(50), latency_ms.percentile(99)
    elif isinstance(latency_ms, tuple):
        med, p99 = latency_ms
    else:
        lat = np.asarray(latency_ms[-1000:]) if len(latency_ms) else np.zeros(1)
        med, p99 = np.median(lat), np.percentile(lat, 99)
    info.add_row("latency", "median {:.2f} ms, p99 {:.2f} ms".format(med, p99))
    colour = {"running": "green", "safe": "yellow", "stopped": "red"}.get(state, "white")
    info.add_row("state", "[{}]{}[/{}]".format(colour, state, colour))
    info.add_row("faults", ", ".join("{} x{}".format(k, v) for k, v in faults.items()) or "none")
    quality = Table(title="signal level per channel (RMS, {})".format(units), show_header=False, expand=False)
    if channel_rms is not None:
        top = max(float(np.max(channel_rms)), 1e-9)
        names = list(channel_names) if channel_names and len(channel_names) == len(channel_rms) else \
            ["channel {}".format(i + 1) for i in range(len(channel_rms))]
        for name, v in zip(names, channel_rms):
            n = int(round(20 * float(v) / top))
            quality.add_row(name, "#" * n + "." * (20 - n), "{:.3g} {}".format(float(v), units))
    return Group(fingers, info, quality)


def _draw(snapshots, console, labels: Dict[str, Any]) -> None:
    """Draw each snapshot (the latest when several wait) until ``None`` or the parent process ends."""
    from rich.live import Live

    parent = os.getppid()
    with Live(console=console, auto_refresh=False) as live:
        while True:
            try:
                snap = snapshots.get(timeout=0.5)
            except queue.Empty:
                if os.getppid() != parent:  # the runtime was killed: nothing more will come
                    return
                continue
            while snap is not None:  # draw the latest; a None (stop) among them ends the view
                try:
                    snap = snapshots.get_nowait()
                except queue.Empty:
                    break
            if snap is None:
                return
            live.update(render(**snap, **labels), refresh=True)


def _draw_process(snapshots, path: Optional[str], labels: Dict[str, Any]) -> None:
    """Run the drawing process: Ctrl-C is the runtime's to handle; it stops the view by sending ``None``."""
    from rich.console import Console

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:  # the lowest CPU priority: it draws only when the decoding (and everything else) has the CPU it wants
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(19)
    f = None if path is None else open(path, "w")
    try:
        _draw(snapshots, Console(file=f, force_terminal=True if f else None), labels)
    finally:
        if f is not None:
            f.close()


class LiveView:
    """Shows the runtime's state; fed by the runtime's ``on_chunk`` hook.

    Parameters
    ----------
    class_names : sequence of str
    channel_names : sequence of str, optional
        Row labels of the signal levels (default ``channel 1`` ..).
    units : str
        The signal's units (the source's, e.g. ``uV``).
    drives_fingers : bool
        False for a class-only model: the finger bars show the held safe posture, and say so.
    console : rich.console.Console, optional
        Draw in this process, on this console (tests). Without it a separate process draws on the terminal (or
        into the file ``path``), so drawing never delays decoding.
    refresh_hz : float
        Most snapshots a second (default 10).
    """

    def __init__(self, class_names: Sequence[str], *, channel_names: Optional[Sequence[str]] = None,
                 units: str = "signal units", drives_fingers: bool = True, console=None, path: Optional[str] = None,
                 refresh_hz: float = 10.0) -> None:
        self.class_names = list(class_names)
        self.labels = {"class_names": self.class_names, "channel_names": None if channel_names is None else
                       list(channel_names), "units": units, "drives_fingers": drives_fingers}
        self.console, self.path = console, path
        self.period = 1.0 / refresh_hz
        self._last = 0.0
        self._rms: Optional[np.ndarray] = None
        self._live = None
        self._queue = None
        self._process = None
        self.snapshots = 0
        self.dropped = 0

    def __enter__(self) -> "LiveView":
        if self.console is not None:
            from rich.live import Live

            self._live = Live(console=self.console, auto_refresh=False)
            self._live.__enter__()
        else:
            ctx = multiprocessing.get_context("fork")  # before the loop starts: no decoding thread to copy mid-step
            self._queue = ctx.Queue(maxsize=2)
            self._process = ctx.Process(target=_draw_process, args=(self._queue, self.path, self.labels),
                                        name="neurohand-live-view", daemon=True)
            self._process.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)
            self._live = None
        if self._process is not None:
            try:
                self._queue.put(None, timeout=1.0)
            except queue.Full:
                pass
            self._process.join(timeout=3.0)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(timeout=1.0)
            self._queue.close()
            self._process = None

    def snapshot(self, runtime) -> Dict[str, Any]:
        """Return the figures one redraw shows, copied from the runtime (small arrays and numbers)."""
        lat = runtime.stats.latency_ms
        return {"command": None if runtime.last_command is None else np.array(runtime.last_command),
                "probabilities": None if runtime.last_probabilities is None else np.array(runtime.last_probabilities),
                "channel_rms": None if self._rms is None else self._rms.copy(),
                "latency_ms": (lat.percentile(50), lat.percentile(99)), "state": runtime.stats.state,
                "faults": dict(runtime.stats.faults)}

    def on_chunk(self, runtime, chunk: np.ndarray) -> None:
        """Update the signal levels and, at most ``refresh_hz`` times a second, hand a snapshot to the drawing."""
        if len(chunk):
            rms = np.sqrt(np.nanmean(np.square(chunk - np.nanmean(chunk, axis=0)), axis=0))
            self._rms = rms if self._rms is None else 0.8 * self._rms + 0.2 * rms
        now = time.monotonic()
        if now - self._last < self.period:
            return
        self._last = now
        snap = self.snapshot(runtime)
        self.snapshots += 1
        if self._live is not None:
            self._live.update(render(**snap, **self.labels), refresh=True)
        elif self._queue is not None:
            try:
                self._queue.put_nowait(snap)
            except queue.Full:  # the drawing is behind: skip this one, never wait
                self.dropped += 1
