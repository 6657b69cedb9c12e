"""Choosing how a pre-trained base adapts to a new person, on validation data only.

``python experiments/adapt_settings.py --base BASE [--data ../shared/data] [--data-set 3dc|ninapro]
[--people 2,3] [--amount 1] [--json]``.

The base must not have seen ``--people``. Each candidate setting adapts the base (``train --init``) on the person's
first ``--amount`` cycles of ``train/`` (3DC) or repetitions (NinaPro), and is scored on the person's remaining
cycles of ``train/`` (3DC) or repetitions up to 7 (NinaPro): the test parts (3DC ``test/``, NinaPro repetitions
8-10) stay out of view. The candidates are the learning rate, the number of epochs and whether the refit runs.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict, List, Sequence

import numpy as np

from neurohand.decoder.validation import check_option
from neurohand.training.data import select_repetitions

from common import TrainConfig, evaluate, main, parser, train, train_config, with_overrides
from pretrain_lopo import METRIC, PEOPLE, person_data

SHORT = {"schedule.epochs": 10, "schedule.min_epochs": 2, "schedule.patience": 3}
CANDIDATES = {  # changes from TrainConfig(); --init trains on exactly the config it is given
    "default schedule": {},
    "lr 1e-3, 10 epochs": dict(SHORT, **{"schedule.lr": 1e-3}),
    "lr 3e-4, 10 epochs": dict(SHORT, **{"schedule.lr": 3e-4}),
    "lr 1e-3, 10 epochs, no refit": dict(SHORT, **{"schedule.lr": 1e-3, "refit.enabled": False}),
}


def run(data_dir: str, out_dir: str, *, base: str, data_set: str, people: Sequence[int], amount: int,
        config: TrainConfig) -> Dict[str, Any]:
    """Adapt ``base`` with each candidate on every person's first ``amount`` repetitions; score on the rest."""
    metric = METRIC[data_set][0]
    last = 4 if data_set == "3dc" else 7
    rows: List[Dict[str, Any]] = []
    for p in people:
        rec = person_data(data_dir, data_set, p)[0]
        first = select_repetitions(rec, range(1, amount + 1))
        rest = select_repetitions(rec, range(amount + 1, last + 1))
        for name, changes in CANDIDATES.items():
            d = os.path.join(out_dir, "adapt_settings", data_set, "p{}".format(p), name.replace(" ", "_")
                             .replace(",", ""))
            t0 = time.perf_counter()
            train([first], d, config=with_overrides(config, changes), progress=False, log=lambda m: None, init=base)
            wall = time.perf_counter() - t0
            ev = evaluate(d, [rest])["decoders"]
            rows.append({"person": p, "candidate": name, "validation": next(iter(ev.values()))[metric],
                         "adapt_s": wall})
    means = {name: {"validation": float(np.mean([r["validation"] for r in rows if r["candidate"] == name])),
                    "adapt_s": float(np.median([r["adapt_s"] for r in rows if r["candidate"] == name]))}
             for name in CANDIDATES}
    return {"experiment": "adapt_settings", "set": data_set, "metric": metric, "base": os.path.abspath(base),
            "people": list(people), "amount": amount, "candidates": CANDIDATES, "rows": rows, "means": means}


def show(result: Dict[str, Any]) -> None:
    """One row per candidate: the mean validation score and the median adaptation time."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="{}: base adapted on {} repetition(s) of people {}, {} on their other repetitions".format(
        result["set"], result["amount"], result["people"], result["metric"]))
    for c in ("candidate", "validation " + result["metric"], "adapt s (median)"):
        t.add_column(c, justify="right")
    for name, m in result["means"].items():
        t.add_row(name, "{:.3f}".format(m["validation"]), "{:.0f}".format(m["adapt_s"]))
    Console().print(t)


def build():
    """Command-line options."""
    p = parser("experiments/adapt_settings.py", __doc__.splitlines()[0], data=True)
    p.add_argument("--base", required=True, help="a pre-trained base that has not seen --people")
    p.add_argument("--data-set", default="3dc", help="3dc (default) or ninapro")
    p.add_argument("--people", default="2,3", help="validation people, comma-separated (default 2,3)")
    p.add_argument("--amount", type=int, default=1, help="repetitions (cycles) to adapt on (default 1)")
    return p


def _run(a) -> Dict[str, Any]:
    data_set = check_option("--data-set", a.data_set, tuple(PEOPLE))
    people = [int(x) for x in a.people.split(",")]
    return run(a.data, a.out, base=a.base,
               data_set=data_set, people=people, amount=a.amount, config=train_config(a))


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
