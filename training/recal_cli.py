"""``neurohand recalibrate``: adapt a trained model to recorded session files.

What ``calibrate --recalibrate`` does live, from files: writes a new model folder that ``evaluate``, ``export`` and
(once exported) ``run`` take.
"""

import argparse
import sys


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``recalibrate``."""
    from .cli import REPS_HELP

    r = sub.add_parser("recalibrate", help="adapt a trained model to new session files",
                       description="Adapt MODEL_DIR to new recordings of the same patient, as calibrate --recalibrate "
                       "does: recompute the feature normalisation on them and fine-tune the input layer, the "
                       "recurrent core and heads kept; refit the classic baselines on the same data. Writes a new "
                       "model folder (MODEL_DIR is not changed).")
    r.add_argument("model_dir", help="model folder written by train, recalibrate or calibrate")
    r.add_argument("sessions", nargs="+", help="session files (.h5) recorded with the same interface settings")
    r.add_argument("--out", required=True, help="model folder to write")
    r.add_argument("--reps", default=None, metavar="SPEC", help=REPS_HELP)
    r.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default 20)")
    r.add_argument("--train-heads", action="store_true", help="also adapt the output heads")
    r.add_argument("--seed", type=int, default=0)
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
    cfg = RecalibrationConfig(seed=args.seed, train_heads=args.train_heads,
                              **({} if args.epochs is None else {"epochs": args.epochs}))
    res = recalibrate(args.model_dir, recs, args.out, config=cfg, progress=not args.quiet,
                      log=lambda m: print(m, file=sys.stderr) if m else None, source_files=args.sessions)
    reps = sorted(set(int(r) for rec in recs if rec.repetitions is not None for r in np.unique(rec.repetitions)
                      if r > 0))
    vm = res.val_metrics
    print("wrote {} (recalibrated from {}, {} epochs on repetitions {}); on the recalibration data: {}".format(
        args.out, args.model_dir, res.epochs_run, format_ranges(reps) or "-",
        ", ".join("{} {:.3f}".format(k, vm[k]) for k in ("r2_mean", "accuracy") if vm.get(k) is not None) or "-"))
    return 0
