"""``neurohand calibrate``: a clinician's whole session, from the first cue to an accepted model on the patient's hand.

Steps: open the source (and the data glove), record the cue protocol with the terminal interface (crash-safe,
resumable), check signal quality and let the clinician continue or re-record, train on all but the last
repetition (or, with ``recalibrate``, adapt the current model), evaluate on the last repetition next to the classic
baselines and write the report, then ask the clinician to accept: accepting exports the bundle into the patient's
store as a new version and makes it current.

Every question goes through ``ask(question, choices, default)`` so that tests and ``--yes`` script the clinician.
"""

from __future__ import annotations

import datetime
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import invalid_value

from .cue_protocol import DEFAULT_CUE_PROTOCOL, CueProtocol, load_cue_protocol
from .devices import SessionDevices, StopSignals
from .interrupted import (
    MARKER,
    check_resume_matches,
    interrupted_sessions,
    marker_command,
    resume_command,
    write_marker,
)
from .model_store import ModelStore
from .options import CalibrateOptions
from .tables import metrics_table, quality_table

__all__ = ["CalibrateOptions", "CalibrationInterrupted", "CalibrationOutcome", "CalibrationStopped",
           "TrainingOutcome", "interrupted_sessions", "record_session", "run_calibration"]

Ask = Callable[[str, List[str], str], str]


@dataclass(frozen=True)
class TrainingOutcome:
    """What training (or recalibrating) and evaluating on the held-out repetition gave: what acceptance needs.

    ``evaluation`` is :func:`training.evaluate.evaluate`'s record (its ``"verdict"`` the accept decision);
    ``before`` the current version's scores on the same repetition when recalibrating (None otherwise); ``current``
    ``(version, its scores)`` when the patient has one; ``recalibration`` the guard's
    :class:`training.recalibrate.RecalibrationResult` (None when training anew).
    """

    model_dir: str
    report_dir: str
    evaluation: Dict[str, Any]
    before: Optional[Dict[str, Any]]
    current: Optional[Tuple[str, Dict[str, Any]]]
    test_recording: Any
    train_s: float
    recalibration: Any = None


@dataclass(frozen=True)
class CalibrationOutcome:
    """The end of a session: the recording, its quality verdict and the version accepted (None if rejected).

    Also the evaluation, the pre-recalibration scores and the held-out recording behind the decision.
    """

    session: str
    verdict: str
    version: Optional[str]
    evaluation: Dict[str, Any]
    before: Optional[Dict[str, Any]]
    test_recording: Any
    work_dir: str


class CalibrationStopped(Exception):
    """The clinician stopped the session; the message says what was kept and how to go on."""

    exit_code = 3


class CalibrationInterrupted(CalibrationStopped):
    """Ctrl-C or SIGTERM while recording; the message says what was kept and gives the resume command."""

    exit_code = 130


RECOVER_S = 10.0
"""How long a session waits for a source that faulted (a malformed frame, a stall, a short unplug) before stopping."""


# ---------------------------------------------------------------------- recording
def _report(failures: List[str], console) -> None:
    for m in failures:
        console.print("[yellow]{}[/yellow]".format(m), highlight=False)


def _cue_protocol_for(opts: CalibrateOptions) -> CueProtocol:
    """Return the cue protocol to record, checked before anything is recorded: enough repetitions to train and test.

    Raises
    ------
    InvalidValueError
        ``--minutes`` (or the protocol's ``repetitions``) gives fewer repetitions than the session needs; the message
        says what minimum works.
    """
    cue_protocol = load_cue_protocol(opts.cue_protocol or DEFAULT_CUE_PROTOCOL)
    need, why = (2, "one to adapt on, one to test") if opts.recalibrate else (
        3, "one to train on, one to validate, one to test")
    what = "a recalibration" if opts.recalibrate else "a calibration"
    if opts.minutes is not None:
        fit = cue_protocol.repetitions_fitting(opts.minutes)
        if fit < need:
            minimum = math.ceil(cue_protocol.minutes_for(need) * 10.0 - 1e-6) / 10.0
            while cue_protocol.repetitions_fitting(minimum) < need:
                minimum += 0.1
            raise invalid_value("--minutes", "{:g} min fits {} repetition(s) of the cue protocol ({:.2f} min each); "
                                "{} needs at least {} ({}): use --minutes {:.1f} or more".format(
                                    opts.minutes, fit, cue_protocol.minutes_for(2) - cue_protocol.minutes_for(1),
                                    what, need, why, minimum))
        cue_protocol = cue_protocol.with_repetitions(fit)
    elif opts.training.base is not None:  # a pre-trained base needs only the repetitions to train, validate and test on
        cue_protocol = cue_protocol.with_repetitions(min(need, cue_protocol.repetitions))
    if cue_protocol.repetitions < need:
        raise invalid_value("repetitions", "the cue protocol {} has {}; {} needs at least {} ({}): set repetitions = "
                            "{} in it".format(opts.cue_protocol or DEFAULT_CUE_PROTOCOL, cue_protocol.repetitions,
                                              what, need, why, need))
    return cue_protocol


