"""The calibration session as a headless state machine: cues, synchronized recording, clinician actions, resume.

The session walks the cue protocol's trials; for each it records the source's samples for the trial's duration and
appends them (crash-safe, :class:`~neurohand.decoder.session_file.SessionWriter`) with the finger positions (the
cue's target trajectory, or a data glove's measurements stored at their arrival), the movement as label, the
repetition, and a cue event. Consecutive trials form one continuous segment; a pause (which keeps reading and
discarding the source, so no backlog builds) or a resume starts a new one.

The clinician acts at any moment: ``interrupt`` is polled after every chunk read while a trial records (10 ms of
signal from the simulated patient, 5 ms from an interface), ``clinician`` between trials. ``stop`` and ``pause`` cut
the trial in progress at once; ``repeat`` and ``skip`` cut it during its movement (the trial on screen is cued again,
or the session goes on with the next one) and, during its rest, apply to what comes next (the trial just made is
cued again, or the announced next trial is skipped). A cut trial keeps everything recorded and is marked by a cue
``cut@INDEX`` at its last sample recorded. A source that stalls, faults or disconnects cuts the trial the same way;
with ``recover_s`` the session then waits that long for clean samples (reopening a device that vanished, e.g. a USB
interface re-enumerated under the same name) and cues the trial again, as after a pause; otherwise, or when the
source does not come back, the session stops (:attr:`CalibrationSession.fault` says what happened).

A session killed or stopped at any point is resumed with :func:`resume`: the file is recovered (everything flushed
survives) and the session continues after the last trial whose cue was recorded completely. Log lines and the
terminal interface number trials from 1, as the screen does.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, List, Optional

import numpy as np

from neurohand.decoder.errors import InvalidValueError, NeurohandError
from neurohand.decoder.session_file import SessionWriter, read_recording
from neurohand.decoder.validation import invalid_value
from neurohand.firmware_bridge.interface_link import SourceFault, SourceStalled

from .cue_protocol import CueProtocol, Trial

ACTIONS = ("continue", "pause", "repeat", "skip", "stop")
CUT = "cut"  # cue name prefix marking where a trial was cut: "cut@INDEX"
CLEAN_S = 0.5  # clean samples needed after a source fault before the trial is cued again


def trial_label(trial: Trial) -> str:
    """How a trial is named on screen and in the log: ``trial 3 (index flexion)``, numbered from 1."""
    return "trial {} ({})".format(trial.index + 1, trial.movement.replace("_", " "))


class CalibrationSession:
    """Record ``cue_protocol`` from ``source`` into ``path``.

    Parameters
    ----------
    cue_protocol : CueProtocol
    source
        Anything with ``fs_hz``, ``n_channels`` and a blocking ``read() -> (chunk, time)``.
    path : str
        Session file to create.
    clinician : callable, optional
        Called between trials with the next trial; returns one of :data:`ACTIONS`.
    interrupt : callable, optional
        Polled after every chunk while a trial records; returns one of :data:`ACTIONS` but ``continue``, or None.
    on_trial : callable, optional
        Called as each trial starts (the terminal interface shows its cue).
    on_event : callable, optional
        Called with each log line as it happens (the terminal interface acknowledges the clinician's keys).
    recover_s : float
        After a source fault, how long to wait for clean samples before stopping (0: stop at once).
    reopen : callable, optional
        Returns the source opened again (the same device spec), for a source whose device vanished.
    """

    def __init__(self, cue_protocol: CueProtocol, source, path: str, *, patient_id: str = "",
                 signal_kind: str = "nerve", clinician: Optional[Callable[[Trial], str]] = None, on_trial=None,
                 on_chunk=None, glove=None, interrupt: Optional[Callable[[], Optional[str]]] = None, on_event=None,
                 start_trial: int = 0, writer: Optional[SessionWriter] = None, metadata: Optional[dict] = None,
                 recover_s: float = 0.0, reopen: Optional[Callable[[], Any]] = None) -> None:
        self.cue_protocol = cue_protocol
        self.recover_s = float(recover_s)
        self.reopen = reopen
        self.recovered = 0  # source faults the session came back from
        self._dead = False  # the source's device vanished: only reopening it helps
        self.source = source
        self.path = path
        self.clinician = clinician or (lambda trial: "continue")
        self.interrupt = interrupt or (lambda: None)
        self.on_trial = on_trial or (lambda trial: None)
        self.on_chunk = on_chunk or (lambda trial, chunk, t_s, target, glove_pos: None)
        self.on_event = on_event or (lambda message: None)
        self.glove = glove
        self.glove_positions = np.zeros(5)
        self.paused = False
        self.stopped = False
        self.fault: Optional[str] = None  # what the source did when it stopped the session
        self._continuous = False
        self.trials = cue_protocol.schedule()
        self.next_index = start_trial
        self.current: Optional[Trial] = None  # the trial recording now
        self.completed: List[int] = []
        self.cut: List[int] = []
        self.skipped: List[int] = []
        self.log: List[str] = []
        self._again: Optional[int] = None  # a trial to record again before trials[next_index]
        self._last: Optional[int] = None  # the last trial recorded completely
        self._pending: Optional[str] = None  # 'repeat' or 'skip' asked during a trial's rest
        self.writer = writer or SessionWriter(
            path, fs_hz=source.fs_hz, n_channels=source.n_channels, signal_kind=signal_kind,
            channel_names=getattr(source, "channel_names", None) or (), units=getattr(source, "units", ""),
            class_names=cue_protocol.class_names, metadata=dict(
                {"patient_id": patient_id, "source": "calibration", "session_id": os.path.basename(path),
                 "labels": "glove" if glove is not None else "cue", "protocol": cue_protocol.to_json()},
                **(metadata or {})))
        self._carry = np.zeros((0, source.n_channels), np.float32)

    def _event(self, message: str) -> None:
        self.log.append(message)
        self.on_event(message)

    def upcoming(self) -> Optional[Trial]:
        """Return the trial cued after the one recording now (or next, between trials), given a repeat or skip."""
        if self._pending == "repeat":
            return self.current if self.current is not None else self.trials[self._last]
        k = self.next_index
        if self.current is not None and self._again is None:
            k += 1  # trials[next_index] is the one recording now
        elif self.current is None and self._again is not None:
            return self.trials[self._again]
        if self._pending == "skip":
            k += 1
        return self.trials[k] if k < len(self.trials) else None

    def _read(self):
        """Return the next chunk, or None when the source stalled, faulted or disconnected (:attr:`fault` says how)."""
        try:
            chunk, _ = self.source.read()
        except (SourceStalled, SourceFault) as e:
            self.fault = "{} ({})".format(e, type(e).__name__)
            return None
        except OSError as e:  # a serial port that vanished (unplugged)
            self.fault = "{} ({})".format(e, type(e).__name__)
            self._dead = True
            return None
        return chunk

    def _reopen(self) -> bool:
        """Open the vanished source again; False while it cannot be (the fault says why)."""
        try:
            self.source.close()
        except Exception:  # noqa: BLE001 - the device is gone; closing what is left may fail
            pass
        try:
            source = self.reopen()
        except (NeurohandError, OSError) as e:
            self.fault = "cannot reopen the source: {}".format(e)
            return False
        if (source.fs_hz, source.n_channels) != (self.source.fs_hz, self.source.n_channels):
            self.fault = "the source came back at {:g} Hz with {} channels, not {:g} Hz with {}".format(
                source.fs_hz, source.n_channels, self.source.fs_hz, self.source.n_channels)
            source.close()
            self.recover_s = 0.0
            return False
        self.source, self._dead = source, False
        return True

    def _wait_for_source(self) -> bool:
        """After a source fault: wait up to ``recover_s`` for ``CLEAN_S`` of clean samples; True when they came."""
        if self.recover_s <= 0 or self.fault is None:
            return False
        self._event("waiting up to {:g} s for the source to come back".format(self.recover_s))
        deadline, clean_since = time.monotonic() + self.recover_s, None
        while time.monotonic() < deadline and self.recover_s > 0:
            if self.interrupt() == "stop":
                self.stopped = True
                return False
            if self._dead:
                if self.reopen is None:
                    return False
                if not self._reopen():
                    time.sleep(0.2)
                    continue
            chunk = self._read()
            if chunk is None:
                clean_since = None
                continue
            if self.glove is not None and self._poll_glove() is None:
                return False  # the glove's port vanished: nothing here brings it back
            self.on_chunk(None, chunk, 0.0, np.zeros(5), self.glove_positions)
            clean_since = clean_since or time.monotonic()
            if time.monotonic() - clean_since >= CLEAN_S:
                self._event("the source is back: {:.1f} s of clean samples (it failed with: {})".format(
                    CLEAN_S, self.fault))
                self.fault, self._continuous = None, False
                self.recovered += 1
                return True
        return False

    def _poll_glove(self):
        """Return the glove's new positions, or None when its port vanished (:attr:`fault` says so)."""
        try:
            return self.glove.poll()
        except OSError as e:
            self.fault = "data glove: {} ({})".format(e, type(e).__name__)
            return None

    def _record_trial(self, trial: Trial) -> Optional[str]:
        """Record ``trial``; returns None when complete, else what cut it (an action, or ``'fault'``)."""
        fs = self.source.fs_hz
        n_total = int(round((trial.end_s - trial.start_s) * fs))
        n_move = int(round((2 * trial.ramp_s + trial.hold_s) * fs))
        t_rel = np.arange(n_total) / fs + trial.start_s
        pos, lab, _ = self.cue_protocol.trajectory(t_rel)
        start_sample = self.writer.n_samples
        if not self._continuous:  # samples were skipped (first trial, after a pause or a resume): a new segment
            self.writer.mark_segment()
            self._continuous = True
        self.writer.add_cue(start_sample, "{}@{}".format(trial.movement, trial.index), label=trial.label,
                           duration_samples=n_move)
        if hasattr(self.source, "cue"):  # a simulated patient sees the cue as a person would
            self.source.cue(self.cue_protocol.target_of(trial.movement), ramp_s=trial.ramp_s, hold_s=trial.hold_s)
        if self.glove is not None:
            self._poll_glove()  # whatever the glove sent before the cue belongs to no trial
        step = max(1, int(round(fs / 100.0)))  # cue positions at a glove's rate (100 Hz)
        last_index = start_sample - 1
        got = 0
        cut_by: Optional[str] = None
        while got < n_total:
            if len(self._carry):
                chunk, self._carry = self._carry, np.zeros((0, self.source.n_channels), np.float32)
            else:
                chunk = self._read()
                if chunk is None:
                    cut_by = "fault"
                    break
            take = chunk[: n_total - got]
            self._carry = np.asarray(chunk[n_total - got:], np.float32)
            k = len(take)
            self.writer.append(take, labels=lab[got:got + k], repetitions=np.full(k, trial.repetition))
            if self.glove is not None:
                g = self._poll_glove()
                if g is None:
                    got += k
                    cut_by = "fault"
                    break
                if len(g):
                    # stored at their arrival: spread over the chunk they arrived with, never before the trial
                    end = start_sample + got + k - 1
                    spacing = max(1, int(round(fs / getattr(self.glove, "fs_hz", 100.0))))
                    idx = np.maximum(end - spacing * np.arange(len(g))[::-1], last_index + 1 + np.arange(len(g)))
                    keep = idx < start_sample + got + k
                    if keep.any():
                        self.writer.append_positions(g[keep], idx[keep])
                        last_index = int(idx[keep][-1])
                        self.glove_positions = g[keep][-1]
            else:
                idx = np.arange(got, got + k)
                sel = idx[idx % step == 0]
                if len(sel):
                    self.writer.append_positions(pos[sel], start_sample + sel)
            got += k
            self.on_chunk(trial, take, (got / fs), pos[got - 1], self.glove_positions)
            action = self.interrupt() if got < n_total else None
            if action in ("repeat", "skip") and got >= n_move:  # during the rest: applies to what comes next
                target = trial if action == "repeat" else self.upcoming()
                if target is not None:
                    self._pending = action
                    self._event("{} {} after this rest".format(
                        "repeating" if action == "repeat" else "skipping", trial_label(target)))
                action = None
            if action is not None and action != "continue":
                cut_by = action
                break
        if cut_by is not None:
            if got:  # at its last sample recorded, with how many it has (a trial cut before any has no cue on file)
                self.writer.add_cue(self.writer.n_samples - 1, "{}@{}".format(CUT, trial.index), label=trial.label,
                                    duration_samples=got)
            self.cut.append(trial.index)
            self._pending = None  # a repeat or skip asked during the rest no longer applies
            self._carry = np.zeros((0, self.source.n_channels), np.float32)
        self.writer.flush()
        return cut_by

    def _idle(self) -> None:
        """While paused, keep reading (and discarding) the source: live levels stay on screen, no backlog builds."""
        chunk = self._read()
        self._continuous = False
        if chunk is None:
            return
        if self.glove is not None:
            g = self._poll_glove()
            if g is not None and len(g):
                self.glove_positions = g[-1]
        self.on_chunk(None, chunk, 0.0, np.zeros(5), self.glove_positions)

    def _advance(self, trial: Trial) -> None:
        """``trial`` is done with (recorded or skipped): move on to the next one."""
        if self._again is not None:
            self._again = None
        else:
            self.next_index += 1

    def run(self) -> List[int]:
        """Run to the end of the cue protocol (or a stop, or a source fault); returns the trials recorded."""
        while self.next_index < len(self.trials) or self._again is not None:
            trial = self.trials[self._again if self._again is not None else self.next_index]
            pending, self._pending = self._pending, None
            action = pending or self.clinician(trial)
            if action not in ACTIONS:
                raise invalid_value("action", "allowed {}, got {!r}".format(
                    ", ".join(repr(a) for a in ACTIONS), action))
            if action == "stop":
                self.stopped = True
                self._event("stopped before {}".format(trial_label(trial)))
                break
            if action == "pause":
                if not self.paused:
                    self._event("paused before {}".format(trial_label(trial)))
                self.paused = True
                self._idle()
                if self.fault is not None:
                    self._event("the source failed while paused: {}".format(self.fault))
                    if self._wait_for_source():
                        continue
                    break
                continue  # the clinician is asked again
            if self.paused:
                self._event("resumed")
                self.paused = False
            if action == "skip":
                self._event("skipped {}".format(trial_label(trial)))
                self.skipped.append(trial.index)
                self._advance(trial)
                continue
            if action == "repeat" and self._last is not None:
                self._again = self._last
                trial = self.trials[self._last]
                self._event("repeating {}".format(trial_label(trial)))
            self.current = trial
            self.on_trial(trial)
            cut_by = self._record_trial(trial)
            self.current = None
            if cut_by is None:
                self.completed.append(trial.index)
                self._last = trial.index
                self._advance(trial)
                continue
            self._on_cut(trial, cut_by)
            if cut_by == "fault" and self._wait_for_source():
                self._event("{} is cued again".format(trial_label(trial)))
                continue
            if cut_by in ("stop", "fault"):
                break
        self.writer.close()
        return self.completed

    def _on_cut(self, trial: Trial, cut_by: str) -> None:
        where = "cut; what it recorded is kept"
        if cut_by == "stop":
            self.stopped = True
            self._event("stopped: {} {}".format(trial_label(trial), where))
        elif cut_by == "fault":
            self._event("the source failed: {} {}; {}".format(trial_label(trial), where, self.fault))
        elif cut_by == "pause":
            self.paused = True
            self._event("paused: {} {}; it is cued again on resume".format(trial_label(trial), where))
        elif cut_by == "repeat":
            self._event("repeating {} ({})".format(trial_label(trial), where))
        elif cut_by == "skip":
            self.skipped.append(trial.index)
            self._event("skipped {} ({})".format(trial_label(trial), where))
            self._advance(trial)


def _trial_of(cue) -> int:
    name = cue["name"].decode()
    return int(name.rsplit("@", 1)[1]) if "@" in name else -1


def cue_protocol_of(path: str) -> CueProtocol:
    """Return the cue protocol a session file was recorded with (stored in its metadata)."""
    return _stored_cue_protocol(read_recording(path), path)


def _stored_cue_protocol(rec, path: str) -> CueProtocol:
    text = rec.metadata.get("protocol")  # the session file's key since format 1
    if not text:
        raise InvalidValueError(
            "{}: not a calibration session (no cue protocol in its metadata); only sessions recorded by "
            "'neurohand calibrate' can be resumed".format(path))
    return CueProtocol.from_json(text)


def resume(cue_protocol: Optional[CueProtocol], source, path: str, **kw) -> CalibrationSession:
    """Continue a session whose process died or was stopped: keep every trial and go on after the last complete one.

    ``cue_protocol`` None takes the one stored in the file.

    The file (readable up to the writer's last flush) is copied into ``path + '.resume'``, which atomically replaces
    ``path`` only once written; recording then continues in it. Trials cut by the clinician or a source fault are
    kept (marked ``cut@INDEX``); a trial interrupted by a crash (no mark) is dropped and recorded again.
    """
    rec = read_recording(path)
    cue_protocol = cue_protocol or _stored_cue_protocol(rec, path)
    trials = cue_protocol.schedule()
    complete, keep = [], rec.n_samples
    names = [c["name"].decode() for c in rec.cues]
    for i, cue in enumerate(rec.cues):
        k = _trial_of(cue)
        if names[i].startswith(CUT + "@") or not 0 <= k < len(trials):
            continue
        if i + 1 < len(names) and names[i + 1] == "{}@{}".format(CUT, k):
            continue  # cut: kept as recorded, cued again
        tr = trials[k]
        if int(cue["sample"]) + int(round((tr.end_s - tr.start_s) * rec.fs_hz)) <= rec.n_samples:
            complete.append(k)
        else:
            keep = int(cue["sample"])  # drop the interrupted trial; it is recorded again
            break
    kept = rec.select_samples(np.arange(rec.n_samples) < keep) if keep < rec.n_samples else rec
    tmp = path + ".resume"
    if os.path.exists(tmp):
        os.remove(tmp)
    writer = SessionWriter(tmp, fs_hz=kept.fs_hz, n_channels=kept.n_channels, signal_kind=kept.signal_kind,
                           channel_names=kept.channel_names, units=kept.units, class_names=kept.class_names,
                           metadata=kept.metadata)
    writer.append_recording(kept)
    os.replace(tmp, path)
    writer.path = path
    session = CalibrationSession(cue_protocol, source, path, writer=writer,
                                 start_trial=(max(complete) + 1) if complete else 0, **kw)
    session.completed = list(complete)
    session._last = max(complete) if complete else None
    return session
