"""Watching the simulated hand: ``neurohand sim-hand`` draws its fingers, state and faults in the terminal.

The firmware loop is not touched: a snapshot is copied under the hand's lock a few times a second and drawn from
it. On a terminal it is a live view (fingers as bars, the commanded target marked); elsewhere (a pipe, a log) one
line each time the state or the faults change.
"""

import time
from typing import Any, Dict, List, Optional

from .protocol import fault_names, state_name

FINGERS = ("thumb", "index", "middle", "ring", "little")
BAR_WIDTH = 40
STATE_STYLE = {"running": "bold green", "safe": "bold yellow", "stopped": "bold red"}


def snapshot(hand: Any) -> Dict[str, Any]:
    """Copy what the view shows from a :class:`~.sim_hand.SimHand`, under its lock.

    Positions and target (0..1), state, faults, commands received and the age of the last one.
    """
    with hand._lock:
        return {"positions": [float(v) / 1000.0 for v in hand.positions],
                "target": [float(v) / 1000.0 for v in hand.target],
                "state": state_name(hand.state), "faults": fault_names(hand.faults),
                "commands": int(hand.commands_received), "last_command_age_s": time.monotonic() - hand._last_cmd}


def bar(position: float, target: float, width: int = BAR_WIDTH) -> str:
    """Draw a finger as text: filled to its position (0 open .. 1 flexed), ``|`` at its target."""
    filled = int(round(max(0.0, min(1.0, position)) * width))
    cells = ["#"] * filled + ["."] * (width - filled)
    cells[min(width - 1, int(round(max(0.0, min(1.0, target)) * width)))] = "|"
    return "".join(cells)


def render(snap: Dict[str, Any], *, port: str, rate_per_s: float):
    """Return the live view of one snapshot (a rich renderable)."""
    from rich.panel import Panel
    from rich.table import Table

    t = Table.grid(padding=(0, 2))
    for name, p, g in zip(FINGERS, snap["positions"], snap["target"]):
        t.add_row(name, bar(p, g), "{:.2f}".format(p), "-> {:.2f}".format(g))
    age = snap["last_command_age_s"]
    footer = "{} commands, {:.0f}/s, last {}".format(
        snap["commands"], rate_per_s, "{:.0f} ms ago".format(age * 1000.0) if age < 1e6 else "never")
    state = snap["state"]
    title = "[{}]{}[/] on {}   faults: {}".format(STATE_STYLE.get(state, "bold"), state.upper(), port,
                                                   ", ".join(snap["faults"]) or "none")
    return Panel(t, title=title, subtitle=footer + "   0 open .. 1 flexed, | target", expand=False)


def describe(snap: Dict[str, Any]) -> str:
    """One line for a log: state, faults, positions."""
    return "{}; faults: {}; positions {}".format(snap["state"], ", ".join(snap["faults"]) or "none",
                                                 " ".join("{:.2f}".format(p) for p in snap["positions"]))


def watch(hand: Any, *, port: str, seconds: Optional[float], console=None, refresh_hz: float = 10.0) -> None:
    """Show ``hand`` until ``seconds`` pass (None: until Ctrl-C): live on a terminal, else a line per change."""
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    end = None if seconds is None else time.monotonic() + seconds
    history: List[Any] = []  # (time, commands) over the last second, for the rate

    def rate(snap) -> float:
        now = time.monotonic()
        history.append((now, snap["commands"]))
        while history and now - history[0][0] > 1.0:
            history.pop(0)
        span = now - history[0][0]
        return (snap["commands"] - history[0][1]) / span if span > 0 else 0.0

    def remaining() -> float:
        return 1.0 / refresh_hz if end is None else max(0.0, min(1.0 / refresh_hz, end - time.monotonic()))

    if console.is_terminal:
        with Live(render(snapshot(hand), port=port, rate_per_s=0.0), console=console, refresh_per_second=refresh_hz,
                  transient=False) as live:
            while end is None or time.monotonic() < end:
                time.sleep(remaining())
                snap = snapshot(hand)
                live.update(render(snap, port=port, rate_per_s=rate(snap)))
        return
    last = None
    while end is None or time.monotonic() < end:
        snap = snapshot(hand)
        key = (snap["state"], tuple(snap["faults"]))
        if key != last:
            now = time.time()
            console.print("{}.{:03d} {}".format(time.strftime("%H:%M:%S", time.localtime(now)), int(now * 1000) % 1000,
                                                describe(snap)), highlight=False, soft_wrap=True)
            last = key
        time.sleep(remaining())