def _kept(session, path: str) -> str:
    """Say what a stopped session keeps: ``'6 complete trial(s), 1 cut are kept in PATH'``."""
    return "{} complete trial(s){} are kept in {}".format(
        len(session.completed), ", {} cut".format(len(session.cut)) if session.cut else "", path)


def record_session(opts: CalibrateOptions, cue_protocol: Optional[CueProtocol], path: str, console, *,
                   controls=None) -> str:
    """Record (or with ``opts.resume``, continue) a session into ``path``; returns ``path``.

    ``cue_protocol`` is what to record; a resumed session uses the one stored in its file instead, and must be
    resumed with the source, labels and mode it was recorded with. A marker ``path + '.inprogress'`` holding the
    resume command exists while recording, so an interrupted session is found and offered the next time.

    Raises
    ------
    CalibrationStopped
        The clinician stopped, or the source stalled, faulted or disconnected; the message says what was kept and
        gives the complete command that resumes the session.
    """
    from rich.live import Live

    from neurohand.decoder.session_file import read_recording

    from .session import CalibrationSession, resume
    from .tui import KeyControls, SessionScreen, SessionView

    stored = None
    if opts.resume:
        stored = read_recording(opts.resume)
        check_resume_matches(opts, stored.metadata, path)
    devices = SessionDevices(opts)
    if stored is not None and (stored.fs_hz, stored.n_channels) != (devices.source.fs_hz, devices.source.n_channels):
        _report(devices.close(), console)
        raise InvalidValueError("{} was recorded at {:g} Hz with {} channels; the source gives {:g} Hz with {}: resume "
                                "with a source that delivers what it was recorded with".format(
                                    path, stored.fs_hz, stored.n_channels, devices.source.fs_hz,
                                    devices.source.n_channels))
    if opts.training.base is not None:  # before anything is recorded
        from neurohand.training.pretrain import check_source

        try:
            check_source(opts.training.base, name="the source {}".format(opts.devices.source),
                         n_channels=devices.source.n_channels, fs_hz=devices.source.fs_hz,
                         signal_kind=opts.devices.signal_kind)
        except Exception:
            _report(devices.close(), console)
            raise
    command = resume_command(replace(opts, resume=None), path)
    controls = controls or KeyControls(read_terminal=opts.tui)
    screen = SessionScreen(console)
    session: Optional[CalibrationSession] = None
    signals = StopSignals().install()
    during = getattr(controls, "during", None)

    def interrupt():
        signals.check()
        return during() if during is not None else None

    try:
        kw = dict(clinician=controls.clinician, on_trial=screen.on_trial, on_chunk=screen.on_chunk,
                  on_event=screen.on_event, glove=devices.glove, interrupt=interrupt,
                  recover_s=RECOVER_S, reopen=devices.reopen_source)
        write_marker(path, command)
        if opts.resume:
            session = resume(None, devices.source, path, **kw)
            console.print("resuming {}: {} trials kept, continuing at trial {}".format(
                path, len(session.completed), session.next_index + 1))
        else:
            session = CalibrationSession(
                cue_protocol, devices.source, path, patient_id=opts.patient, signal_kind=opts.devices.signal_kind,
                metadata={"mains_hz": "{:g}".format(opts.devices.mains_hz), "source_spec": opts.devices.source,
                          "labels_spec": opts.devices.labels,
                          "mode": "recalibration" if opts.recalibrate else "calibration"}, **kw)
        screen.session = session
        screen.view = view = SessionView(
            session.cue_protocol, devices.source.channel_names or ["channel {}".format(i) for i in range(
                devices.source.n_channels)], labels="glove" if devices.glove is not None else "cue",
            patient_id=opts.patient, units=getattr(devices.source, "units", None) or "signal units")
        if opts.tui:
            screen.live = live = Live(view.render(), console=console, refresh_per_second=8, transient=False)
            with live:
                session.run()
                view.done = len(session.completed)
                live.update(view.render())
        else:
            session.run()
        signals.check()  # one that came after the last poll
    except KeyboardInterrupt:
        if session is not None:
            try:
                session.writer.close()  # flushed: every sample read so far is kept
            except Exception as e:  # noqa: BLE001 - the resume command matters more than this report
                console.print("while closing {}: {}: {}".format(path, type(e).__name__, e))
        kept = "what was recorded is kept in {}".format(path) if session is None else _kept(session, path)
        raise CalibrationInterrupted("Interrupted; {}. Resume with: {}".format(kept, command)) from None
    finally:
        signals.restore()
        controls.close()
        _report(devices.close(), console)
    if screen.live is not None:
        for m in session.log:
            console.print("[dim]{}[/dim]".format(m))
    kept = _kept(session, path)
    if session.fault is not None:
        raise CalibrationStopped("The recording stopped: the source failed ({}). {}. Check the connection and the "
                                 "device, then resume with: {}".format(session.fault, kept, command))
    if session.stopped or getattr(controls, "stopped", False):
        raise CalibrationStopped("Stopped by the clinician; {}. Resume with: {}".format(kept, command))
    os.remove(path + MARKER)
    return path


