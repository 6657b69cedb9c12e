"""People held out: a base pre-trained on the others and adapted to a new person, against training from scratch.

``python experiments/pretrain_lopo.py [--data ../shared/data] [--data-set ninapro|3dc] [--folds 5] [--fold 1-5]
[--amounts 1,2,7] [--seed 0] [--collect] [--json]``.

The 14 people of a set are cut into ``--folds`` folds of consecutive people (2 or 3 people each at 5 folds, for the
2-core time); for each fold a base is pre-trained on every other person, and each held-out person is decoded by

- the base adapted (``train --init``) on their first ``k`` repetitions (NinaPro) or cycles of ``train/`` (3DC),
- a decoder trained from scratch on the same ``k`` (from 2: training from scratch needs a validation repetition),
- the classic decoder fitted with it (Wiener for NinaPro, LDA for 3DC),

scored on repetitions 8-10 (NinaPro: R^2) or on ``test/`` (3DC: accuracy), which nothing here trains or chooses on.
The base uses the other people's repetitions 1-7 (NinaPro) or ``train/`` (3DC). Settings are the defaults (the
adaptation's schedule was chosen by ``experiments/adapt_settings.py`` on validation repetitions).

Each fold writes ``OUT/pretrain_lopo/SET/foldN/result.json`` as it ends; a base or model folder already there from an
earlier run is reused (its training time is the one recorded then): folds can run in separate processes or sessions,
a stopped run goes on where it stopped, and ``--collect`` prints the table of every fold written so far.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from neurohand.decoder.validation import check_option, parse_index_ranges
from neurohand.training.data import select_repetitions
from neurohand.training.importers import import_3dc, import_ninapro
from neurohand.training.pretrain import adapt_config

from common import TrainConfig, evaluate, floats_of, main, need_data, parser, train, train_config, with_overrides

PEOPLE = {"ninapro": (1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
          "3dc": (1, 2, 3, 4, 5, 13, 14, 15, 16, 17, 18, 19, 20, 22)}
METRIC = {"ninapro": ("r2_mean", "wiener"), "3dc": ("accuracy", "lda")}


def person_data(data_dir: str, data_set: str, person: int):
    """Return ``(training recording with every repetition, test recording)`` of one person."""
    if data_set == "ninapro":
        folder = "ninapro_db1_s2_e1" if person == 2 else "ninapro_db1_e1_s1-16"
        rec = import_ninapro(need_data(os.path.join(data_dir, folder, "S{}_A1_E1.mat".format(person)),
                                       "NinaPro DB1 recording"))
        return select_repetitions(rec, range(1, 8)), select_repetitions(rec, (8, 9, 10))
    folder = "3dc_p1-5" if person <= 5 else "3dc_p13-22"
    base = need_data(os.path.join(data_dir, folder, "Participant{}".format(person)), "3DC participant")
    return import_3dc(os.path.join(base, "train")), import_3dc(os.path.join(base, "test"))


def folds_of(people: Sequence[int], n_folds: int) -> List[List[int]]:
    """Consecutive folds of near-equal size."""
    return [[int(p) for p in f] for f in np.array_split(np.asarray(people), n_folds)]


def run(data_dir: str, out_dir: str, *, data_set: str, n_folds: int, folds: Sequence[int], amounts: Sequence[int],
        seed: int, config: TrainConfig, adapt: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Pre-train per fold, adapt and train from scratch per held-out person and amount; score on the test part.

    ``config`` trains the bases and the models from scratch; ``adapt`` (default ``adapt_config(config)``) adapts.
    """
    adapt = with_overrides(adapt if adapt is not None else adapt_config(config), seed=seed)
    config = with_overrides(config, seed=seed)
    metric, classic = METRIC[data_set]
    data = {p: person_data(data_dir, data_set, p) for p in PEOPLE[data_set]}
    all_folds = folds_of(PEOPLE[data_set], n_folds)
    for f in folds:
        held = all_folds[f - 1]
        d = fold_dir(out_dir, data_set, f)
        base = os.path.join(d, "base")
        if not os.path.exists(os.path.join(base, "model.json")):
            train([data[p][0] for p in PEOPLE[data_set] if p not in held], base, config=config, progress=False,
                  log=lambda m: None, pretraining=True)
        with open(os.path.join(base, "model.json")) as fh:
            timing = {"fold": f, "held_out": held, "pretrain_s": json.load(fh)["wall_s"]}
        rows = []
        for p in held:
            for k in amounts:
                rows.append(_person_row(data[p], os.path.join(d, "p{}_k{}".format(p, k)), base, k, config, adapt,
                                        metric, classic, dict(fold=f, person=p, amount=k)))
        with open(os.path.join(d, "result.json"), "w") as fh:
            json.dump({"rows": rows, "pretrain": timing}, fh)
    return collect(out_dir, data_set=data_set, n_folds=n_folds, amounts=amounts, seed=seed, folds=folds)


