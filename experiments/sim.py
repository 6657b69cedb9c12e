"""A simulated patient: a 10-minute session (16 channels at 10 kHz); its last two repetitions are the test set.

``python experiments/sim.py [--minutes 10] [--seed 0] [--set KEY=VALUE] [--json]`` (about 2 minutes on a 2-core
CPU).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Dict, Optional

from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.training.data import split_last_repetitions

from common import TrainConfig, decoder_table, main, parser, run_and_evaluate, slim, train_config


def run(out_dir: str, *, minutes: float = 10.0, seed: int = 0,
        config: Optional[TrainConfig] = None) -> Dict[str, Any]:
    """Simulate, hold out the last two repetitions, train and evaluate."""
    config = config or TrainConfig()
    rec = simulate_recording(SimulatorConfig(minutes=minutes, seed=seed))
    train_rec, test_rec, test_reps = split_last_repetitions(rec, 2)
    d = os.path.join(out_dir, "sim_seed{}".format(seed))
    r = run_and_evaluate([train_rec], [test_rec], os.path.join(d, "model"), config, os.path.join(d, "report"),
                         "Simulated patient {} ({} min), test repetitions {}".format(seed, minutes, test_reps))
    return {"experiment": "sim", "test_repetitions": test_reps, **slim(r)}


def show(result: Dict[str, Any]) -> None:
    """Print one row per decoder."""
    decoder_table("Simulated patient, test repetitions {}".format(result["test_repetitions"]), result["decoders"])


def build():
    """Command-line options."""
    p = parser("experiments/sim.py", __doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="session length (default 10)")
    p.add_argument("--seed", type=int, default=0, help="the simulated patient (default 0)")
    return p


if __name__ == "__main__":
    sys.exit(main(build, lambda a: run(a.out, minutes=a.minutes, seed=a.seed, config=train_config(a)), show))
