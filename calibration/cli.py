"""Subcommands of the calibration package: ``calibrate`` and ``models``."""

import argparse
import json

from neurohand.decoder.vocabulary import SIGNAL_KINDS


def register(sub: "argparse._SubParsersAction") -> None:
    """Add this package's subcommands."""
    c = sub.add_parser("calibrate", help="record a cued calibration session, train, evaluate and accept a model",
                       description="The clinician's session: cue protocol with a terminal interface (p pause, "
                       "r repeat, s skip, q stop), crash-safe recording, signal-quality verdict, training on all "
                       "but the last repetition with the classic baselines, report, and acceptance into the patient's "
                       "model store. With --recalibrate, a short session adapts the current model instead.")
    c.add_argument("--patient", required=True, help="patient identifier (letters, digits, _ - .)")
    c.add_argument("--store", required=True, help="the model store folder (sessions and versions live here)")
    c.add_argument("--source", default="sim", help="sim (simulated patient), serial:PORT or lsl:NAME (default sim)")
    c.add_argument("--labels", default="cue", help="cue (the cued trajectory) or glove:PORT (a data glove on the "
                   "mirroring hand; glove:sim with --source sim) (default cue)")
    c.add_argument("--cue-protocol", default=None, help="cue protocol TOML (default: the shipped cue protocol)")
    c.add_argument("--recalibrate", action="store_true", help="adapt the current model instead of training anew")
    c.add_argument("--minutes", type=float, default=None,
                   help="record only as many repetitions as fit (recalibration: e.g. 2)")
    c.add_argument("--resume", default=None, metavar="SESSION.h5", help="continue an interrupted session")
    c.add_argument("--yes", action="store_true", help="answer every question with its default (continue unless "
                   "the quality verdict is bad, then accept); for scripted use")
    c.add_argument("--no-tui", dest="tui", action="store_false", help="plain log lines instead of the live view")
    c.add_argument("--fast", action="store_true", help="simulated patient only: do not pace in real time")
    c.add_argument("--epochs", type=int, default=None, help="training (or recalibration) epochs")
    c.add_argument("--hidden", type=int, default=None, help="recurrent state size (default: neurohand train's)")
    c.add_argument("--layers", type=int, default=None, help="recurrent layers (default: neurohand train's)")
    c.add_argument("--seed", type=int, default=0, help="training seed")
    c.add_argument("--signal-kind", default="nerve", choices=SIGNAL_KINDS,
                   help="what a serial or LSL source streams (default nerve)")
    c.add_argument("--mains-hz", type=float, default=50.0, help="mains frequency for the quality check")
    c.add_argument("--sim-seed", type=int, default=0, help="simulated patient")
    c.add_argument("--sim-day", type=int, default=1, help="simulated day (2+ drift from day 1)")
    c.add_argument("--sim-channels", type=int, default=16)
    c.add_argument("--sim-fs-hz", type=float, default=10000.0)
    c.set_defaults(func=_calibrate)

    m = sub.add_parser("models", help="list a patient's model versions, or roll back to one")
    m.add_argument("--patient", required=True)
    m.add_argument("--store", required=True, help="the model store folder")
    m.add_argument("--rollback", default=None, metavar="VERSION", help="make this version current")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=_models)


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


def _calibrate(args: argparse.Namespace) -> int:
    import sys

    from neurohand.training.data import TrainingDataError

    from .workflow import CalibrateOptions, CalibrationStopped, run_calibration

    keys = ("patient", "store", "source", "labels", "cue_protocol", "recalibrate", "minutes", "resume", "yes", "tui",
            "fast", "epochs", "hidden", "layers", "seed", "signal_kind", "mains_hz", "sim_seed", "sim_day",
            "sim_channels", "sim_fs_hz")
    opts = CalibrateOptions(**{k: getattr(args, k) for k in keys})
    try:
        out = run_calibration(opts)
    except (CalibrationStopped, TrainingDataError) as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0 if out["version"] is not None else 4
