"""Subcommands of the training package: ``neurohand train`` and ``neurohand evaluate``."""

import argparse
import json
import sys

from neurohand.decoder.feature_config import FEATURES
from neurohand.decoder.latency_defaults import DEFAULT_LEAD_MS

REPS_HELP = ("take only these repetitions of each session, e.g. 1 or 1-3,5 (default all; samples outside any "
             "repetition are left out)")


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``train``, ``pretrain`` and ``evaluate``."""
    p = sub.add_parser("train", help="train the recurrent decoder and the classic baselines",
                       description="Train a recurrent decoder on session files (validation: the last "
                       "repetitions of the training data) and fit Wiener, Kalman and LDA on the same frames. "
                       "Runs single-process, or under torchrun for DistributedDataParallel.")
    p.add_argument("sessions", nargs="+", help="training session files (.h5)")
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--init", default=None, metavar="BASE",
                   help="start from a pre-trained base (neurohand pretrain): its architecture and features, every "
                        "weight fine-tuned on these sessions (peak learning rate 1e-3, at most 10 epochs, unless "
                        "--epochs says otherwise); a short recording of the person is enough")
    _training_options(p)
    p.add_argument("--no-baselines", action="store_true", help="skip the classic baselines")
    p.set_defaults(func=_train)

    b = sub.add_parser("pretrain", help="pre-train one decoder on many people's (or days') session files",
                       description="Train one recurrent decoder on the session files of many people (or many days "
                       "of one person), each file's features z-scored by its own statistics so that gains and "
                       "electrode positions do not matter; adapt it to a person with 'neurohand train FILE --init "
                       "BASE'. The base records the people, signal kind, channels, rate and features it was trained "
                       "on, and refuses a recording it cannot serve. Runs single-process, or under torchrun for "
                       "DistributedDataParallel (the same command on a GPU cluster).")
    b.add_argument("sessions", nargs="+", help="session files (.h5) of the people to pre-train on")
    b.add_argument("--out", required=True, help="folder of the base to write")
    _training_options(b)
    b.set_defaults(func=_pretrain, init=None, no_baselines=True)

    e = sub.add_parser("evaluate", help="evaluate a model folder and its baselines on test sessions")
    e.add_argument("model_dir", help="model folder from 'neurohand train'")
    e.add_argument("sessions", nargs="+", help="test session files (.h5)")
    e.add_argument("--report", default=None, help="folder for report.html and plots")
    e.add_argument("--reps", default=None, metavar="SPEC", help=REPS_HELP)
    e.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    e.set_defaults(func=_evaluate)


def _training_options(p: argparse.ArgumentParser) -> None:
    """Add the options ``train`` and ``pretrain`` share."""
    p.add_argument("--model", choices=["gru", "lstm"], default=None, help="recurrent cell (default gru)")
    p.add_argument("--hidden", type=int, default=None, help="state size (default 128)")
    p.add_argument("--layers", type=int, default=None, help="recurrent layers (default 2)")
    p.add_argument("--epochs", type=int, default=None, help="maximum epochs (default 30)")
    p.add_argument("--seq-len", type=int, default=None,
                   help="frames per training window (default: 4 s, 400 frames at 10 ms hops, 200 at 20 ms)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="where to train (default auto: a CUDA GPU when there is one)")
    p.add_argument("--seed", type=int, default=None, help="seed of the weights' initialisation and the batches")
    p.add_argument("--no-lda-front-end", action="store_true",
                   help="class-only sessions: feed the recurrent core all features, not the LDA projection")
    p.add_argument("--no-class-pool", action="store_true",
                   help="class-only sessions: keep the recurrent class head alone, not pooled with LDA's posterior")
    p.add_argument("--adapt", choices=["auto", "on", "off"], default=None,
                   help="running feature re-normalisation (decoder.adaptation); auto (default): on when the session "
                        "interleaves its movements")
    p.add_argument("--adapt-prior-s", type=float, default=None,
                   help="weight of the training statistics in seconds of frames (default 30; at most the horizon)")
    p.add_argument("--adapt-horizon-s", type=float, default=None,
                   help="time constant of the running feature statistics in seconds (default 60)")
    p.add_argument("--window-ms", type=float, default=None,
                   help="feature window in ms, a whole number of hops (default: the signal kind's, 200 for EMG)")
    p.add_argument("--hop-ms", type=float, default=None,
                   help="time between feature frames in ms, a whole number of samples (default: the signal kind's, "
                        "20 for EMG, rounded to whole samples at the session's rate)")
    p.add_argument("--features", default=None,
                   help="comma-separated feature kinds, from: {} (default: the signal kind's)".format(
                       ", ".join(FEATURES)))
    p.add_argument("--lead-ms", type=float, default=None,
                   help="train against the positions and classes this long after each frame (0-1000 ms; default: "
                        "the signal kind's, {}): the network outputs where the hand is going, cancelling part of "
                        "the decoding delay".format(", ".join("{} {:g}".format(k, v)
                                                              for k, v in DEFAULT_LEAD_MS.items())))
    p.add_argument("--reps", default=None, metavar="SPEC", help=REPS_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config_from_args(args: argparse.Namespace):
    """Return the :class:`training.config.TrainConfig` that ``neurohand train``'s options ``args`` ask for."""
    from .config import TrainConfig, with_overrides
    from .pretrain import adapt_config

    # adapting a base starts from the schedule chosen for it; every option given here still wins
    return with_overrides(adapt_config() if getattr(args, "init", None) else TrainConfig(), {
        "model.cell": args.model, "model.hidden": args.hidden, "model.layers": args.layers,
        "model.lda_front_end": False if args.no_lda_front_end else None,
        "model.class_pool": False if args.no_class_pool else None,
        "schedule.epochs": args.epochs, "batches.seq_len": args.seq_len, "adaptation.mode": args.adapt,
        "adaptation.config.prior_s": args.adapt_prior_s, "adaptation.config.horizon_s": args.adapt_horizon_s,
        "features.window_ms": args.window_ms, "features.hop_ms": args.hop_ms,
        "loss.target_lead_ms": args.lead_ms,
        "features.names": None if args.features is None else tuple(
            f.strip() for f in args.features.split(",") if f.strip()),
    }, device=args.device, seed=args.seed)