# ---------------------------------------------------------------------- quality, training, acceptance
def _current_on(store: ModelStore, test_rec, console) -> Optional[Dict[str, Any]]:
    """Score the current version's recurrent decoder on ``test_rec`` (None without one, or when it cannot read it)."""
    from neurohand.training.data import TrainingDataError
    from neurohand.training.evaluate import evaluate

    if store.current() is None:
        return None
    try:
        return evaluate(store.model_path(), [test_rec])["decoders"]
    except (TrainingDataError, FileNotFoundError) as e:
        console.print("[yellow]the current version {} is not compared[/yellow]: {}".format(store.current(), e))
        return None


def train_and_evaluate(opts: CalibrateOptions, rec, work: str, store: ModelStore, console, *,
                       quality: Optional[Dict[str, Any]] = None) -> TrainingOutcome:
    """Train (or recalibrate) on all but the last repetition and evaluate on it; returns what acceptance needs.

    The evaluation sets the new model beside the baselines and the current version; ``evaluation["verdict"]`` is the
    accept decision.
    """
    from neurohand.training.config import TrainConfig, with_overrides
    from neurohand.training.data import split_last_repetitions
    from neurohand.training.evaluate import evaluate
    from neurohand.training.recalibrate import RecalibrationConfig, recalibrate
    from neurohand.training.train import train

    train_rec, test_rec, test_reps = split_last_repetitions(rec)
    model_dir, report_dir = os.path.join(work, "model"), os.path.join(work, "report")
    current = store.current()
    before = _current_on(store, test_rec, console)  # scored before training: what the patient has now
    t0 = time.perf_counter()
    recal = None
    if opts.recalibrate:
        console.rule("[bold]Recalibrating {} (model {}) on repetitions {}".format(
            opts.patient, current, sorted(set(int(r) for r in np.unique(train_rec.repetitions)))))
        t = opts.training
        cfg = RecalibrationConfig(seed=t.seed, **({"epochs": t.epochs} if t.epochs else {}))
        recal = recalibrate(store.model_path(), [train_rec], model_dir, config=cfg, progress=opts.tui,
                          log=console.print, source_files=[rec.metadata.get("session_path", "")])
        for line in recal.lines():
            console.print(line, markup=False, highlight=False)
    else:
        console.rule("[bold]Training the decoder on repetitions {} (the last, {}, is the test)".format(
            sorted(set(int(r) for r in np.unique(train_rec.repetitions))), test_reps))
        t = opts.training
        from neurohand.training.pretrain import adapt_config

        cfg = with_overrides(adapt_config() if t.base else TrainConfig(), {
            "schedule.epochs": t.epochs, "model.hidden": t.hidden, "model.layers": t.layers}, seed=t.seed)
        train([train_rec], model_dir, config=cfg, progress=opts.tui, log=console.print, init=t.base)
    wall = time.perf_counter() - t0
    previous = (current, next(iter(before.values()))) if before else None
    ev = evaluate(model_dir, [test_rec], report_dir=report_dir,
                  title="patient {} - {} - test repetition {}".format(
                      opts.patient, "recalibration" if opts.recalibrate else "calibration", test_reps[0]),
                  notes=["session: {}".format(rec.metadata.get("session_id", ""))], previous=previous,
                  quality=quality, patient_id=opts.patient)
    results = dict(ev["decoders"])
    if previous is not None:
        results = dict({"{} (current)".format(current): previous[1]}, **results)
    console.print(metrics_table(results, "held-out repetition {} ({:.0f} s to {})".format(
        test_reps[0], wall, "recalibrate" if opts.recalibrate else "train"), deployed=next(iter(ev["decoders"]))))
    console.print("report: {}".format(ev["report"]))
    return TrainingOutcome(model_dir=model_dir, report_dir=report_dir, evaluation=ev,
                           before=before if opts.recalibrate else None, current=previous, test_recording=test_rec,
                           train_s=wall, recalibration=recal)


