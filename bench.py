"""``neurohand bench``: speed measurements, printed as a table and optionally as JSON.

Benchmarks, not tests: each figure is the median of several runs, single thread.
"""

import argparse
import json
import os
import time
from typing import Any, Dict, List, Optional

from .bench_latency import register as register_latency


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
    d = bsub.add_parser("decoder", help="per-step latency of every available engine on a bundle")
    d.add_argument("bundle_dir", help="bundle folder")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.add_argument("--steps", type=int, default=5000, help="timed steps per engine (default 5000)")
    d.set_defaults(func=_bench_decoder)
    pl = bsub.add_parser("pipeline", help="latency, CPU and memory of the runtime replaying into a pty hand")
    pl.add_argument("--bundle", default=None, help="bundle to use (default: make a small one from a simulation; "
                    "that needs the desktop side, so on the device give one)")
    pl.add_argument("--session", default=None, help="recording to replay (.h5; default: a simulation at the "
                    "bundle's rate and channels)")
    pl.add_argument("--seconds", type=float, default=20.0, help="replay length (default 20)")
    pl.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    pl.add_argument("--keys", default=None, help="also run the keyboard sink with this profile (needs DISPLAY)")
    pl.set_defaults(func=_bench_pipeline)
    so = bsub.add_parser("soak", help="hours of simulated signal through the runtime, fast, with random faults")
    so.add_argument("--hours", type=float, default=1.0, help="simulated hours (default 1)")
    so.add_argument("--bundle", default=None, help="bundle to use (default: make a small one from a simulation)")
    so.add_argument("--seed", type=int, default=0, help="seed of the simulated signal and the fault episodes")
    so.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    so.set_defaults(func=_bench_soak)
    t = bsub.add_parser("train", help="wall time and peak memory to train the default model on a 10-minute "
                        "simulated session")
    t.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    t.add_argument("--minutes", type=float, default=10.0, help="simulated session length (default 10)")
    t.add_argument("--threads", type=int, default=2,
                   help="CPU cores to train on (default 2; the parallel refit uses the second)")
    t.set_defaults(func=_bench_train)
    register_latency(bsub)


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

    from neurohand.decoder.feature_config import default_feature_config
    from neurohand.decoder.features import FeatureExtractor

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


_TRAIN_CHILD = """
import json, os, sys, time
import torch
from neurohand.deploy.process_memory import peak_rss_mb
n_cores = int(sys.argv[3])
if hasattr(os, "sched_setaffinity"):  # the budget is cores: the parallel refit's second process shares them
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:n_cores])
torch.set_num_threads(n_cores)
from neurohand.decoder.session_file import read_recording
from neurohand.training.config import TrainConfig
from neurohand.training.train import train
rec = read_recording(sys.argv[1])
t0 = time.perf_counter()
res = train([rec], sys.argv[2], config=TrainConfig(device="cpu"), progress=False, log=lambda m: None)
print(json.dumps({"wall_s": time.perf_counter() - t0, "val_r2": res.val_metrics.get("r2_mean"),
                  "epochs": res.epochs_run, "refit_epochs": res.refit_epochs, "peak_rss_mb": peak_rss_mb(),
                  "refit_process_peak_rss_mb": res.refit_process_peak_rss_mb}))
"""


