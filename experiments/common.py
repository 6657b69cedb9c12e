"""Shared helpers for the experiment scripts in this folder (``python experiments/<name>.py``).

Each script runs what a user would (import or simulate, train with the default settings, evaluate on the held-out
part) and prints a table, or with ``--json`` one JSON object on stdout. Nothing is tuned per data set beyond what
``neurohand train`` itself does; ``--set KEY=VALUE`` changes one training setting (a field of ``TrainConfig``) for
the ablations quoted in docs/results.md. Models and reports go to ``experiments/out/`` (ignored by git) unless
``--out`` says otherwise. Only ``neurohand.*`` is imported: this folder is the application layer, above calibration.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from neurohand.bench_latency import NINAPRO_FILE
from neurohand.decoder.errors import NeurohandError
from neurohand.decoder.validation import parse_index_ranges
from neurohand.training.config import FLAT_LAYOUT
from neurohand.training.evaluate import evaluate
from neurohand.training.train import TrainConfig, train, with_overrides

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "out")
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))

__all__ = ["TrainConfig", "evaluate", "train", "with_overrides", "DEFAULT_OUT", "DEFAULT_DATA", "parser",
           "train_config", "seeds_of", "floats_of", "need_data", "ninapro_file", "run_and_evaluate", "mean_of", "slim",
           "decoder_table", "main"]


def parser(prog: str, description: str, *, data: bool = False, seeds: Optional[str] = None,
           seeds_help: str = "seeds (default {})") -> argparse.ArgumentParser:
    """Build the options every script shares: ``--out``, ``--json``, ``--set`` (and ``--data``, ``--seeds``)."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    if data:
        p.add_argument("--data", default=DEFAULT_DATA,
                       help="folder with the data sets (default ../shared/data beside the repository)")
    p.add_argument("--out", default=None,
                   help="where models and reports go (default experiments/out/, ignored by git)")
    if seeds is not None:
        p.add_argument("--seeds", default=seeds, help=seeds_help.format(seeds))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change one training setting by its path in TrainConfig (e.g. adaptation.mode=off, "
                        "model.class_pool=false, batches.seq_ms=2000); repeatable")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return p


def _parse_value(key: str, text: str, default: Any) -> Any:
    t = text.strip()
    if isinstance(default, bool):
        if t.lower() in ("1", "true", "yes", "on"):
            return True
        if t.lower() in ("0", "false", "no", "off"):
            return False
        raise NeurohandError("--set {}: expected true or false, got {!r}".format(key, text))
    if default is None and t.lower() == "none":
        return None
    try:
        if isinstance(default, int) or default is None:
            return int(t)
        if isinstance(default, float):
            return float(t)
    except ValueError:
        raise NeurohandError("--set {}: expected a number, got {!r}".format(key, text)) from None
    return t


def train_config(args: argparse.Namespace, base: Optional[TrainConfig] = None) -> TrainConfig:
    """``TrainConfig()`` (or ``base``) with the script's ``--set KEY=VALUE`` overrides applied."""
    config = base or TrainConfig()
    changes: Dict[str, Any] = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        default = _setting(config, key) if sep else _MISSING
        if default is _MISSING:
            raise NeurohandError("--set {!r}: expected KEY=VALUE with KEY a setting path, one of {}".format(
                item, ", ".join(sorted(FLAT_LAYOUT.values()))))
        changes[key] = _parse_value(key, value, default)
    return with_overrides(config, changes) if changes else config


_MISSING = object()


def _setting(config: Any, path: str) -> Any:
    """Return the value at a dotted setting path (``model.class_pool``), or ``_MISSING``."""
    for name in path.split("."):
        if not dataclasses.is_dataclass(config) or name not in {f.name for f in dataclasses.fields(config)}:
            return _MISSING
        config = getattr(config, name)
    return config


def floats_of(text: str) -> List[float]:
    """Return a comma-separated list of numbers (``0,60,120``) as floats."""
    return [float(x) for x in text.split(",") if x.strip()]


def ninapro_file(data_dir: str) -> str:
    """Path of NinaPro DB1 S2 E1 under ``data_dir`` (as ``neurohand bench latency`` reads it), or a one-line error."""
    return need_data(os.path.join(data_dir, NINAPRO_FILE), "NinaPro DB1 recording")


def seeds_of(args: argparse.Namespace, name: str = "--seeds") -> List[int]:
    """Return the script's ``--seeds`` as a list of integers (``0-2``, ``0,2``)."""
    return list(parse_index_ranges(name, args.seeds))


def need_data(path: str, what: str) -> str:
    """``path`` if it exists, else a one-line error naming ``--data``."""
    if not os.path.exists(path):
        raise NeurohandError("No {} at {!r}; pass --data (see ../shared/README.md)".format(what, path))
    return path


def run_and_evaluate(train_recs, test_recs, model_dir: str, config: TrainConfig, report_dir: str,
                     title: str) -> Dict[str, Any]:
    """Train on ``train_recs`` with ``config``, evaluate every decoder on ``test_recs`` and write the report."""
    res = train(train_recs, model_dir, config=config, progress=False, log=lambda m: None)
    out = evaluate(model_dir, test_recs, report_dir=report_dir, title=title)
    out["train_wall_s"] = res.wall_s
    out["best_epoch"] = res.best_epoch
    return out


def mean_of(runs: Sequence[Dict[str, Any]], decoder: str, key: str) -> Optional[float]:
    """Mean of one metric of one decoder over runs, None where no run has it."""
    vals = [r["decoders"][decoder][key] for r in runs if decoder in r["decoders"]
            and r["decoders"][decoder].get(key) is not None]
    return float(np.mean(vals)) if vals else None


def slim(r: Dict[str, Any]) -> Dict[str, Any]:
    """Drop the confusion matrices from an evaluation, for JSON."""
    return {"decoders": {n: {k: v for k, v in d.items() if k != "confusion_matrix"} for n, d in r["decoders"].items()},
            "report": r.get("report"), "train_wall_s": r.get("train_wall_s"), "best_epoch": r.get("best_epoch")}


def decoder_table(title: str, decoders: Dict[str, Dict[str, Any]]) -> None:
    """Print one row per decoder: R2, Pearson r, RMSE, delay, class accuracy, macro F1."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    cols = ["r2_mean", "pearson_r_mean", "rmse_mean", "delay_ms", "accuracy", "macro_f1"]
    t.add_column("decoder")
    for c in cols:
        t.add_column(c, justify="right")
    for n, d in decoders.items():
        t.add_row(n, *["-" if d.get(c) is None else "{:.3f}".format(d[c]) for c in cols])
    Console().print(t)


def main(build: Callable[[], argparse.ArgumentParser], run: Callable[[argparse.Namespace], Dict[str, Any]],
         show: Callable[[Dict[str, Any]], None], argv: Optional[Sequence[str]] = None) -> int:
    """Parse options, run, print a table or JSON; an expected failure is one line on stderr and exit code 2."""
    p = build()
    args = p.parse_args(argv)
    if args.out is None:
        args.out = DEFAULT_OUT
    try:
        result = run(args)
    except (NeurohandError, OSError) as e:  # expected failures; anything else is a bug and shows its traceback
        print("{}: error: {}".format(p.prog, e), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        show(result)
    return 0
