"""The calibration session's terminal interface (rich): what the patient and the clinician see while recording.

The view shows the movement to make with a countdown and a drawing of the cued hand posture, a target bar per
finger (and the glove's measured position when a glove is used), the live signal level of every channel, and
progress through the cue protocol. The clinician presses ``p`` to pause or resume, ``r`` to repeat the trial on
screen, ``s`` to skip it (during its rest: the announced next one) and ``q`` to stop (what was recorded is kept);
keys act within one chunk of signal (the session polls them while recording) and each is acknowledged on screen.
:class:`SessionView` only renders; :class:`KeyControls` turns key presses into the session's clinician actions;
tests render the view to a captured console and drive the controls directly.
"""

from __future__ import annotations

import os
import queue
import select
import sys
import threading
import time
from typing import List, Optional

import numpy as np
from rich.console import Group
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from neurohand.decoder.vocabulary import FINGERS

from .cue_protocol import CueProtocol, Trial

KEYS_HELP = ("[b]p[/b] pause/resume   [b]r[/b] repeat this trial   [b]s[/b] skip this trial (in its rest: the next)   "
             "[b]q[/b] stop (keeps data)")
FINGER_LENGTH = (3, 4, 5, 4, 3)  # rows of an extended finger in the drawing: thumb .. little


def hand_drawing(positions) -> Text:
    """Draw a hand seen from its back, fingers extended or flexed: the posture the cue asks for.

    Parameters
    ----------
    positions : sequence of float, shape (5,)
        Thumb .. little in 0..1 (0 extended, 1 fully flexed).

    Returns
    -------
    Text
        Rows of box drawing: each finger is as long as it is extended, a flexed tip is a curl, then the palm and a
        caption naming the bent fingers.
    """
    pos = np.clip(np.asarray(positions, float), 0.0, 1.0)
    lengths = [int(round(n * (1.0 - p))) for n, p in zip(FINGER_LENGTH, pos)]
    out = Text()
    for row in range(max(FINGER_LENGTH), 0, -1):
        out.append(" ")
        for n, p in zip(lengths, pos):
            bent = p >= 0.5
            if bent and row == n + 1:
                cell = "╰─╯"  # a bent finger: its knuckle, above what is left of it straight
            elif not bent and row == n:
                cell = "╭─╮"
            elif row <= n:
                cell = "│ │"
            else:
                cell = "   "
            out.append(cell + " ", style="bold yellow" if bent else "bold")
        out.append("\n")
    out.append(" ├" + "─" * (4 * len(lengths) - 3) + "┤\n", style="bold")
    out.append(" │" + " " * (4 * len(lengths) - 3) + "│\n", style="bold")
    out.append(" └" + "─" * (4 * len(lengths) - 3) + "┘\n", style="bold")
    out.append("  T   I   M   R   L\n", style="dim")
    bent = [f for f, p in zip(FINGERS, pos) if p >= 0.5]
    out.append("bent: {}".format(", ".join(bent) if bent else "none (open hand)"))
    return out