def fold_dir(out_dir: str, data_set: str, fold: int) -> str:
    """Where a fold's base, models and ``result.json`` go."""
    return os.path.join(out_dir, "pretrain_lopo", data_set, "fold{}".format(fold))


def _person_row(data, prefix: str, base: str, k: int, config: TrainConfig, adapt: TrainConfig, metric: str,
                classic: str, row: Dict[str, Any]) -> Dict[str, Any]:
    """Adapt the base and train from scratch on the person's first ``k`` repetitions; score both on the test part."""
    first = select_repetitions(data[0], range(1, k + 1))
    row["data_s"] = first.duration_s
    row["adapt_s"] = _trained(prefix + "_adapted", first, adapt, init=base)
    ev = evaluate(prefix + "_adapted", [data[1]])["decoders"]
    row["pretrained"] = next(iter(ev.values()))[metric]
    if k >= 2:
        row["scratch_s"] = _trained(prefix + "_scratch", first, config)
        ev = evaluate(prefix + "_scratch", [data[1]])["decoders"]
        row["scratch"] = next(iter(ev.values()))[metric]
        row["classic"] = ev[classic][metric] if classic in ev else None
    return row


def _trained(model_dir: str, rec, config: TrainConfig, **kw: Any) -> float:
    """Train ``model_dir`` on ``rec`` unless an earlier run of this fold finished it; return its training wall time."""
    if not os.path.exists(os.path.join(model_dir, "model.json")):
        train([rec], model_dir, config=config, progress=False, log=lambda m: None, **kw)
    with open(os.path.join(model_dir, "model.json")) as fh:
        return float(json.load(fh)["wall_s"])


def collect(out_dir: str, *, data_set: str, n_folds: int, amounts: Sequence[int], seed: int,
            folds: Sequence[int] = ()) -> Dict[str, Any]:
    """Every fold's ``result.json`` written so far, and the means over their people per amount."""
    metric, classic = METRIC[data_set]
    rows, timing, done = [], [], []
    for f in range(1, n_folds + 1):
        path = os.path.join(fold_dir(out_dir, data_set, f), "result.json")
        if os.path.exists(path):
            with open(path) as fh:
                r = json.load(fh)
            rows += r["rows"]
            timing.append(r["pretrain"])
            done.append(f)
    means = {}
    for k in amounts:
        sel = [r for r in rows if r["amount"] == k]
        means[str(k)] = {c: (float(np.mean([r[c] for r in sel if r.get(c) is not None]))
                             if any(r.get(c) is not None for r in sel) else None)
                         for c in ("pretrained", "scratch", "classic", "adapt_s")}
    return {"experiment": "pretrain_lopo", "set": data_set, "metric": metric, "classic": classic, "seed": seed,
            "n_folds": n_folds, "folds": done, "rows": rows, "mean_by_amount": means, "pretrain": timing}


def show(result: Dict[str, Any]) -> None:
    """Means over the held-out people per amount, and each fold's pre-training time."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title="{} people held out ({} of {} folds): {} on the test part, mean over {} people".format(
        result["set"], len(result["folds"]), result["n_folds"], result["metric"],
        len({r["person"] for r in result["rows"]})))
    for c in ("repetitions", "pre-trained + adapted", "from scratch", result["classic"], "adapt s"):
        t.add_column(c, justify="right")
    for k, m in result["mean_by_amount"].items():
        t.add_row(k, *["-" if m[c] is None else "{:.3f}".format(m[c]) for c in ("pretrained", "scratch", "classic")],
                  "{:.0f}".format(m["adapt_s"]))
    Console().print(t)
    for f in result["pretrain"]:
        print("fold {} (held out {}): pre-trained in {:.0f} s".format(f["fold"], f["held_out"], f["pretrain_s"]))


def build():
    """Command-line options."""
    p = parser("experiments/pretrain_lopo.py", __doc__.splitlines()[0], data=True)
    p.add_argument("--data-set", default="ninapro", help="ninapro (default) or 3dc")
    p.add_argument("--folds", type=int, default=5, help="folds of held-out people (default 5)")
    p.add_argument("--fold", default=None, help="which folds to run, e.g. 1 or 1-3 (default all)")
    p.add_argument("--amounts", default="1,2,7", help="repetitions (cycles) of the held-out person (default 1,2,7)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    p.add_argument("--collect", action="store_true", help="train nothing: the table of the folds written so far")
    return p


def _run(a) -> Dict[str, Any]:
    data_set = check_option("--data-set", a.data_set, tuple(PEOPLE))
    folds = list(parse_index_ranges("--fold", a.fold)) if a.fold else list(range(1, a.folds + 1))
    amounts = [int(k) for k in floats_of(a.amounts)]
    if a.collect:
        return collect(a.out, data_set=data_set, n_folds=a.folds, amounts=amounts, seed=a.seed)
    return run(a.data, a.out, data_set=data_set, n_folds=a.folds, folds=folds, amounts=amounts, seed=a.seed,
               config=train_config(a), adapt=train_config(a, adapt_config()))


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