def bench_train(*, minutes: float = 10.0, threads: int = 2) -> Dict[str, Any]:
    """Train the default model on a simulated session in a child process; its wall time and peak RSS.

    Returns
    -------
    dict
        ``{"benchmark": "train", "wall_s", "peak_rss_mb", "frames", "minutes", "threads", ...}``; ``wall_s`` is
        the ``train()`` call (features, recurrent model with early stopping and refit, baselines); ``peak_rss_mb``
        adds the training process's memory high-water mark and the parallel refit process's
        (:mod:`training.parallel_refit`), which run side by side.
    """
    import subprocess
    import sys
    import tempfile

    from neurohand.decoder.session_file import write_recording
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "session.h5")
        rec = simulate_recording(SimulatorConfig(minutes=minutes, seed=0))
        write_recording(rec, path)
        del rec
        t0 = time.perf_counter()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        r = subprocess.run([sys.executable, "-c", _TRAIN_CHILD, path, os.path.join(tmp, "model"), str(threads)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=root, env=env)
        process_wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError("training child failed:\n" + r.stderr[-3000:])
        child = json.loads(r.stdout.strip().splitlines()[-1])
    # the two processes run side by side: their high-water marks added are the bound on the total
    return {"benchmark": "train", "wall_s": child["wall_s"], "process_wall_s": process_wall,
            "peak_rss_mb": child["peak_rss_mb"] + child["refit_process_peak_rss_mb"],
            "main_process_peak_rss_mb": child["peak_rss_mb"],
            "refit_process_peak_rss_mb": child["refit_process_peak_rss_mb"], "minutes": minutes, "threads": threads,
            "epochs": child["epochs"],
            "refit_epochs": child["refit_epochs"], "val_r2": child["val_r2"]}


def _bench_train(args: argparse.Namespace) -> int:
    out = bench_train(minutes=args.minutes, threads=args.threads)
    if args.json:
        print(json.dumps(out))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="train the default model on a {:g}-minute simulated session, {} CPU threads".format(
        args.minutes, args.threads))
    for col in ("train() wall s", "process wall s", "peak RSS MB", "epochs (+ refit)", "validation R2"):
        t.add_column(col, justify="right")
    t.add_row("{:.1f}".format(out["wall_s"]), "{:.1f}".format(out["process_wall_s"]), "{:.0f}".format(
        out["peak_rss_mb"]), "{} + {}".format(out["epochs"], out["refit_epochs"]), "{:.3f}".format(out["val_r2"]))
    Console().print(t)
    return 0


def bench_decoder(bundle_dir: str, *, steps: int = 5000, warmup: int = 200) -> Dict[str, Any]:
    """Per-step latency of each available engine, single thread, state carried, real-looking frames.

    Returns
    -------
    dict
        ``{"benchmark": "decoder", "engines": {name: {"median_us", "p99_us", "frames_per_s"}}, ...}``.
    """
    _single_thread()
    import numpy as np

    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.engines import available_engines, create_engine

    bundle = Bundle(bundle_dir)
    mean = np.asarray(bundle.contract["normalisation"]["mean"], np.float32)
    std = np.asarray(bundle.contract["normalisation"]["std"], np.float32)
    frames = (mean + std * np.random.default_rng(0).normal(size=(steps + warmup, len(mean)))).astype(np.float32)
    out: Dict[str, Any] = {}
    for name in available_engines(bundle):  # TensorRT only with an engine built for this bundle
        eng = create_engine(bundle, name)
        state = eng.new_state()
        times = np.empty(steps)
        for i in range(warmup):
            _, state = eng.step(state, frames[i])
        clock = time.perf_counter  # float seconds: sub-microsecond resolution (perf_counter_ns is Python 3.7+)
        for i in range(steps):
            t0 = clock()
            _, state = eng.step(state, frames[warmup + i])
            times[i] = clock() - t0
        us = times * 1e6
        out[name] = {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)),
                     "frames_per_s": float(1e6 / np.mean(us))}
    m = bundle.contract["model"]
    return {"benchmark": "decoder", "model": "{} {}x{}, {} features".format(
        m["cell"], m["layers"], m["hidden"], m["n_features"]), "steps": steps, "engines": out}


def _bench_decoder(args: argparse.Namespace) -> int:
    out = bench_decoder(args.bundle_dir, steps=args.steps)
    if args.json:
        print(json.dumps(out))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="decoder step, {} ({} steps, one thread)".format(out["model"], out["steps"]))
    for col in ("engine", "median us", "p99 us", "frames/s"):
        t.add_column(col, justify="right")
    for name, r in out["engines"].items():
        t.add_row(name, "{:.1f}".format(r["median_us"]), "{:.1f}".format(r["p99_us"]),
                  "{:,.0f}".format(r["frames_per_s"]))
    Console().print(t)
    return 0