def _train(args: argparse.Namespace) -> int:
    from .data import read_sessions
    from .train import train

    if args.init is not None:
        fixed = [flag for flag, v in (("--model", args.model), ("--hidden", args.hidden), ("--layers", args.layers),
                                      ("--window-ms", args.window_ms), ("--hop-ms", args.hop_ms),
                                      ("--features", args.features)) if v is not None]
        if fixed:
            from neurohand.decoder.errors import InvalidValueError

            raise InvalidValueError("Invalid value for '{}': the base given by --init sets the architecture and the "
                                    "features; leave {} out".format(fixed[0], ", ".join(fixed)))
    cfg = train_config_from_args(args)
    recs = read_sessions(args.sessions, reps=args.reps, min_repetitions=1 if args.init else 2,
                         purpose="training (its last repetition is the validation split)")
    res = train(recs, args.out, config=cfg, progress=not args.quiet, fit_classic=not args.no_baselines,
                log=lambda m: print(m, file=sys.stderr) if m else None, source_files=args.sessions,
                init=args.init)
    print(_wrote(args.out, res, what="", over=""))
    _print_scores(res.val_scores)
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    from .data import read_sessions
    from .pretrain import describe, load_base
    from .train import train

    cfg = train_config_from_args(args)
    recs = read_sessions(args.sessions, reps=args.reps, min_repetitions=2,
                         purpose="pre-training (each file's last repetition is the validation split)")
    res = train(recs, args.out, config=cfg, progress=not args.quiet, fit_classic=False,
                log=lambda m: print(m, file=sys.stderr) if m else None, source_files=args.sessions,
                pretraining=True)
    print(_wrote(args.out, res, what="base ", over=" over every file"))
    for line in describe(load_base(args.out)):
        print(line)
    return 0


def _wrote(out: str, res, *, what: str, over: str) -> str:
    """Return the line ``train`` and ``pretrain`` end with: the folder, the best epoch, the validation scores."""
    vm = res.val_metrics
    return "wrote {}{} (best epoch {} of {}{}); validation{}: {}".format(
        what, out, res.best_epoch, res.epochs_run, ", interrupted" if res.interrupted else "", over,
        ", ".join("{} {:.3f}".format(k, vm[k]) for k in ("r2_mean", "accuracy") if vm.get(k) is not None))


def _print_scores(scores) -> None:
    from rich.console import Console

    from .summary import scores_table

    if scores:  # a plain table when redirected (rich drops the colours), 100 columns when not a terminal
        console = Console()
        if not console.is_terminal:
            console = Console(width=100)
        console.print(scores_table(scores, title="validation repetitions, every decoder (* best)"))


def _evaluate(args: argparse.Namespace) -> int:
    from .data import read_sessions
    from .evaluate import evaluate, results_table

    recs = read_sessions(args.sessions, reps=args.reps)
    out = evaluate(args.model_dir, recs, report_dir=args.report,
                   title="neurohand evaluation: {} on {}{}".format(
                       args.model_dir, ", ".join(args.sessions),
                       "" if args.reps is None else ", repetitions {}".format(args.reps)))
    if args.json:
        slim = {"decoders": {n: {k: v for k, v in r.items() if k != "confusion_matrix"}
                             for n, r in out["decoders"].items()},
                "test_frames": out["test_frames"], "report": out["report"], "verdict": out["verdict"]}
        print(json.dumps(slim))
        return 0
    from rich.console import Console

    Console().print(results_table(out["decoders"], "test frames: {}".format(out["test_frames"])))
    print(out["verdict"]["summary"])
    if out["report"]:
        print("report: {}".format(out["report"]))
    return 0
