"""Day-to-day drift on simulated patients, recorded exactly as ``neurohand calibrate`` records them.

``python experiments/recalibration.py [--seeds 0-2] [--minutes 2] [--set KEY=VALUE] [--json]`` (about 19 minutes
for three patients on a 2-core CPU). Per patient (``seed``): a day-1 calibration session with the default cue
protocol (glove labels) trains the day-1 model; on day 2 (the simulator's drift) a ``--minutes`` session is recorded;
the test sets are separate sessions (another trial order and noise) on day 1 and day 2. Compared on the day-2 test
session: the day-1 model as is, the day-1 model recalibrated on the short session, and a model trained from scratch
on the same short session (with its Wiener filter).
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence

import numpy as np
from rich.console import Console

from neurohand.calibration.cue_protocol import load_cue_protocol
from neurohand.calibration.options import CalibrateOptions, DeviceOptions, SimulatorOptions
from neurohand.calibration.workflow import record_session
from neurohand.decoder.session_file import read_recording
from neurohand.training.recalibrate import recalibrate

from common import TrainConfig, evaluate, main, parser, seeds_of, train, train_config, with_overrides

COLUMNS = ["day1_on_day1", "day1_on_day2", "recalibrated_on_day2", "scratch_on_day2", "scratch_wiener_on_day2",
           "recovered_fraction"]


def run(out_dir: str, *, seeds: Sequence[int] = (0, 1, 2), minutes: float = 2.0,
        config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Record four sessions per simulated patient, train, recalibrate, train from scratch, evaluate."""
    config = config or TrainConfig()
    quiet = Console(file=io.StringIO())
    base = load_cue_protocol()
    rows = []
    for seed in seeds:
        d = os.path.join(out_dir, "recalibration_patient{}".format(seed))
        os.makedirs(d, exist_ok=True)

        def session(day: int, number: int, reps: int, name: str, d=d, seed=seed):
            path = os.path.join(d, name + ".h5")
            if os.path.exists(path):
                os.remove(path)
            opts = CalibrateOptions(patient="sim{}".format(seed), store=d, tui=False,
                                    devices=DeviceOptions(labels="glove:sim"),
                                    simulator=SimulatorOptions(seed=seed, day=day, session=number, fast=True))
            record_session(opts, replace(base, repetitions=reps, seed=100 * day + number), path, quiet)
            return read_recording(path)

        day1 = session(1, 1, base.repetitions, "day1_calibration")
        day1_test = session(1, 2, 2, "day1_test")
        short = session(2, 1, base.repetitions_for(minutes), "day2_recalibration")
        day2_test = session(2, 2, 3, "day2_test")
        m1, mr, ms = (os.path.join(d, n) for n in ("model_day1", "model_recalibrated", "model_scratch"))
        train([day1], m1, config=with_overrides(config, seed=seed), progress=False, log=lambda m: None)
        recalibrate(m1, [short], mr, log=lambda m: None)
        train([short], ms, config=with_overrides(config, seed=seed), progress=False, log=lambda m: None)
        ev_s = evaluate(ms, [day2_test])["decoders"]
        row = {"seed": seed, "short_session_s": short.duration_s,
               "day1_on_day1": evaluate(m1, [day1_test])["decoders"][config.cell]["r2_mean"],
               "day1_on_day2": evaluate(m1, [day2_test])["decoders"][config.cell]["r2_mean"],
               "recalibrated_on_day2": evaluate(mr, [day2_test])["decoders"][config.cell]["r2_mean"],
               "scratch_on_day2": ev_s[config.cell]["r2_mean"],
               "scratch_wiener_on_day2": ev_s["wiener"]["r2_mean"] if "wiener" in ev_s else None}
        row["recovered_fraction"] = row["recalibrated_on_day2"] / row["day1_on_day1"]
        rows.append(row)
    keys = [k for k in rows[0] if k != "seed"]
    mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in keys}
    return {"experiment": "recalibration", "minutes": minutes, "seeds": list(seeds), "patients": rows,
            "mean": mean}


def show(result: Dict[str, Any]) -> None:
    """Print one row per patient and their mean."""
    from rich.table import Table

    t = Table(title="Recalibration with {:g} minutes of day-2 data (R2 mean, held-out sessions)".format(
        result["minutes"]))
    t.add_column("patient")
    for c in COLUMNS:
        t.add_column(c.replace("_", " "), justify="right")
    for r in result["patients"] + [dict(result["mean"], seed="mean")]:
        t.add_row(str(r["seed"]), *["-" if r.get(c) is None else "{:.3f}".format(r[c]) for c in COLUMNS])
    Console().print(t)


def build():
    """Command-line options."""
    p = parser("experiments/recalibration.py", __doc__.splitlines()[0], seeds="0-2",
               seeds_help="simulated patients (default {})")
    p.add_argument("--minutes", type=float, default=2.0, help="length of the day-2 recalibration session (default 2)")
    return p


if __name__ == "__main__":
    sys.exit(main(build, lambda a: run(a.out, seeds=seeds_of(a), minutes=a.minutes, config=train_config(a)), show))