_PIPELINE_CHILD = """
import json, resource, sys, time
from neurohand.deploy.process_memory import peak_rss_mb
from neurohand.decoder.bundle import Bundle
from neurohand.deploy.runtime import HandSink, Runtime
from neurohand.deploy.sources import open_source
from neurohand.firmware_bridge.sim_hand import SimHand
import numpy as np
bundle = Bundle(sys.argv[1])
keys_profile = sys.argv[4] if len(sys.argv) > 4 else ""
hop = bundle.hop_samples
key_lat = []
with SimHand() as hand:
    sink = HandSink(hand.port)
    if keys_profile:
        from neurohand.deploy.keys_sink import KeysSink, MultiSink
        keys = KeysSink(keys_profile, bundle.class_names, start_enabled=True)
        sink = MultiSink([sink, keys])
    rt = Runtime(bundle, open_source("replay:" + sys.argv[2], chunk_samples=hop, loop=True), sink)
    if keys_profile:
        write = sink.write
        def timed(cmd, probs=None):
            n = len(keys.sent)
            ok = write(cmd, probs)
            key_lat.extend((t - rt.current_arrival) * 1000.0 for t, _, _ in keys.sent[n:])
            return ok
        sink.write = timed
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    stats = rt.run(seconds=float(sys.argv[3]))
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
s = stats.summary()
s["cpu_percent"] = 100.0 * ((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)) / wall
s["peak_rss_mb"] = peak_rss_mb()
s["engine"] = rt.engine.name
s["torch_imported"] = "torch" in sys.modules
if key_lat:
    s["keys_latency_ms"] = {"median": float(np.median(key_lat)), "p99": float(np.percentile(key_lat, 99)),
                            "events": len(key_lat)}
print(json.dumps(s))
"""


def bench_pipeline(*, bundle_dir: Optional[str] = None, seconds: float = 20.0, keys_profile: Optional[str] = None,
                   session: Optional[str] = None) -> Dict[str, Any]:
    """Replay a simulated session through the runtime into a simulated hand on a pty, in real time.

    The runtime runs in its own process that imports no torch; its CPU time and peak resident memory are
    measured there (the simulated hand's thread shares that process, so both are upper bounds). With
    ``keys_profile`` (a file or a profile's name, and an X display in ``DISPLAY``), the keyboard sink runs too,
    enabled, and the keys row is the time from the arrival of a frame's last chunk to its key event having been sent.
    ``session`` replays that recording (looped) instead of a simulation at the bundle's rate and channels. Without
    ``bundle_dir`` a small model is trained first, which needs the desktop side (Python 3.8+, the train extra).

    Returns
    -------
    dict
        ``{"benchmark": "pipeline", "latency_ms": {"median", "p99"}, "peak_rss_mb", "cpu_percent", "frames",
        "overruns", ...}``.
    """
    import subprocess
    import sys
    import tempfile

    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.errors import InvalidValueError
    from neurohand.decoder.session_file import read_recording, write_recording
    from neurohand.decoder.validation import check_positive
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    check_positive("--seconds", seconds)
    if bundle_dir is None and sys.version_info < (3, 8):
        raise InvalidValueError("Invalid value for '--bundle': a bundle folder is needed on Python {}.{} (making a "
                                "small one trains a model, which needs the desktop side: Python 3.8+)".format(
                                    *sys.version_info[:2]))
    if keys_profile:
        from neurohand.deploy.keymap import profile_path

        keys_profile = os.path.abspath(profile_path(keys_profile))
    with tempfile.TemporaryDirectory() as tmp:
        if bundle_dir is None:  # trained on another session of the same patient (2 repetitions: train, validate)
            bundle_dir = _small_bundle(simulate_recording(SimulatorConfig(minutes=1.5, seed=0, session=2)), tmp)
        bundle = Bundle(bundle_dir)  # a bundle that is not one: one line here, not the child's traceback
        if session is None:
            session = os.path.join(tmp, "session.h5")
            write_recording(simulate_recording(SimulatorConfig(minutes=max(0.5, seconds / 60.0), seed=0,
                                                               n_channels=bundle.n_channels, fs_hz=bundle.fs_hz)),
                            session)
        else:
            rec = read_recording(session)
            bundle.check_source(fs_hz=rec.fs_hz, n_channels=rec.n_channels, channel_names=rec.channel_names)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        argv = [sys.executable, "-c", _PIPELINE_CHILD, os.path.abspath(bundle_dir), os.path.abspath(session),
                str(seconds)]
        if keys_profile:
            argv.append(keys_profile)
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, cwd=root)
        if r.returncode != 0:
            raise RuntimeError("pipeline child failed:\n" + r.stderr[-3000:])
        child = json.loads(r.stdout.strip().splitlines()[-1])
    return {"benchmark": "pipeline", "latency_ms": {"median": child["latency_ms"]["median"],
                                                    "p99": child["latency_ms"]["p99"]},
            "peak_rss_mb": child["peak_rss_mb"], "cpu_percent": child["cpu_percent"], "frames": child["frames"],
            "overruns": child["overruns"], "engine": child["engine"], "torch_imported": child["torch_imported"],
            "faults": child["faults"], "seconds": seconds, "keys_latency_ms": child.get("keys_latency_ms")}


