"""The calibration session's terminal interface (rich): what the patient and the clinician see while recording.

The view shows the movement to make with a countdown, a target bar per finger (and the glove's measured position
when a glove is used), the live signal level of every channel, and progress through the cue protocol. The clinician
presses ``p`` to pause or resume, ``r`` to repeat the last trial, ``s`` to skip the next one and ``q`` to stop
(what was recorded is kept). :class:`SessionView` only renders; :class:`KeyControls` turns key presses into the
session's clinician actions; tests render the view to a captured console and drive the controls directly.
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

KEYS_HELP = "[b]p[/b] pause/resume   [b]r[/b] repeat last trial   [b]s[/b] skip next trial   [b]q[/b] stop (keeps data)"


class SessionView:
    """Everything on screen during a session; :meth:`update` is the session's ``on_chunk`` callback.

    Parameters
    ----------
    cue_protocol : CueProtocol
    channel_names : sequence of str
    labels : {'cue', 'glove'}
    patient_id : str
    """

    def __init__(self, cue_protocol: CueProtocol, channel_names, *, labels: str = "cue", patient_id: str = "") -> None:
        self.cue_protocol = cue_protocol
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
        nxt = self.trials[tr.index + 1].movement.replace("_", " ") if tr.index + 1 < len(self.trials) else "end"
        return Text("REST  - next: {} in {:.1f} s".format(nxt, max(0.0, tr.end_s - tr.start_s - self.t_s)),
                    style="bold blue")

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
                      "{:.0f} uV".format(lv))
        return t

    def render(self):
        """Return the whole screen as one rich renderable."""
        total = len(self.trials)
        head = Table.grid(expand=True)
        head.add_column()
        head.add_column(justify="right")
        idx = self.trial.index + 1 if self.trial is not None else 0
        head.add_row(Text("neurohand calibration  patient {}  labels: {}".format(self.patient_id, self.labels),
                          style="bold"),
                     "trial {}/{}  recorded {}  elapsed {:.0f} s".format(idx, total, self.done,
                                                                       time.monotonic() - self.started))
        body = Table.grid(padding=(0, 3))
        body.add_row(Panel(self._fingers(), title="target position per finger"),
                     Panel(self._levels(), title="signal level per channel"))
        progress = ProgressBar(total=max(total, 1), completed=min(self.done, total), width=60)
        parts = [head, Panel(self._cue_text(), title="movement"), body, progress, Text.from_markup(KEYS_HELP)]
        if self.messages:
            parts.append(Text("\n".join(self.messages[-3:]), style="dim"))
        return Group(*parts)


class KeyControls:
    """Clinician actions from key presses; :meth:`clinician` is the session's between-trial callback.

    With ``stdin`` a terminal, a thread reads single keys (cbreak mode, restored on :meth:`close`); tests call
    :meth:`press` instead.
    """

    def __init__(self, *, read_terminal: bool = True) -> None:
        self._keys: "queue.Queue[str]" = queue.Queue()
        self.paused = False
        self.stopped = False
        self._pending: Optional[str] = None
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
            self._pending = {"r": "repeat", "s": "skip"}[key]

    def clinician(self, trial: Trial) -> str:
        """Return the action before ``trial``: stop, pause (asked again after one chunk), repeat, skip or continue."""
        if self.stopped:
            return "stop"
        if self.paused:
            return "pause"
        action, self._pending = self._pending, None
        return action or "continue"

    def close(self) -> None:
        """Stop reading keys and restore the terminal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
        if self._old is not None:
            import termios

            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._old)
            self._old = None