def accept(opts: CalibrateOptions, store: ModelStore, outcome: TrainingOutcome, session_path: str, console) -> str:
    """Export the bundle and add it to the patient's store as the new current version."""
    from neurohand.training.export import export_bundle

    bundle_dir = os.path.join(os.path.dirname(outcome.model_dir), "bundle")
    export_bundle(outcome.model_dir, bundle_dir)
    ev = outcome.evaluation["decoders"]
    name = next(iter(ev))
    metrics = {"{}_{}".format(d, k): v for d, r in ev.items() for k, v in r.items()
               if k in ("r2_mean", "accuracy", "delay_ms") and isinstance(v, float)}
    metrics["test_repetition_r2_mean"] = ev[name].get("r2_mean")
    metrics["test_repetition_accuracy"] = ev[name].get("accuracy")
    if outcome.before is not None:
        metrics["before_recalibration_r2_mean"] = next(iter(outcome.before.values())).get("r2_mean")
    notes = "recalibrated from {} (kept: {})".format(store.current(), outcome.recalibration.kept) \
        if opts.recalibrate else "calibrated from scratch"
    verdict = outcome.evaluation["verdict"]
    if not verdict["ready"]:
        notes += "; accepted although not ready"  # the reasons: meta.json's "verdict"
    version = store.accept(bundle_dir, metrics={k: v for k, v in metrics.items() if v is not None},
                           report_dir=outcome.report_dir, notes=notes, sessions=[os.path.abspath(session_path)],
                           model_dir=outcome.model_dir, decoder=name, verdict=verdict["summary"])
    console.print("[green]accepted[/green]: patient {} model {} is now current ({})".format(
        opts.patient, version, store.bundle_path(version)))
    return version


def accept_default(verdict: Dict[str, Any], opts: CalibrateOptions, console, *, current: Optional[str] = None) -> str:
    """Return the answer offered to "Accept this model?" and print why.

    ``accept`` only when the verdict is ready (or with ``--accept-worse``); ``--yes`` takes this default, so it
    never accepts a worse model.
    """
    if verdict["ready"]:
        console.print("[green]{}[/green]".format(verdict["summary"]))
        return "accept"
    console.print("[bold red]{}[/bold red]".format(verdict["summary"]))
    if opts.accept_worse:
        console.print("[yellow]--accept-worse: offering to accept it anyway[/yellow]")
        return "accept"
    console.print("The default is to reject: {}.".format(
        "the patient keeps {}".format(current) if current else "the patient gets no model yet"))
    return "reject"


def run_calibration(opts: CalibrateOptions, *, console=None, ask: Optional[Ask] = None, controls=None
                    ) -> CalibrationOutcome:
    """Run the whole session; returns its :class:`CalibrationOutcome` (``version`` None if rejected).

    Raises
    ------
    CalibrationStopped
        The clinician stopped the recording, chose to stop at the quality check, or ``--yes`` met a bad verdict.
    PatientBusy
        Another session of the patient is running (its pid named).
    """
    from rich.console import Console

    console = console or Console()
    store = ModelStore(opts.store, opts.patient)
    with store.session_lock():  # one session per patient: a second one says which process holds it
        return _run_session(opts, store, console, ask, controls)