def _small_bundle(rec, tmp: str) -> str:
    """Train a quick default-shaped model on the simulated session and export it (needs the train extras)."""
    from neurohand.training.config import TrainConfig, with_overrides
    from neurohand.training.export import export_bundle
    from neurohand.training.train import train

    model_dir = os.path.join(tmp, "model")
    # adaptation "on": a model from a calibration session runs behind the feature adaptation (this 1.5-minute session is
    # too short for auto to turn it on), and the benchmark should time what the patient runs
    config = with_overrides(TrainConfig(), {"schedule.epochs": 2, "adaptation.mode": "on"}, device="cpu")
    train([rec], model_dir, config=config, progress=False, fit_classic=False, log=lambda m: None)
    out = os.path.join(tmp, "bundle")
    export_bundle(model_dir, out)
    return out


def _bench_pipeline(args: argparse.Namespace) -> int:
    out = bench_pipeline(bundle_dir=args.bundle, seconds=args.seconds, keys_profile=args.keys, session=args.session)
    if args.json:
        print(json.dumps(out))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="runtime pipeline: replay -> filters/features -> {} -> post -> pty hand, {:g} s real time".format(
        out["engine"], out["seconds"]))
    for col in ("frames", "latency median ms", "latency p99 ms", "overruns", "CPU %", "peak RSS MB", "torch loaded"):
        t.add_column(col, justify="right")
    t.add_row(str(out["frames"]), "{:.2f}".format(out["latency_ms"]["median"]), "{:.2f}".format(
        out["latency_ms"]["p99"]), str(out["overruns"]), "{:.1f}".format(out["cpu_percent"]),
        "{:.0f}".format(out["peak_rss_mb"]), str(out["torch_imported"]))
    Console().print(t)
    k = out.get("keys_latency_ms")
    if k:
        print("keys: frame in -> key event sent: median {:.2f} ms, p99 {:.2f} ms ({} events)".format(
            k["median"], k["p99"], k["events"]))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    import tempfile

    from neurohand.decoder.validation import check_positive
    from neurohand.deploy.soak import soak
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    check_positive("--hours", args.hours)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or _small_bundle(simulate_recording(SimulatorConfig(minutes=1.5, seed=0, session=2)),
                                              tmp)
        out = soak(bundle, hours=args.hours, seed=args.seed)
    if args.json:
        print(json.dumps(out))
    else:
        for k in ("hours", "frames", "memory_growth_mb_per_hour", "velocity_limit_violations", "window_violations",
                  "largest_move_within_100ms", "faults_injected", "faults_detected", "faults_cleared",
                  "faults_by_kind", "late_frames", "paced", "log_lines", "wall_s"):
            print("{:28s} {}".format(k, out[k]))
    ok = out["velocity_limit_violations"] == 0 and out["window_violations"] == 0 and out["limit_clips"] == 0
    return 0 if ok and out["faults_detected"] == out["faults_cleared"] == out["faults_injected"] else 1
