"""``neurohand bench``: speed measurements, printed as a table and optionally as JSON.

Benchmarks, not tests: each figure is the median of several runs, single thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any, Dict, List


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``neurohand bench``."""
    p = sub.add_parser("bench", help="benchmarks (table, or JSON with --json)")
    bsub = p.add_subparsers(dest="bench", metavar="BENCHMARK")
    bsub.required = True
    f = bsub.add_parser("features", help="filters + features real-time factor at 16 ch x 30 kHz and 10 kHz")
    f.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    f.add_argument("--seconds", type=float, default=5.0, help="signal length per run (default 5)")
    f.add_argument("--runs", type=int, default=5, help="runs per figure; the median is reported (default 5)")
    f.set_defaults(func=_bench_features)


def _single_thread() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass


def bench_features(*, seconds: float = 5.0, runs: int = 5) -> Dict[str, Any]:
    """Time the default nerve front end (filters + features) streamed in chunks.

    Returns
    -------
    dict
        ``{"benchmark": "features", "results": [{"channels", "fs_hz", "realtime_factor", "samples_per_s",
        "chunk_ms", ...}]}``. ``realtime_factor`` is processing time / signal duration with 10 ms chunks (one
        hop, as the live runtime feeds it); ``realtime_factor_100ms`` and ``realtime_factor_offline`` use
        100 ms chunks and the whole signal in one call.
    """
    _single_thread()
    import numpy as np

    from decoder.features import FeatureExtractor, default_feature_config

    cfg = default_feature_config("nerve")
    results: List[Dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for fs in (30000, 10000):
        C = 16
        x = rng.normal(0.0, 20.0, (int(seconds * fs), C)).astype(np.float32)
        ex = FeatureExtractor(cfg, fs_hz=fs, n_channels=C)
        row: Dict[str, Any] = {"channels": C, "fs_hz": fs, "chunk_ms": cfg.hop_ms}
        for key, chunk in (("realtime_factor", ex.hop_samples), ("realtime_factor_100ms", fs // 10),
                           ("realtime_factor_offline", len(x))):
            times = []
            for _ in range(runs):
                state = ex.new_state()
                t0 = time.perf_counter()
                for i in range(0, len(x), chunk):
                    _, state = ex.process(state, x[i:i + chunk])
                times.append(time.perf_counter() - t0)
            row[key] = float(np.median(times)) / seconds
        row["samples_per_s"] = fs / row["realtime_factor"]
        results.append(row)
    return {"benchmark": "features", "config": cfg.to_dict(), "results": results}


def _bench_features(args: argparse.Namespace) -> int:
    out = bench_features(seconds=args.seconds, runs=args.runs)
    if args.json:
        print(json.dumps(out))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="filters + features, single thread, median of {} runs".format(args.runs))
    for col in ("channels", "fs_hz", "RTF (10 ms chunks)", "RTF (100 ms chunks)", "RTF (offline)",
                "samples/s per channel"):
        t.add_column(col, justify="right")
    for r in out["results"]:
        t.add_row(str(r["channels"]), str(r["fs_hz"]), "{:.4f}".format(r["realtime_factor"]),
                  "{:.4f}".format(r["realtime_factor_100ms"]), "{:.4f}".format(r["realtime_factor_offline"]),
                  "{:,.0f}".format(r["samples_per_s"]))
    Console().print(t)
    return 0