def _run_session(opts: CalibrateOptions, store: ModelStore, console, ask: Optional[Ask], controls
                 ) -> CalibrationOutcome:
    from neurohand.decoder.session_file import read_recording

    from .quality import check_recording, quality_summary

    if opts.recalibrate and store.current() is None:
        raise CalibrationStopped("Patient {!r} has no accepted model in {} to recalibrate; calibrate from scratch "
                                 "first (without --recalibrate)".format(opts.patient, opts.store))
    ask = ask or _prompt(opts, console)
    cue_protocol = None if opts.resume else _cue_protocol_for(opts)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    if not opts.resume:
        for left in interrupted_sessions(store):
            console.print("[yellow]an interrupted session:[/yellow] {}\n  resume it with: {}\n  or discard it (moved "
                          "aside into {}, kept) with: neurohand calibrate --patient {} --store {} "
                          "--discard-interrupted {}".format(
                              left, marker_command(left) or "neurohand calibrate ... --resume {}".format(left),
                              os.path.join(store.sessions_dir(), "discarded"), opts.patient, opts.store, left),
                          highlight=False, soft_wrap=True)
    attempt = 0
    while True:
        attempt += 1
        if opts.resume:
            path = opts.resume
        else:
            path = os.path.join(store.sessions_dir(), "{}{}{}.h5".format(
                stamp, "-recal" if opts.recalibrate else "", "-{}".format(attempt) if attempt > 1 else ""))
            console.rule("[bold]Recording {} ({} trials, {:.1f} min{})".format(
                os.path.basename(path), len(cue_protocol.schedule()), cue_protocol.duration_s / 60.0,
                ", recalibration" if opts.recalibrate else ""))
        record_session(opts, cue_protocol, path, console, controls=controls)
        rec = read_recording(path)
        rec.metadata["session_path"] = path
        report = check_recording(rec)
        console.print(quality_table(report))
        default = "continue" if report["verdict"] != "bad" else ("stop" if opts.yes else "re-record")
        choice = ask("Signal quality is '{}'. Continue to training, re-record, or stop?".format(report["verdict"]),
                     ["continue", "re-record", "stop"], default)
        if choice == "continue":
            break
        if choice == "stop":
            raise CalibrationStopped("Stopped at the quality check ({}); the session is kept in {}".format(
                report["summary"], path))
        opts = replace(opts, resume=None)
        cue_protocol = cue_protocol or _cue_protocol_for(opts)
    work = os.path.join(store.root, "work", os.path.splitext(os.path.basename(path))[0])
    outcome = train_and_evaluate(opts, rec, work, store, console,
                                 quality=quality_summary(report, units=getattr(rec, "units", "signal units")))
    default = accept_default(outcome.evaluation["verdict"], opts, console, current=store.current())
    choice = ask("Accept this model for patient {}?".format(opts.patient), ["accept", "reject"], default)
    version = None
    if choice == "accept":
        version = accept(opts, store, outcome, path, console)
    else:
        console.print("rejected: {}; session and report kept in {}".format(
            "the current model stays {}".format(store.current()) if store.current() else
            "the patient has no accepted model yet", work))
    return CalibrationOutcome(session=path, verdict=report["verdict"], version=version,
                              evaluation=outcome.evaluation, before=outcome.before,
                              test_recording=outcome.test_recording, work_dir=work)


def _prompt(opts: CalibrateOptions, console) -> Ask:
    def ask(question: str, choices: List[str], default: str) -> str:
        if opts.yes:
            console.print("{} -> {} (--yes)".format(question, default))
            return default
        from rich.prompt import Prompt

        try:
            return Prompt.ask(question, choices=choices, default=default, console=console)
        except EOFError:
            raise CalibrationStopped("No answer to {!r}: standard input is closed. Everything recorded is kept in "
                                     "the patient's sessions folder; run in a terminal, or pass --yes to take the "
                                     "defaults".format(question)) from None

    return ask
