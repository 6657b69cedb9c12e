"""``neurohand run --live``: a terminal view of the running decoder (rich).

One bar per finger (the command sent), the decoded class and its probability, the signal level per channel, and
the latency percentiles. The view is refreshed from the decoding loop at most ``refresh_hz`` times a second.
"""

import time
from typing import Optional, Sequence

import numpy as np

from neurohand.decoder.vocabulary import FINGERS


def render(command: Optional[np.ndarray], probabilities: Optional[np.ndarray], class_names: Sequence[str],
           channel_rms: Optional[np.ndarray], latency_ms: Sequence[float], state: str, faults: dict):
    """Build the rich renderable for one refresh."""
    from rich.console import Group
    from rich.table import Table

    fingers = Table(title="fingers (0 open .. 1 flexed)", show_header=False, expand=False)
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
    else:
        lat = np.asarray(latency_ms[-1000:]) if len(latency_ms) else np.zeros(1)
        med, p99 = np.median(lat), np.percentile(lat, 99)
    info.add_row("latency", "median {:.2f} ms, p99 {:.2f} ms".format(med, p99))
    colour = {"running": "green", "safe": "yellow", "stopped": "red"}.get(state, "white")
    info.add_row("state", "[{}]{}[/{}]".format(colour, state, colour))
    info.add_row("faults", ", ".join("{} x{}".format(k, v) for k, v in faults.items()) or "none")
    quality = Table(title="signal level per channel (RMS)", show_header=False, expand=False)
    if channel_rms is not None:
        top = max(float(np.max(channel_rms)), 1e-9)
        for i, v in enumerate(channel_rms):
            n = int(round(20 * float(v) / top))
            quality.add_row("ch{}".format(i), "#" * n + "." * (20 - n), "{:.3g}".format(float(v)))
    return Group(fingers, info, quality)


class LiveView:
    """Refreshes a rich ``Live`` display from the runtime's ``on_chunk`` hook."""

    def __init__(self, class_names: Sequence[str], *, console=None, refresh_hz: float = 10.0) -> None:
        from rich.live import Live

        self.class_names = list(class_names)
        self.live = Live(console=console, auto_refresh=False)
        self.period = 1.0 / refresh_hz
        self._last = 0.0
        self._rms: Optional[np.ndarray] = None

    def __enter__(self) -> "LiveView":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def on_chunk(self, runtime, chunk: np.ndarray) -> None:
        """Update the signal levels and, at most ``refresh_hz`` times a second, the display (runtime hook)."""
        if len(chunk):
            rms = np.sqrt(np.nanmean(np.square(chunk - np.nanmean(chunk, axis=0)), axis=0))
            self._rms = rms if self._rms is None else 0.8 * self._rms + 0.2 * rms
        now = time.monotonic()
        if now - self._last >= self.period:
            self._last = now
            self.live.update(render(runtime.last_command, runtime.last_probabilities, self.class_names, self._rms,
                                    runtime.stats.latency_ms, runtime.stats.state, runtime.stats.faults),
                             refresh=True)
