"""Subcommands of the calibration package: ``calibrate`` and ``models``."""

import argparse
import json

__all__ = ["print_models_table", "register"]


def register(sub: "argparse._SubParsersAction") -> None:
    """Add this package's subcommands."""
    from .options import add_calibrate_arguments  # light (no training), but the device's CLI imports stay lazy

    c = sub.add_parser("calibrate", help="record a cued calibration session, train, evaluate and accept a model",
                       description="The clinician's session: cue protocol with a terminal interface (p pause, "
                       "r repeat, s skip, q stop; keys act at once, mid-trial), crash-safe recording, signal-quality "
                       "verdict, training on all but the last repetition with the classic baselines, report, and "
                       "acceptance into the patient's model store. With --recalibrate, a short session adapts the "
                       "current model instead.",
                       epilog="Exit codes: 0 a model was accepted; 4 none was (the clinician rejected it, or --yes "
                       "took the default 'reject' because the model was not ready, with the reason printed); 3 stopped "
                       "(the message says how to resume); 2 a usage or device error.")
    add_calibrate_arguments(c)
    c.add_argument("--discard-interrupted", nargs="?", const="all", default=None, metavar="SESSION.h5",
                   help="move the interrupted session SESSION.h5 (default: every one of this patient's) aside into "
                   "the sessions folder's discarded/ (kept, not deleted) instead of resuming it; records nothing")
    c.set_defaults(func=_calibrate)

    m = sub.add_parser("models", help="list a patient's model versions, or roll back to one")
    m.add_argument("--patient", required=True, help="patient id in the store")
    m.add_argument("--store", required=True, help="the model store folder")
    m.add_argument("--rollback", default=None, metavar="VERSION", help="make this version current")
    m.add_argument("--json", action="store_true", help="print the same listing as one JSON object")
    m.set_defaults(func=_models)


def _models(args: argparse.Namespace) -> int:
    import os

    from neurohand.decoder.validation import invalid_value

    from .model_store import ModelStore

    if not os.path.isdir(args.store):
        raise invalid_value("--store", "an existing model store folder, got {!r} (no such folder)".format(args.store))
    store = ModelStore(args.store, args.patient)
    if args.rollback:
        store.rollback(args.rollback)
        if not args.json:
            print("patient {}: current model is now {}".format(args.patient, args.rollback))
    rows = store.listing()  # a broken current pointer is an error (exit 2), not a listing without a current version
    if args.json:
        print(json.dumps({"patient": args.patient, "store": store.store_dir,
                          "current": store.current(), "versions": rows}))
        return 0
    if not rows:
        print("patient {}: no accepted models in {}".format(args.patient, args.store))
        return 0
    # bundle paths as typed (--store): they work from here and fit the table; --json gives them absolute
    print_models_table(args.patient, [dict(r, bundle_path=os.path.join(args.store, args.patient, "versions",
                                                                        r["version"], "bundle")) for r in rows])
    return 0


def print_models_table(patient: str, rows: list, console=None) -> None:
    """Print ``neurohand models`` as a table: one row per version, the current one marked."""
    import os

    from rich.console import Console
    from rich.table import Table

    def num(v, pct=False):
        return "-" if v is None else ("{:.0f} %".format(100 * v) if pct else "{:.2f}".format(v))

    t = Table(title="patient {}: model versions (* current; scores on each version's held-out repetition)".format(
        patient), title_justify="left")
    t.add_column("", width=1)
    t.add_column("version")
    t.add_column("accepted (UTC)")
    t.add_column("finger R²", justify="right")
    t.add_column("class accuracy", justify="right")
    t.add_column("best classic R²", justify="right")
    t.add_column("source session", overflow="fold")
    t.add_column("bundle", no_wrap=True)
    t.add_column("notes", overflow="fold")
    for r in rows:
        t.add_row("*" if r["current"] else "", "[bold]{}[/bold]".format(r["version"]) if r["current"] else r["version"],
                  r["accepted_at"][:16].replace("T", " "), num(r["finger_r2"]), num(r["class_accuracy"], pct=True),
                  num(r["best_classic"]), ", ".join(os.path.basename(s) for s in r["sessions"]) or "-",
                  r["bundle_path"], r["notes"] or "-")
    (console or Console(width=max(Console().width, 160))).print(t)


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

    from .options import calibrate_options

    opts = calibrate_options(args)
    try:
        out = run_calibration(opts)
    except CalibrationStopped as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    except TrainingDataError as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0 if out.version is not None else 4
