"""A fingerprint of what the pipeline does, for changes that must alter nothing: trained weights, decoded commands.

``python experiments/behaviour_fingerprint.py [--out DIR] [--json]``.

Simulates a 3-minute session and a 1-minute test session (patient seed 3), trains a small decoder on the first
(``neurohand train --epochs 4 --hidden 32 --seed 1``), exports it, and replays the test session through ``neurohand
run --fast`` with the numpy and onnxruntime engines. Prints the SHA-256 of the trained weights and of each engine's
decoded frames (positions, commands, classes and probabilities, in order). The same fingerprints before and after a
change, on the same machine and packages: the change altered neither training nor decoding.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any, Dict

from common import main, parser

ENGINES = ("numpy", "onnxruntime")


def _neurohand(*args: str) -> None:
    r = subprocess.run([sys.executable, "-m", "neurohand", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        raise RuntimeError("neurohand {} failed ({}): {}".format(args[0], r.returncode, r.stderr.strip()))


def run(out_dir: str) -> Dict[str, Any]:
    """Simulate, train, export, replay; return the fingerprints."""
    d = os.path.join(out_dir, "behaviour_fingerprint")
    os.makedirs(d, exist_ok=True)
    session, test = os.path.join(d, "session.h5"), os.path.join(d, "test.h5")
    _neurohand("simulate", "--out", session, "--minutes", "3", "--seed", "3")
    _neurohand("simulate", "--out", test, "--minutes", "1", "--seed", "3")
    model, bundle = os.path.join(d, "model"), os.path.join(d, "bundle")
    _neurohand("train", session, "--out", model, "--epochs", "4", "--hidden", "32", "--seed", "1", "--quiet")
    _neurohand("export", model, "--out", bundle, "--overwrite")  # the folder of an earlier run
    with open(os.path.join(model, "model.safetensors"), "rb") as f:
        out = {"experiment": "behaviour_fingerprint", "weights_sha256": hashlib.sha256(f.read()).hexdigest()}
    for engine in ENGINES:
        log = os.path.join(d, "run_{}.jsonl".format(engine))
        if os.path.exists(log):
            os.remove(log)
        _neurohand("run", "--bundle", bundle, "--source", "replay:" + test, "--fast", "--engine", engine, "--log", log)
        frames = [json.loads(line) for line in open(log) if '"positions"' in line]
        decoded = json.dumps([[fr["positions"], fr["command"], fr["class"], fr["probability"]] for fr in frames])
        out[engine] = {"frames": len(frames), "commands_sha256": hashlib.sha256(decoded.encode()).hexdigest()}
    return out


def show(result: Dict[str, Any]) -> None:
    """One line per fingerprint."""
    print("{:<11} {}".format("weights", result["weights_sha256"]))
    for engine in ENGINES:
        print("{:<11} {} ({} frames)".format(engine, result[engine]["commands_sha256"], result[engine]["frames"]))


if __name__ == "__main__":
    sys.exit(main(lambda: parser("experiments/behaviour_fingerprint.py", __doc__.splitlines()[0]),
                  lambda a: run(a.out), show))
