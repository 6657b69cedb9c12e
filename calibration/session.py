"""The calibration session as a headless state machine: cues, synchronized recording, clinician actions, resume.

The session walks the cue protocol's trials; for each it records the source's samples for the trial's duration and
appends them (crash-safe, :class:`~neurohand.decoder.session_file.SessionWriter`) with the finger positions (the
cue's target trajectory, or a data glove's measurements stored at their arrival), the movement as label, the
repetition, and a cue event. Consecutive trials form one continuous segment; a pause (which keeps reading and
discarding the source, so no backlog builds) or a resume starts a new one. A clinician can ``pause``, ``repeat`` the
last trial or ``skip`` the next one between trials. A session killed at any point is resumed with :func:`resume`:
the file is recovered (everything flushed survives) and the session continues after the last trial whose cue was
recorded completely. The terminal interface drives this object; tests drive it with a scripted source and clinician.
"""

from __future__ import annotations

import os
from typing import Callable, List, Optional

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.session_file import SessionWriter, read_recording
from neurohand.decoder.validation import invalid_value

from .cue_protocol import CueProtocol, Trial

ACTIONS = ("continue", "pause", "repeat", "skip", "stop")


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
    on_trial : callable, optional
        Called as each trial starts (the terminal interface shows its cue).
    """

    def __init__(self, cue_protocol: CueProtocol, source, path: str, *, patient_id: str = "",
                 signal_kind: str = "nerve", clinician: Optional[Callable[[Trial], str]] = None, on_trial=None,
                 on_chunk=None, glove=None,
                 start_trial: int = 0, writer: Optional[SessionWriter] = None, metadata: Optional[dict] = None
                 ) -> None:
        self.cue_protocol = cue_protocol
        self.source = source
        self.path = path
        self.clinician = clinician or (lambda trial: "continue")
        self.on_trial = on_trial or (lambda trial: None)
        self.on_chunk = on_chunk or (lambda trial, chunk, t_s, target, glove_pos: None)
        self.glove = glove
        self.glove_positions = np.zeros(5)
        self.paused = False
        self._continuous = False
        self.trials = cue_protocol.schedule()
        self.next_index = start_trial
        self.completed: List[int] = []
        self.log: List[str] = []
        self.writer = writer or SessionWriter(
            path, fs_hz=source.fs_hz, n_channels=source.n_channels, signal_kind=signal_kind,
            channel_names=getattr(source, "channel_names", None), units=getattr(source, "units", ""),
            class_names=cue_protocol.class_names, metadata=dict(
                {"patient_id": patient_id, "source": "calibration", "session_id": os.path.basename(path),
                 "labels": "glove" if glove is not None else "cue", "protocol": cue_protocol.to_json()},
                **(metadata or {})))
        self._carry = np.zeros((0, source.n_channels), np.float32)

    def _record_trial(self, trial: Trial) -> None:
        fs = self.source.fs_hz
        n_total = int(round((trial.end_s - trial.start_s) * fs))
        t_rel = np.arange(n_total) / fs + trial.start_s
        pos, lab, _ = self.cue_protocol.trajectory(t_rel)
        start_sample = self.writer.n_samples
        if not self._continuous:  # samples were skipped (first trial, after a pause or a resume): a new segment
            self.writer.mark_segment()
            self._continuous = True
        self.writer.add_cue(start_sample, "{}@{}".format(trial.movement, trial.index), label=trial.label,
                           duration_samples=int(round((2 * trial.ramp_s + trial.hold_s) * fs)))
        if hasattr(self.source, "cue"):  # a simulated patient sees the cue as a person would
            self.source.cue(self.cue_protocol.target_of(trial.movement), ramp_s=trial.ramp_s, hold_s=trial.hold_s)
        if self.glove is not None:
            self.glove.poll()  # whatever the glove sent before the cue belongs to no trial
        step = max(1, int(round(fs / 100.0)))  # cue positions at a glove's rate (100 Hz)
        last_index = start_sample - 1
        got = 0
        while got < n_total:
            if len(self._carry):
                chunk, self._carry = self._carry, np.zeros((0, self.source.n_channels), np.float32)
            else:
                chunk, _ = self.source.read()
            take = chunk[: n_total - got]
            self._carry = np.asarray(chunk[n_total - got:], np.float32)
            k = len(take)
            self.writer.append(take, labels=lab[got:got + k], repetitions=np.full(k, trial.repetition))
            if self.glove is not None:
                g = self.glove.poll()
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
        self.writer.flush()

    def _idle(self) -> None:
        """While paused, keep reading (and discarding) the source: live levels stay on screen, no backlog builds."""
        chunk, _ = self.source.read()
        self._continuous = False
        if self.glove is not None:
            g = self.glove.poll()
            if len(g):
                self.glove_positions = g[-1]
        self.on_chunk(None, chunk, 0.0, np.zeros(5), self.glove_positions)

    def run(self) -> List[int]:
        """Run to the end of the cue protocol (or ``stop``); returns the indices of the trials recorded."""
        last: Optional[int] = None
        while self.next_index < len(self.trials):
            trial = self.trials[self.next_index]
            action = self.clinician(trial)
            if action not in ACTIONS:
                raise invalid_value("action", "allowed {}, got {!r}".format(
                    ", ".join(repr(a) for a in ACTIONS), action))
            if action == "stop":
                self.log.append("stopped before trial {}".format(trial.index))
                break
            if action == "pause":
                if not self.paused:
                    self.log.append("paused before trial {}".format(trial.index))
                self.paused = True
                self._idle()
                continue  # the clinician is asked again
            if self.paused:
                self.log.append("resumed")
                self.paused = False
            if action == "skip":
                self.log.append("skipped trial {} ({})".format(trial.index, trial.movement))
                self.next_index += 1
                continue
            if action == "repeat" and last is not None:
                trial = self.trials[last]
                self.log.append("repeated trial {} ({})".format(trial.index, trial.movement))
                self.on_trial(trial)
                self._record_trial(trial)
                self.completed.append(trial.index)
                continue
            self.on_trial(trial)
            self._record_trial(trial)
            self.completed.append(trial.index)
            last = self.next_index
            self.next_index += 1
        self.writer.close()
        return self.completed


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
    """Continue a session whose process died: keep every complete trial and go on after the last one.

    ``cue_protocol`` None takes the one stored in the file.

    The file (readable up to the writer's last flush) is copied, without the interrupted trial, into
    ``path + '.resume'``, which atomically replaces ``path`` only once written; recording then continues in it.
    """
    rec = read_recording(path)
    cue_protocol = cue_protocol or _stored_cue_protocol(rec, path)
    trials = cue_protocol.schedule()
    complete, keep = [], rec.n_samples
    for cue in rec.cues:
        k = _trial_of(cue)
        if not 0 <= k < len(trials):
            continue
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
    return session
