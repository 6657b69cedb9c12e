"""``neurohand recalibrate``: adapt a trained model to recorded session files.

What ``calibrate --recalibrate`` does live, from files: writes a new model folder that ``evaluate``, ``export`` and
(once exported) ``run`` take.
"""

import argparse
import sys

KEEP = ("better", "new")  # training.recalibrate.KEEP; this module is imported on every start, torch is not
STRATEGIES = ("renormalise", "refit_pool", "fine_tune")  # training.recalibrate.STRATEGIES (a test keeps them equal)


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``recalibrate``."""
    from .cli import REPS_HELP

    r = sub.add_parser("recalibrate", help="adapt a trained model to new session files",
                       description="Adapt MODEL_DIR to new recordings of the same patient, as calibrate --recalibrate "
                       "does: hold out the last repetition (or, with one, the end of every stretch), try the "
                       "strategies on the rest (recompute the feature statistics; fine-tune the input layer, "
                       "early-stopped), score them and the unchanged model on the held-out part side by side, and "
                       "keep the best (a tie keeps the unchanged model). Writes a new model folder (MODEL_DIR is "
                       "not changed).")
    r.add_argument("model_dir", help="model folder written by train, recalibrate or calibrate")
    r.add_argument("sessions", nargs="+", help="session files (.h5) recorded with the same interface settings")
    r.add_argument("--out", required=True, help="model folder to write")
    r.add_argument("--reps", default=None, metavar="SPEC", help=REPS_HELP)
    r.add_argument("--epochs", type=int, default=None, help="most fine-tuning epochs (default 20; early-stopped)")
    r.add_argument("--train-heads", action="store_true", help="fine-tuning also adapts the output heads")
    r.add_argument("--strategies", default=None, metavar="LIST",
                   help="comma-separated candidates tried besides the unchanged model, from {} (default "
                        "renormalise,fine_tune)".format(", ".join(STRATEGIES)))
    r.add_argument("--keep", default="better", choices=KEEP,
                   help="better (default): the best of the unchanged model and the candidates on the held-out "
                        "part; new: the best candidate even when the unchanged model scores better")
    r.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning (default 0)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_recalibrate)


def _recalibrate(args: argparse.Namespace) -> int:
    import os

    import numpy as np

    from neurohand.decoder.errors import InvalidValueError

    from .data import format_ranges, read_sessions
    from .recalibrate import RecalibrationConfig, recalibrate

    if os.path.abspath(args.out) == os.path.abspath(args.model_dir):
        raise InvalidValueError("Invalid value for '--out': the recalibrated model needs a folder of its own, not "
                                "the model's ({})".format(args.model_dir))
    recs = read_sessions(args.sessions, reps=args.reps)
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    if args.strategies is not None:
        extra["strategies"] = tuple(s.strip() for s in args.strategies.split(",") if s.strip())
    cfg = RecalibrationConfig(seed=args.seed, train_heads=args.train_heads, keep=args.keep, **extra)
    res = recalibrate(args.model_dir, recs, args.out, config=cfg, progress=not args.quiet,
                      log=lambda m: print(m, file=sys.stderr) if m else None, source_files=args.sessions)
    reps = sorted(set(int(r) for rec in recs if rec.repetitions is not None for r in np.unique(rec.repetitions)
                      if r > 0))
    for line in res.lines():
        print(line)
    print("wrote {} from repetitions {}: {} ({} {:.3f} on the held-out part, unchanged model {:.3f})".format(
        args.out, format_ranges(reps) or "-",
        "the unchanged model of {}".format(args.model_dir) if res.kept == "source" else
        "recalibrated by {}".format(res.kept.replace("_", "-")), res.metric_label, res.score_of(res.kept),
        res.score_of("source")))
    return 0
