"""Subcommands of the calibration package: ``calibrate`` and ``models``."""

import argparse
import json

from neurohand.decoder.vocabulary import SIGNAL_KINDS


def register(sub: "argparse._SubParsersAction") -> None:
    """Add this package's subcommands."""
    c = sub.add_parser("calibrate", help="record a cued calibration session, train, evaluate and accept a model",
                       description="The clinician's session: cue protocol with a terminal interface (p pause, "
                       "r repeat, s skip, q stop; keys act at once, mid-trial), crash-safe recording, signal-quality "
                       "verdict, training on all but the last repetition with the classic baselines, report, and "
                       "acceptance into the patient's model store. With --recalibrate, a short session adapts the "
                       "current model instead.")
    add_calibrate_arguments(c)
    c.add_argument("--discard-interrupted", nargs="?", const="all", default=None, metavar="SESSION.h5",
                   help="move the interrupted session SESSION.h5 (default: every one of this patient's) aside into "
                   "the sessions folder's discarded/ (kept, not deleted) instead of resuming it; records nothing")
    c.set_defaults(func=_calibrate)

    m = sub.add_parser("models", help="list a patient's model versions, or roll back to one")
    m.add_argument("--patient", required=True)
    m.add_argument("--store", required=True, help="the model store folder")
    m.add_argument("--rollback", default=None, metavar="VERSION", help="make this version current")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_models)


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``neurohand calibrate`` that shape a session (a printed resume command repeats them)."""
    parser.add_argument("--patient", required=True, help="patient identifier (letters, digits, _ - .)")
    parser.add_argument("--store", required=True, help="the model store folder (sessions and versions live here)")
    parser.add_argument("--source", default="sim",
                        help="sim (simulated patient), serial:PORT or lsl:NAME (default sim)")
    parser.add_argument("--labels", default="cue", help="cue (the cued trajectory) or glove:PORT (a data glove on the "
                        "mirroring hand; glove:sim with --source sim) (default cue)")
    parser.add_argument("--cue-protocol", default=None, help="cue protocol TOML (default: the shipped cue protocol)")
    parser.add_argument("--recalibrate", action="store_true", help="adapt the current model instead of training anew")
    parser.add_argument("--minutes", type=float, default=None,
                        help="record only as many repetitions as fit (recalibration: e.g. 2)")
    parser.add_argument("--resume", default=None, metavar="SESSION.h5", help="continue an interrupted session")
    parser.add_argument("--yes", action="store_true", help="answer every question with its default (continue unless "
                        "the quality verdict is bad, then accept); for scripted use")
    parser.add_argument("--no-tui", dest="tui", action="store_false", help="plain log lines instead of the live view")
    parser.add_argument("--fast", action="store_true", help="simulated patient only: do not pace in real time")
    parser.add_argument("--epochs", type=int, default=None, help="training (or recalibration) epochs")
    parser.add_argument("--hidden", type=int, default=None, help="recurrent state size (default: neurohand train's)")
    parser.add_argument("--layers", type=int, default=None, help="recurrent layers (default: neurohand train's)")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--signal-kind", default="nerve", choices=SIGNAL_KINDS,
                        help="what a serial or LSL source streams (default nerve)")
    parser.add_argument("--mains-hz", type=float, default=50.0, help="mains frequency for the quality check")
    parser.add_argument("--sim-seed", type=int, default=0, help="simulated patient")
    parser.add_argument("--sim-day", type=int, default=1, help="simulated day (2+ drift from day 1)")
    parser.add_argument("--sim-channels", type=int, default=16)
    parser.add_argument("--sim-fs-hz", type=float, default=10000.0)


def _models(args: argparse.Namespace) -> int:
    from .model_store import ModelStore

    store = ModelStore(args.store, args.patient)
    if args.rollback:
        store.rollback(args.rollback)
        print("patient {}: current model is now {}".format(args.patient, args.rollback))
    current = store.current()  # a broken pointer is an error (exit 2), not a listing without a current version
    rows = []
    for v in store.versions():
        meta = store.meta(v)
        rows.append({"version": v, "current": v == current, "accepted_at": meta["accepted_at"],
                     "metrics": meta.get("metrics", {}), "notes": meta.get("notes", "")})
    if args.json:
        print(json.dumps({"patient": args.patient, "versions": rows}))
        return 0
    if not rows:
        print("patient {}: no accepted models in {}".format(args.patient, args.store))
    for r in rows:
        m = r["metrics"]
        print("{} {} {}  {}{}".format("*" if r["current"] else " ", r["version"], r["accepted_at"][:19],
                                      ", ".join("{} {:.3f}".format(k, v) for k, v in m.items()
                                                if isinstance(v, float)), ("  " + r["notes"]) if r["notes"] else ""))
    return 0


def calibrate_options(args: argparse.Namespace):
    """Return the CalibrateOptions of parsed ``calibrate`` arguments."""
    from dataclasses import fields

    from .workflow import CalibrateOptions

    return CalibrateOptions(**{f.name: getattr(args, f.name) for f in fields(CalibrateOptions)
                               if hasattr(args, f.name)})


def _calibrate(args: argparse.Namespace) -> int:
    import sys

    from neurohand.training.data import TrainingDataError

    from .interrupted import discard_interrupted
    from .model_store import ModelStore
    from .workflow import CalibrationStopped, run_calibration

    if args.discard_interrupted is not None:
        moved = discard_interrupted(ModelStore(args.store, args.patient), args.discard_interrupted)
        for src, dst in moved:
            print("discarded {}: moved to {} (kept; nothing recorded is deleted)".format(src, dst))
        if not moved:
            print("patient {}: no interrupted session to discard".format(args.patient))
        return 0

    opts = calibrate_options(args)
    try:
        out = run_calibration(opts)
    except (CalibrationStopped, TrainingDataError) as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0 if out["version"] is not None else 4
