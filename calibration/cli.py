"""Subcommands of the calibration package: ``calibrate``, ``models``, ``import``, ``inspect``."""

import argparse
import json
import os

from neurohand.decoder.vocabulary import SIGNAL_KINDS


def _int_list(text: str) -> list:
    from neurohand.decoder.validation import parse_index_ranges

    return list(parse_index_ranges("columns", text))


def register(sub: "argparse._SubParsersAction") -> None:
    """Add this package's subcommands."""
    p = sub.add_parser("import", help="import a real recording into a session file",
                       description="Convert NinaPro DB1, 3DC, CSV or NPZ recordings into neurohand session files.")
    isub = p.add_subparsers(dest="format", metavar="FORMAT")
    isub.required = True

    n = isub.add_parser("ninapro", help="NinaPro DB1 exercise .mat file")
    n.add_argument("file", help="e.g. S2_A1_E1.mat")
    n.add_argument("--out", required=True, help="session file to write (.h5)")
    n.add_argument("--reps", default=None, help="repetitions to keep, e.g. 1-7 or 8,9,10 (default all)")
    n.set_defaults(func=_import_ninapro)

    t = isub.add_parser("3dc", help="3DC participant's train/ or test/ folder")
    t.add_argument("folder")
    t.add_argument("--out", required=True)
    t.set_defaults(func=_import_3dc)

    for fmt in ("csv", "npz"):
        g = isub.add_parser(fmt, help="generic {} file (one row per sample)".format(fmt.upper()))
        g.add_argument("file")
        g.add_argument("--out", required=True)
        g.add_argument("--fs-hz", type=float, required=True, help="sample rate (required)")
        g.add_argument("--kind", default="emg", choices=SIGNAL_KINDS, help="signal kind")
        g.add_argument("--units", default="", help="unit of the samples")
        g.add_argument("--class-names", default=None, help="comma-separated class names, rest first")
        if fmt == "csv":
            g.add_argument("--signal-columns", type=_int_list, required=True, help="0-based, e.g. 0-9")
            g.add_argument("--label-column", type=int, default=None)
            g.add_argument("--repetition-column", type=int, default=None)
            g.add_argument("--position-columns", type=_int_list, default=None, help="5 columns in 0..1")
            g.add_argument("--delimiter", default=",")
            g.add_argument("--skip-rows", type=int, default=0)
            g.set_defaults(func=_import_csv)
        else:
            g.add_argument("--signals-key", default="signals")
            g.add_argument("--labels-key", default=None)
            g.add_argument("--positions-key", default=None)
            g.add_argument("--repetitions-key", default=None)
            g.set_defaults(func=_import_npz)

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

    i = sub.add_parser("inspect", help="print the summary of a session file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=_inspect)


def _write(rec, out: str) -> int:
    from neurohand.decoder.session_file import write_recording

    d = os.path.dirname(os.path.abspath(out))
    os.makedirs(d, exist_ok=True)
    write_recording(rec, out)
    s = rec.summary()
    print("wrote {}: {} samples x {} channels at {:g} Hz ({}), {} segments, positions: {}, classes: {}".format(
        out, s["samples"], s["channels"], s["fs_hz"], s["signal_kind"], s["segments"],
        "yes" if rec.has_positions else "no", len(rec.class_names)))
    return 0


def _import_ninapro(args: argparse.Namespace) -> int:
    from neurohand.decoder.validation import parse_index_ranges

    from .importers import import_ninapro

    reps = parse_index_ranges("--reps", args.reps) if args.reps else None
    return _write(import_ninapro(args.file, reps=reps), args.out)


def _import_3dc(args: argparse.Namespace) -> int:
    from .importers import import_3dc

    return _write(import_3dc(args.folder), args.out)


def _class_names(text):
    return [c.strip() for c in text.split(",")] if text else None


def _import_csv(args: argparse.Namespace) -> int:
    from .importers import import_csv

    rec = import_csv(args.file, fs_hz=args.fs_hz, signal_columns=args.signal_columns, signal_kind=args.kind,
                     label_column=args.label_column, position_columns=args.position_columns,
                     repetition_column=args.repetition_column, delimiter=args.delimiter,
                     skip_rows=args.skip_rows, units=args.units, class_names=_class_names(args.class_names))
    return _write(rec, args.out)


def _import_npz(args: argparse.Namespace) -> int:
    from .importers import import_npz

    rec = import_npz(args.file, fs_hz=args.fs_hz, signals_key=args.signals_key, signal_kind=args.kind,
                     labels_key=args.labels_key, positions_key=args.positions_key,
                     repetitions_key=args.repetitions_key, units=args.units,
                     class_names=_class_names(args.class_names))
    return _write(rec, args.out)


def _inspect(args: argparse.Namespace) -> int:
    from neurohand.decoder.session_file import read_recording

    s = read_recording(args.file).summary()
    if args.json:
        print(json.dumps(s))
    else:
        for k, v in s.items():
            print("{:>12}: {}".format(k, v))
    return 0


def _models(args: argparse.Namespace) -> int:
    from .model_store import ModelStore

    store = ModelStore(args.store, args.patient)
    if args.rollback:
        store.rollback(args.rollback)
        print("patient {}: current model is now {}".format(args.patient, args.rollback))
    rows = []
    for v in store.versions():
        meta = store.meta(v)
        rows.append({"version": v, "current": v == store.current(), "accepted_at": meta["accepted_at"],
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
