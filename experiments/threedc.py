"""3DC, participants 1-5: per participant and seed, train on ``train/``, test on ``test/``; frame accuracy.

``python experiments/threedc.py [--data ../shared/data] [--seeds 0-2] [--participants 1-5] [--set KEY=VALUE]
[--json]`` (about 6.5 minutes for three seeds on a 2-core CPU). The JSON's ``accuracy`` and ``mean_accuracy`` are
means over the seeds; ``accuracy_by_seed`` holds each seed's table and ``wins_by_seed`` how many participants the
recurrent decoder beat LDA on at each seed.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np

from neurohand.decoder.validation import parse_index_ranges
from neurohand.training.importers import import_3dc

from common import TrainConfig, main, need_data, parser, run_and_evaluate, seeds_of, slim, train_config, with_overrides


def run(data_dir: str, out_dir: str, *, participants: Sequence[int] = (1, 2, 3, 4, 5),
        seeds: Sequence[int] = (0, 1, 2), config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Train and evaluate per participant and seed; LDA is tuned on the same (adapted) frames."""
    config = config or TrainConfig()
    recs = {}
    for p in participants:
        base = need_data(os.path.join(data_dir, "3dc_p1-5", "Participant{}".format(p)), "3DC participant")
        recs[p] = (import_3dc(os.path.join(base, "train")), import_3dc(os.path.join(base, "test")))
    runs: Dict[int, Dict[int, Dict[str, Any]]] = {}
    for seed in seeds:
        runs[seed] = {}
        for p in participants:
            d = os.path.join(out_dir, "3dc_seed{}".format(seed), "3dc_p{}".format(p))
            runs[seed][p] = run_and_evaluate([recs[p][0]], [recs[p][1]], os.path.join(d, "model"),
                                             with_overrides(config, seed=seed), os.path.join(d, "report"),
                                             "3DC participant {}, seed {}".format(p, seed))
    names = list(runs[seeds[0]][participants[0]]["decoders"])
    by_seed = {str(s): {str(p): {n: runs[s][p]["decoders"][n]["accuracy"] for n in names} for p in participants}
               for s in seeds}
    table = {str(p): {n: float(np.mean([by_seed[str(s)][str(p)][n] for s in seeds])) for n in names}
             for p in participants}
    mean = {n: float(np.mean([table[str(p)][n] for p in participants])) for n in names}
    recurrent = names[0]
    wins = {str(s): int(sum(by_seed[str(s)][str(p)][recurrent] > by_seed[str(s)][str(p)]["lda"]
                            for p in participants)) if "lda" in names else None for s in seeds}
    return {"experiment": "3dc", "seeds": list(seeds), "accuracy": table, "mean_accuracy": mean,
            "accuracy_by_seed": by_seed, "wins_by_seed": wins,
            "runs": {str(s): {str(p): slim(r) for p, r in runs[s].items()} for s in seeds}}


def show(result: Dict[str, Any]) -> None:
    """Print accuracy per participant, mean over seeds."""
    from rich.console import Console
    from rich.table import Table

    names = list(result["mean_accuracy"])
    t = Table(title="3DC window accuracy (train on train/, test on test/), mean over seeds {}; {} beats LDA "
                    "on {} participants at each seed".format(result["seeds"], names[0],
                                                             list(result["wins_by_seed"].values())))
    t.add_column("participant")
    for n in names:
        t.add_column(n, justify="right")
    for p, row in result["accuracy"].items():
        t.add_row(p, *["{:.3f}".format(row[n]) for n in names])
    t.add_row("mean", *["{:.3f}".format(result["mean_accuracy"][n]) for n in names])
    Console().print(t)


def build():
    """Command-line options."""
    p = parser("experiments/threedc.py", __doc__.splitlines()[0], data=True, seeds="0-2")
    p.add_argument("--participants", default="1-5", help="3DC participants (default 1-5)")
    return p


def _run(a) -> Dict[str, Any]:
    return run(a.data, a.out, participants=list(parse_index_ranges("--participants", a.participants)),
               seeds=seeds_of(a), config=train_config(a))


if __name__ == "__main__":
    sys.exit(main(build, _run, show))
