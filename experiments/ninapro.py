"""NinaPro DB1, subject 2, exercise 1: train on repetitions 1-7, test on 8-10, one run per seed.

``python experiments/ninapro.py [--data ../shared/data] [--seeds 0-2] [--set KEY=VALUE] [--json]``
(about 3-4 minutes per seed on a 2-core CPU). The JSON's ``mean_over_seeds`` holds each decoder's metrics averaged
over the seeds (``r2_by_seed`` for each seed's mean R2); ``runs`` each seed's evaluation.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Sequence

import numpy as np

from neurohand.training.importers import import_ninapro

from common import (
    TrainConfig,
    decoder_table,
    main,
    mean_of,
    ninapro_file,
    parser,
    run_and_evaluate,
    seeds_of,
    slim,
    train_config,
    with_overrides,
)


def run(data_dir: str, out_dir: str, *, seeds: Sequence[int] = (0, 1, 2),
        config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Train and evaluate once per seed; the summary averages every metric over the seeds."""
    config = config or TrainConfig()
    path = ninapro_file(data_dir)
    train_rec = import_ninapro(path, reps=range(1, 8))
    test_rec = import_ninapro(path, reps=[8, 9, 10])
    runs = []
    for seed in seeds:
        d = os.path.join(out_dir, "ninapro_seed{}".format(seed))
        runs.append(run_and_evaluate([train_rec], [test_rec], os.path.join(d, "model"),
                                     with_overrides(config, seed=seed), os.path.join(d, "report"),
                                     "NinaPro DB1 s2 e1, test repetitions 8-10, seed {}".format(seed)))
    names = list(runs[0]["decoders"])
    summary = {n: {k: mean_of(runs, n, k) for k in ("r2_mean", "pearson_r_mean", "rmse_mean", "delay_ms",
                                                    "accuracy", "macro_f1")} for n in names}
    for n in names:
        if summary[n]["r2_mean"] is not None:
            summary[n]["r2_per_finger"] = [float(v) for v in np.mean(
                [r["decoders"][n]["r2_per_finger"] for r in runs], axis=0)]
            summary[n]["r2_by_seed"] = [r["decoders"][n]["r2_mean"] for r in runs]
    return {"experiment": "ninapro", "seeds": list(seeds), "mean_over_seeds": summary,
            "runs": [slim(r) for r in runs]}


def show(result: Dict[str, Any]) -> None:
    """Print the mean over seeds."""
    decoder_table("NinaPro DB1 s2 e1, test repetitions 8-10, mean over seeds {}".format(result["seeds"]),
                  result["mean_over_seeds"])


def build():
    """Command-line options."""
    return parser("experiments/ninapro.py", __doc__.splitlines()[0], data=True, seeds="0-2")


if __name__ == "__main__":
    sys.exit(main(build, lambda a: run(a.data, a.out, seeds=seeds_of(a), config=train_config(a)), show))