class SessionView:
    """Everything on screen during a session; :meth:`update` is the session's ``on_chunk`` callback.

    Parameters
    ----------
    cue_protocol : CueProtocol
    channel_names : sequence of str
    labels : {'cue', 'glove'}
    patient_id : str
    units : str
        The source's signal units (the simulator's and an interface's: ``uV``), shown with every level.
    """

    def __init__(self, cue_protocol: CueProtocol, channel_names, *, labels: str = "cue", patient_id: str = "",
                 units: str = "uV") -> None:
        self.cue_protocol = cue_protocol
        self.units = units or "signal units"
        self.trials = cue_protocol.schedule()
        self.channel_names = list(channel_names)
        self.labels = labels
        self.patient_id = patient_id
        self.trial: Optional[Trial] = None
        self.t_s = 0.0
        self.target = np.zeros(5)
        self.glove = np.zeros(5)
        self.level_uv = np.zeros(len(self.channel_names))
        self.done = 0
        self.paused = False
        self.messages: List[str] = []
        self.upcoming: Optional[Trial] = None  # what the rest screen announces (the session's, after repeat/skip)
        self.started = time.monotonic()

    def update(self, trial: Optional[Trial], chunk: np.ndarray, t_s: float, target, glove) -> None:
        """Take the latest chunk: its RMS per channel (smoothed over ~100 ms), the cue target and the glove."""
        if len(chunk):
            rms = np.sqrt(np.mean(np.square(chunk - chunk.mean(axis=0)), axis=0))
            self.level_uv = 0.8 * self.level_uv + 0.2 * rms
        self.paused = trial is None
        if trial is not None:
            self.trial, self.t_s = trial, t_s
            self.target = np.asarray(target, float)
        self.glove = np.asarray(glove, float)

    def trial_started(self, trial: Trial) -> None:
        """Show a new trial's cue."""
        self.trial, self.t_s = trial, 0.0

    def acknowledge(self, message: str) -> None:
        """Show what the session just did (a key's action, a cut, a fault) under the cue."""
        self.messages.append(message)

    def _cue_text(self) -> Text:
        tr = self.trial
        if self.paused:
            return Text("PAUSED - press p to continue", style="bold yellow")
        if tr is None:
            return Text("Get ready: relax your hand", style="bold")
        move_s = 2 * tr.ramp_s + tr.hold_s
        name = tr.movement.replace("_", " ")
        if self.t_s < tr.ramp_s:
            return Text("{}  - move now".format(name.upper()), style="bold green")
        if self.t_s < tr.ramp_s + tr.hold_s:
            return Text("{}  - hold  {:.1f} s".format(name.upper(), tr.ramp_s + tr.hold_s - self.t_s),
                        style="bold green")
        if self.t_s < move_s:
            return Text("{}  - release".format(name.upper()), style="bold cyan")
        nxt = self.upcoming.movement.replace("_", " ") if self.upcoming is not None else "end"
        return Text("REST  - next: {} in {:.1f} s".format(nxt, max(0.0, tr.end_s - tr.start_s - self.t_s)),
                    style="bold blue")

    def _drawing(self):
        """Draw the cued posture: the trial's during its movement, the next trial's during the rest."""
        tr = self.trial
        if self.paused or tr is None:
            return Text("")
        shown, title = tr, "make this"
        if self.t_s >= 2 * tr.ramp_s + tr.hold_s:
            shown, title = self.upcoming, "next"
        if shown is None:
            return Text("")
        return Group(Text(title, style="dim"), hand_drawing(self.cue_protocol.target_of(shown.movement)))

    def _fingers(self) -> Table:
        t = Table.grid(padding=(0, 1))
        t.add_column(justify="right", width=7)
        t.add_column(width=32)
        t.add_column(width=6, justify="right")
        for j, finger in enumerate(FINGERS):
            t.add_row(finger, ProgressBar(total=1.0, completed=float(np.clip(self.target[j], 0, 1)), width=30,
                                          complete_style="green"), "{:.2f}".format(self.target[j]))
            if self.labels == "glove":
                t.add_row("glove", ProgressBar(total=1.0, completed=float(np.clip(self.glove[j], 0, 1)), width=30,
                                               complete_style="magenta"), "{:.2f}".format(self.glove[j]))
        return t

    def _levels(self) -> Table:
        t = Table.grid(padding=(0, 1))
        t.add_column(justify="right", width=9)
        t.add_column(width=22)
        t.add_column(width=9, justify="right")
        top = max(100.0, float(np.max(self.level_uv)) if len(self.level_uv) else 1.0)
        for name, lv in zip(self.channel_names, self.level_uv):
            style = "red" if lv < 0.5 else "green"  # under half a microvolt: a flat (disconnected) channel
            t.add_row(name, ProgressBar(total=top, completed=float(lv), width=20, complete_style=style),
                      "{:.0f} {}".format(lv, self.units))
        return t

    def render(self):
        """Return the whole screen as one rich renderable."""
        total = len(self.trials)
        head = Table.grid(expand=True)
        head.add_column()
        head.add_column(justify="right")
        where = "trial {}/{}  rep {}".format(self.trial.index + 1, total, self.trial.repetition) \
            if self.trial is not None else "before trial 1/{}".format(total)
        head.add_row(Text("neurohand calibration  patient {}  labels: {}".format(self.patient_id, self.labels),
                          style="bold"),
                     "{}  complete {}  elapsed {:.0f} s".format(where, self.done, time.monotonic() - self.started))
        body = Table.grid(padding=(0, 3))
        body.add_row(Panel(self._fingers(), title="target position per finger"),
                     Panel(self._levels(), title="signal level per channel (RMS, {})".format(self.units)))
        progress = Table.grid(padding=(0, 1))
        progress.add_row(ProgressBar(total=max(total, 1), completed=min(self.done, total), width=60),
                         "{}/{} trials complete".format(self.done, total))
        cue = Table.grid(padding=(0, 4))
        cue.add_row(self._cue_text(), self._drawing())
        parts = [head, Panel(cue, title="movement"), body, progress, Text.from_markup(KEYS_HELP)]
        if self.messages:
            parts.append(Text("\n".join(self.messages[-3:-1]), style="dim"))
            parts.append(Text("> " + self.messages[-1], style="bold reverse"))  # the latest action, acknowledged
        return Group(*parts)


