"""Check a TensorRT engine against the numpy reference on a recorded stretch (run this on the Jetson).

    python3 -m deploy.verify_tensorrt BUNDLE_DIR SESSION.h5 [--seconds 30] [--fp16]

Streams the session through the bundle's own feature extractor, steps the TensorRT and numpy engines side by
side with their states carried, and prints the largest difference in positions and class logits and each engine's
per-step latency (median and p99). Exits 1 when the difference exceeds the tolerance (1e-3, or 2e-2 with --fp16).
Device side only: no torch needed.
"""

import argparse
import sys
import time
from typing import List, Optional

import numpy as np


def verify(bundle_dir: str, session: str, *, seconds: float = 30.0, fp16: bool = False) -> dict:
    """Compare TensorRT with numpy; returns the figures printed by :func:`main`."""
    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.engines import create_engine
    from neurohand.decoder.recording import read_recording

    bundle = Bundle(bundle_dir)
    rec = read_recording(session)
    bundle.check_source(fs_hz=rec.fs_hz, n_channels=rec.n_channels)
    n = min(rec.n_samples, int(seconds * rec.fs_hz))
    frames = bundle.feature_extractor().transform(rec.signals[:n])
    engines = {"tensorrt": create_engine(bundle, "tensorrt", fp16=fp16), "numpy": create_engine(bundle, "numpy")}
    states = {k: e.new_state() for k, e in engines.items()}
    outs = {k: [] for k in engines}
    times = {k: [] for k in engines}
    for f in frames:
        for k, e in engines.items():
            t0 = time.perf_counter()
            o, states[k] = e.step(states[k], f)
            times[k].append(time.perf_counter() - t0)
            outs[k].append(np.concatenate([o.positions, o.class_logits]))
    a, b = np.array(outs["tensorrt"]), np.array(outs["numpy"])
    return {
        "frames": len(frames),
        "max_abs_diff_positions": float(np.max(np.abs(a[:, :5] - b[:, :5]))) if len(a) else 0.0,
        "max_abs_diff_logits": float(np.max(np.abs(a[:, 5:] - b[:, 5:]))) if len(a) else 0.0,
        "latency_us": {k: {"median": float(np.median(v) * 1e6), "p99": float(np.percentile(v, 99) * 1e6)}
                       for k, v in times.items()},
    }


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python3 -m deploy.verify_tensorrt", description=__doc__.split("\n")[0])
    p.add_argument("bundle_dir")
    p.add_argument("session", help="a recorded session file (.h5) matching the bundle's contract")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--fp16", action="store_true")
    args = p.parse_args(argv)
    r = verify(args.bundle_dir, args.session, seconds=args.seconds, fp16=args.fp16)
    tol = 2e-2 if args.fp16 else 1e-3
    print("frames compared: {}".format(r["frames"]))
    print("max |TensorRT - numpy|: positions {:.2e}, logits {:.2e} (tolerance {:.0e})".format(
        r["max_abs_diff_positions"], r["max_abs_diff_logits"], tol))
    for k, v in r["latency_us"].items():
        print("{:>9} step: median {:.1f} us, p99 {:.1f} us".format(k, v["median"], v["p99"]))
    ok = max(r["max_abs_diff_positions"], r["max_abs_diff_logits"]) <= tol
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
