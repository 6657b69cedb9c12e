"""Recalibration on real recordings: the trained model, the recalibrated one and a fresh classic decoder, side by side.

``python experiments/recalibration_real.py [--data ../shared/data] [--sets 3dc,ninapro] [--people 3dc:1-5,13-20,22]
[--people ninapro:1-4,7-16] [--seed 0] [--json]``.

Per person, as a researcher would run ``train``, ``recalibrate`` and ``evaluate``:

- 3DC (gestures, accuracy): train on ``train/``; recalibrate on cycle 1 of ``test/`` (about 5 s per gesture, 55 s);
  score on cycles 2-4 of ``test/``.
- NinaPro DB1 (finger positions, R^2): train on repetitions 1-5; recalibrate on repetition 6; score on 8-10 (7 is
  left out, as a day's gap would be).

Columns: the trained model unchanged, the recalibrated model (and which candidate ``recalibrate`` kept on the held-out
end of the recalibration data), and the classic decoder fitted from scratch on the recalibration data alone (LDA for
3DC, Wiener for NinaPro: the baselines ``recalibrate`` fits). The scored cycles or repetitions are never seen by
``recalibrate``; the defaults were not tuned on them.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Sequence

import numpy as np

from neurohand.decoder.validation import check_option, parse_index_ranges
from neurohand.training.data import select_repetitions
from neurohand.training.importers import import_3dc, import_ninapro
from neurohand.training.recalibrate import recalibrate

from common import TrainConfig, evaluate, main, need_data, parser, train, train_config, with_overrides

SETS = ("3dc", "ninapro")
PEOPLE = {"3dc": "1-5,13-20,22", "ninapro": "1-4,7-16"}
PLAN = {"3dc": {"metric": "accuracy", "classic": "lda", "recal": [1], "test": [2, 3, 4]},
        "ninapro": {"metric": "r2_mean", "classic": "wiener", "recal": [6], "test": [8, 9, 10]}}


def recordings(data_dir: str, data_set: str, person: int):
    """Return ``(training recording, recalibration recording, test recording)`` of one person."""
    plan = PLAN[data_set]
    if data_set == "3dc":
        folder = "3dc_p1-5" if person <= 5 else "3dc_p13-22"
        base = need_data(os.path.join(data_dir, folder, "Participant{}".format(person)), "3DC participant")
        train_rec, later = import_3dc(os.path.join(base, "train")), import_3dc(os.path.join(base, "test"))
    else:
        name = "S{}_A1_E1.mat".format(person)
        folder = "ninapro_db1_s2_e1" if person == 2 else "ninapro_db1_e1_s1-16"
        rec = import_ninapro(need_data(os.path.join(data_dir, folder, name), "NinaPro DB1 recording"))
        train_rec, later = select_repetitions(rec, range(1, 6)), rec
    return train_rec, select_repetitions(later, plan["recal"]), select_repetitions(later, plan["test"])


def run_person(data_dir: str, out_dir: str, data_set: str, person: int, config: TrainConfig) -> Dict[str, Any]:
    """Train, recalibrate and score one person."""
    plan = PLAN[data_set]
    train_rec, recal_rec, test_rec = recordings(data_dir, data_set, person)
    d = os.path.join(out_dir, "recalibration_real", "{}_p{}".format(data_set, person))
    trained, recal = os.path.join(d, "model"), os.path.join(d, "recalibrated")
    train([train_rec], trained, config=config, progress=False, log=lambda m: None)
    res = recalibrate(trained, [recal_rec], recal, log=lambda m: None)
    before = evaluate(trained, [test_rec])["decoders"]
    after = evaluate(recal, [test_rec])["decoders"]
    cell, metric = next(iter(before)), plan["metric"]
    return {"person": person, "unchanged": before[cell][metric], "recalibrated": after[cell][metric],
            "fresh_classic": after[plan["classic"]][metric] if plan["classic"] in after else None,
            "kept": res.kept, "held_out": dict(res.scores), "recalibration_s": res.wall_s,
            "recalibration_data_s": recal_rec.duration_s}


def run(data_dir: str, out_dir: str, *, sets: Sequence[str], people: Dict[str, List[int]], seed: int,
        config: TrainConfig) -> Dict[str, Any]:
    """Every person of every set; the means and how often recalibration was not worse than the unchanged model."""
    out: Dict[str, Any] = {"experiment": "recalibration_real", "seed": seed, "sets": {}}
    for s in sets:
        rows = [run_person(data_dir, out_dir, s, p, with_overrides(config, seed=seed)) for p in people[s]]
        cols = ("unchanged", "recalibrated", "fresh_classic")
        out["sets"][s] = {"metric": PLAN[s]["metric"], "classic": PLAN[s]["classic"], "rows": rows,
                          "mean": {c: float(np.mean([r[c] for r in rows if r[c] is not None])) for c in cols},
                          "not_worse": int(sum(r["recalibrated"] >= r["unchanged"] - 1e-9 for r in rows)),
                          "people": len(rows)}
    return out


def show(result: Dict[str, Any]) -> None:
    """One table per data set."""
    from rich.console import Console
    from rich.table import Table

    for s, r in result["sets"].items():
        plan = PLAN[s]
        t = Table(title="{}: {} on test cycles/repetitions {} (recalibrated on {}); recalibrated >= unchanged for {} "
                        "of {}".format(s, r["metric"], plan["test"], plan["recal"], r["not_worse"], r["people"]))
        for c in ("person", "unchanged", "recalibrated", "kept", "fresh " + r["classic"], "recal. data s"):
            t.add_column(c, justify="right")
        for row in r["rows"] + [dict(r["mean"], person="mean", kept="", recalibration_data_s=None)]:
            t.add_row(str(row["person"]), *["-" if row.get(c) is None else "{:.3f}".format(row[c])
                                             for c in ("unchanged", "recalibrated")],
                      row["kept"], "-" if row.get("fresh_classic") is None else "{:.3f}".format(row["fresh_classic"]),
                      "" if row.get("recalibration_data_s") is None else "{:.0f}".format(row["recalibration_data_s"]))
        Console().print(t)


def build():
    """Command-line options."""
    p = parser("experiments/recalibration_real.py", __doc__.splitlines()[0], data=True)
    p.add_argument("--sets", default="3dc,ninapro", help="data sets, from 3dc, ninapro (default both)")
    p.add_argument("--people", action="append", default=[], metavar="SET:RANGES",
                   help="people of a set, e.g. 3dc:1-5 (default 3dc:{}, ninapro:{})".format(PEOPLE["3dc"],
                                                                                         PEOPLE["ninapro"]))
    p.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    return p


def _run(a) -> Dict[str, Any]:
    sets = [check_option("--sets", s.strip(), SETS) for s in a.sets.split(",") if s.strip()]
    people = {s: list(parse_index_ranges("--people", PEOPLE[s])) for s in SETS}
    for item in a.people:
        s, _, ranges = item.partition(":")
        people[check_option("--people", s, SETS)] = list(parse_index_ranges("--people", ranges))
    return run(a.data, a.out, sets=sets, people=people, seed=a.seed, config=train_config(a))


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