class KeyControls:
    """Clinician actions from key presses: :meth:`during` is polled while a trial records, :meth:`clinician` between.

    With ``stdin`` a terminal, a thread reads single keys (cbreak mode, restored on :meth:`close`) and hands each to
    :meth:`press` as it arrives; tests call :meth:`press` instead. ``q`` and ``p`` are states (stopped, paused) that
    hold until changed; ``r`` and ``s`` are one-shot requests, taken by whichever of the two polls comes first.
    """

    def __init__(self, *, read_terminal: bool = True) -> None:
        self.paused = False
        self.stopped = False
        self._requests: "queue.Queue[str]" = queue.Queue()
        self._stop = threading.Event()
        self._old = None
        self._thread = None
        if read_terminal and sys.stdin.isatty():
            import termios
            import tty

            fd = sys.stdin.fileno()
            self._old = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._thread = threading.Thread(target=self._read, args=(fd,), name="calibration-keys", daemon=True)
            self._thread.start()

    def _read(self, fd: int) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                ch = os.read(fd, 1).decode(errors="ignore").lower()
                if ch:
                    self.press(ch)

    def press(self, key: str) -> None:
        """Handle one key."""
        if key == "p":
            self.paused = not self.paused
        elif key == "q":
            self.stopped = True
        elif key in ("r", "s"):
            self._requests.put({"r": "repeat", "s": "skip"}[key])

    def during(self) -> Optional[str]:
        """Return the action to take now, while a trial records: stop, pause, repeat, skip, or None."""
        if self.stopped:
            return "stop"
        if self.paused:
            return "pause"
        try:
            return self._requests.get_nowait()
        except queue.Empty:
            return None

    def clinician(self, trial: Trial) -> str:
        """Return the action before ``trial``: stop, pause (asked again after one chunk), repeat, skip or continue."""
        return self.during() or "continue"

    def close(self) -> None:
        """Stop reading keys and restore the terminal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._old is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._old)
            self._old = None


class SessionScreen:
    """What the clinician sees while recording: the live view (``tui``) or one log line per trial and event."""

    def __init__(self, console) -> None:
        self.console = console
        self.session = None  # set once the session (and, when resuming, its stored cue protocol) is known
        self.view = None
        self.live = None
        self.drawn_at, self.drawn_state = 0.0, None  # when, and for which state, the screen was last drawn

    def draw(self, force: bool = False) -> None:
        """Redraw at most 10 times a second, and at once when the trial, the pause state or the last action changes."""
        now = time.monotonic()
        view = self.view
        state = (view.paused, view.trial.index if view.trial is not None else None, len(view.messages))
        if self.live is not None and (force or now - self.drawn_at > 0.1 or state != self.drawn_state):
            self.drawn_at, self.drawn_state = now, state
            self.live.update(view.render(), refresh=True)

    def on_chunk(self, trial, chunk, t_s, target, glove) -> None:
        """Show a recorded chunk (the session's ``on_chunk``)."""
        self.view.update(trial, chunk, t_s, target, glove)
        self.view.upcoming = self.session.upcoming()
        self.draw()

    def on_trial(self, trial) -> None:
        """Show a trial starting (the session's ``on_trial``)."""
        self.view.trial_started(trial)
        self.view.done = len(self.session.completed)
        self.view.upcoming = self.session.upcoming()
        if self.live is None:
            self.console.print("trial {:>3}/{} rep {} {}".format(trial.index + 1, len(self.view.trials),
                                                                trial.repetition, trial.movement))

    def on_event(self, message) -> None:
        """Show a clinician's action or the session's event (the session's ``on_event``)."""
        self.view.acknowledge(message)
        self.view.upcoming = self.session.upcoming()
        self.view.paused = self.session.paused
        if self.live is None:
            self.console.print("[dim]{}[/dim]".format(message))
        self.draw(force=True)
