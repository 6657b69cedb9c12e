"""Target lead on NinaPro DB1 S2 E1: train on repetitions 1-6 with each lead, validate on repetition 7.

``python experiments/lead.py [--data ../shared/data] [--leads 0,60,120] [--seeds 0] [--set KEY=VALUE] [--json]``
(about 4 minutes per model on a 2-core CPU). Each model learns the positions ``lead`` ms after each frame
(``loss.target_lead_ms``) and is scored against the frame's own time on the validation repetition, before
post-processing: how much delay the lead removes and what it costs in R^2. The test repetitions 8-10 stay out of
view, so the default can be chosen here.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional, Sequence

from neurohand.training.importers import import_ninapro

from common import (
    TrainConfig,
    floats_of,
    main,
    ninapro_file,
    parser,
    run_and_evaluate,
    seeds_of,
    train_config,
    with_overrides,
)


def run(data_dir: str, out_dir: str, *, leads: Sequence[float] = (0.0, 60.0, 120.0), seeds: Sequence[int] = (0,),
        config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Train one model per lead and seed; return each one's validation R^2 and delay (GRU and Wiener)."""
    config = config or TrainConfig()
    path = ninapro_file(data_dir)
    train_rec = import_ninapro(path, reps=range(1, 7))
    val_rec = import_ninapro(path, reps=[7])
    rows = []
    for lead in leads:
        for seed in seeds:
            d = os.path.join(out_dir, "lead{:g}_seed{}".format(lead, seed))
            cfg = with_overrides(config, {"loss.target_lead_ms": float(lead)}, seed=seed)
            res = run_and_evaluate([train_rec], [val_rec], os.path.join(d, "model"), cfg, os.path.join(d, "report"),
                                   "NinaPro DB1 s2 e1, validation repetition 7, lead {:g} ms, seed {}".format(lead,
                                                                                                            seed))
            rows.append({"lead_ms": float(lead), "seed": seed, **{
                name: {"r2": m.get("r2_mean"), "delay_ms": m.get("delay_ms")}
                for name, m in res["decoders"].items() if name in ("gru", "lstm", "wiener")}})
    return {"experiment": "lead", "validation_repetition": 7, "rows": rows}


def show(result: Dict[str, Any]) -> None:
    """Print one line per model."""
    for r in result["rows"]:
        print("lead {:>5g} ms  seed {}  ".format(r["lead_ms"], r["seed"]) + "  ".join(
            "{} R^2 {:.3f} delay {:.0f} ms".format(n, v["r2"], v["delay_ms"]) for n, v in r.items()
            if isinstance(v, dict) and v["r2"] is not None))


def build():
    """Command-line options."""
    p = parser("experiments/lead.py", __doc__.splitlines()[0], data=True, seeds="0")
    p.add_argument("--leads", default="0,60,120", help="target leads in ms, comma-separated (default 0,60,120)")
    return p


if __name__ == "__main__":
    sys.exit(main(build, lambda a: run(a.data, a.out, leads=floats_of(a.leads), seeds=seeds_of(a),
                                       config=train_config(a)), show))
