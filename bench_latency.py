"""``neurohand bench latency``: what the hand receives, scored against the true finger positions.

A model is trained with the defaults on the training part of a data set and exported; the held-out part is then
replayed through the device path exactly as ``neurohand run`` decodes it: chunks of one hop (what the runtime's
sources deliver), the bundle's causal filters and features, its feature adaptation, the engine, and the
post-processing (:mod:`neurohand.decoder.stream`), the commands starting from the safe posture. The commands are
scored against the true positions at each frame's last sample: R^2, Pearson r, and the delay (the lag that maximises
their cross-correlation). The budget adds up the delay each stage's parameters imply, plus the measured software
time. On the simulated patient, the time from each cued movement's onset in the simulator's hidden intent to the
command crossing half of that movement is measured as well.
"""

import argparse
import json
import os
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

NINAPRO_FILE = os.path.join("ninapro_db1_s2_e1", "S2_A1_E1.mat")


def lag_ms(truth: np.ndarray, estimate: np.ndarray, hop_ms: float, *, max_lag_ms: float = 500.0) -> float:
    """Return the lag (ms; positive: ``estimate`` behind ``truth``) maximising their cross-correlation, per hop.

    Parameters
    ----------
    truth, estimate : np.ndarray, shape (n_frames, n_columns)
        Sampled every ``hop_ms``; the columns' cross-correlations (means removed) are summed.
    """
    from neurohand.training.metrics import decoding_delay_ms

    return decoding_delay_ms(truth, estimate, hop_ms, max_lag_ms=max_lag_ms)


def score(truth: np.ndarray, estimate: np.ndarray, hop_ms: float) -> Dict[str, float]:
    """R^2 and Pearson r (means over fingers) and the delay of ``estimate`` (n, 5) against ``truth`` (n, 5)."""
    from neurohand.training.metrics import pearson_per_finger, r2_per_finger

    return {"r2": float(np.mean(r2_per_finger(truth, estimate))),
            "pearson_r": float(np.mean(pearson_per_finger(truth, estimate))),
            "delay_ms": lag_ms(truth, estimate, hop_ms)}


def replay(bundle, rec, *, engine: str = "numpy", post: Optional[Any] = None) -> Dict[str, np.ndarray]:
    """Decode ``rec`` chunk by chunk (one hop each) as the runtime does; each segment is a fresh start.

    ``post`` (a :class:`~neurohand.decoder.postprocess.PostConfig`) replaces the bundle's post-processing, for
    sweeps over the smoothing; None: the bundle's own (:meth:`Bundle.post_config`).

    Returns
    -------
    dict
        ``frame_end`` (n_frames,) sample of each frame's end in ``rec``; ``positions`` and ``commands`` (n_frames, 5);
        ``truth`` (n_frames, 5) the recorded positions at each frame's end; ``chunk_s`` (n_chunks,) the time each
        ``process`` call took.
    """
    from neurohand.decoder.postprocess import SAFE_POSTURE
    from neurohand.decoder.stream import StreamDecoder

    decoder = StreamDecoder(bundle, engine=engine, post=post)
    stream = decoder.new_stream()
    hop = decoder.hop_samples
    bounds = [int(s) for s in rec.segment_starts] + [rec.n_samples]
    ends: List[np.ndarray] = []
    pos: List[np.ndarray] = []
    cmd: List[np.ndarray] = []
    times: List[float] = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        decoder.reset(stream, command=SAFE_POSTURE if a == bounds[0] else None)  # the runtime starts from it
        for c in range(a, b, hop):
            chunk = rec.signals[c:min(c + hop, b)]
            t0 = time.perf_counter()
            out = decoder.process(stream, chunk)
            times.append(time.perf_counter() - t0)
            ends.append(out.frame_end_samples + a)
            pos.append(out.positions)
            cmd.append(out.commands)
    end = np.concatenate(ends)
    truth = np.stack([np.interp(end, rec.position_index, rec.positions[:, j]) for j in range(5)], axis=1)
    return {"frame_end": end, "positions": np.concatenate(pos), "commands": np.concatenate(cmd), "truth": truth,
            "chunk_s": np.asarray(times)}


def budget_ms(bundle, software_ms: float, *, post: Optional[Any] = None) -> Dict[str, float]:
    """Return the delay each stage implies, in ms, and their total.

    ``filter_group_delay``: the band-pass cascade's group delay at the band's geometric centre; ``window``: half the
    feature window (its centroid); ``hop``: up to one hop until the frame holding a change completes; ``smoothing``:
    the exponential smoother's delay for slow movements, ``hop (1 - a) / a``; ``software``: the measured median
    time to decode a chunk. Acquisition and the links (not modelled by a replay) are not included. ``post``: as in
    :func:`replay`.
    """
    from neurohand.decoder.filters import group_delay_ms
    from neurohand.decoder.postprocess import PostProcessor

    fc = bundle.feature_config
    sos = np.asarray(bundle.contract.get("filter_sos") or np.zeros((0, 6)), float).reshape(-1, 6)
    band = fc.filters.bandpass_hz
    centre = float(np.sqrt(band[0] * band[1])) if band else 0.1 * bundle.fs_hz
    alpha = PostProcessor(post or bundle.post_config(), hop_ms=fc.hop_ms).alpha
    out = {"filter_group_delay": group_delay_ms(sos, bundle.fs_hz, centre) if len(sos) else 0.0,
           "window": fc.window_ms / 2.0, "hop": fc.hop_ms,
           "smoothing": float(fc.hop_ms * (1.0 - alpha) / alpha), "software": float(software_ms)}
    out["total"] = float(sum(out.values()))
    return out


def half_movement_ms(run: Dict[str, np.ndarray], onsets: Sequence, fs_hz: float, glove_fs_hz: float) -> Dict[str, Any]:
    """From each movement's onset in the hidden intent to the command crossing half of it (its main finger).

    Parameters
    ----------
    run : dict
        :func:`replay`'s output.
    onsets : sequence of (sample, ramp_glove_samples, peak (5,))
        Movement onsets in the replayed recording's samples (the simulator's ``onsets``, mapped).

    Returns
    -------
    dict
        ``command_median_ms`` (onset to the command's crossing), ``intent_median_ms`` (onset to the intent's own
        crossing: half its minimum-jerk ramp), ``lag_median_ms`` (their difference per movement), ``movements`` used
        and ``missed`` (commands that never crossed within the ramp and one second of hold).
    """
    end, commands = run["frame_end"], run["commands"]
    cmd_ms, intent_ms, lags = [], [], []
    missed = 0
    for sample, ramp, peak in onsets:
        j = int(np.argmax(peak))
        ramp_ms = 1000.0 * ramp / glove_fs_hz
        horizon = sample + (ramp_ms + 1000.0) * fs_hz / 1000.0
        sel = np.flatnonzero((end >= sample) & (end <= horizon))
        if not len(sel):
            continue
        hit = sel[commands[sel, j] >= 0.5 * float(peak[j])]
        if not len(hit):
            missed += 1
            continue
        t_cmd = 1000.0 * (end[hit[0]] - sample) / fs_hz
        cmd_ms.append(t_cmd)
        intent_ms.append(ramp_ms / 2.0)
        lags.append(t_cmd - ramp_ms / 2.0)
    def med(values):
        return float(np.median(values)) if values else None

    return {"command_median_ms": med(cmd_ms), "intent_median_ms": med(intent_ms), "lag_median_ms": med(lags),
            "movements": len(cmd_ms), "missed": missed}


def _train_and_export(train_rec, folder: str, *, seed: int, epochs: Optional[int]):
    from neurohand.decoder.bundle import Bundle
    from neurohand.training.config import TrainConfig, with_overrides
    from neurohand.training.export import export_bundle
    from neurohand.training.train import train

    config = with_overrides(TrainConfig(), {"schedule.epochs": epochs}, seed=seed, device="cpu")
    train([train_rec], os.path.join(folder, "model"), config=config, progress=False, fit_classic=False,
          log=lambda m: None)
    export_bundle(os.path.join(folder, "model"), os.path.join(folder, "bundle"))
    return Bundle(os.path.join(folder, "bundle"))


def _result(data: str, bundle, test_rec, *, engine: str, seed: int) -> Dict[str, Any]:
    run = replay(bundle, test_rec, engine=engine)
    hop_ms = bundle.feature_config.hop_ms
    cmd = score(run["truth"], run["commands"], hop_ms)
    raw = score(run["truth"], run["positions"], hop_ms)
    ms = run["chunk_s"] * 1000.0
    return {"data": data, "seed": seed, "r2": cmd["r2"], "pearson_r": cmd["pearson_r"], "delay_ms": cmd["delay_ms"],
            "decoder_output": {"r2": raw["r2"], "pearson_r": raw["pearson_r"], "delay_ms": raw["delay_ms"]},
            "budget_ms": budget_ms(bundle, float(np.median(ms))),
            "software_ms": {"median": float(np.median(ms)), "p99": float(np.percentile(ms, 99))},
            "frames": int(len(run["frame_end"])), "hop_ms": hop_ms, "window_ms": bundle.feature_config.window_ms,
            "lead_ms": (bundle.contract.get("training") or {}).get("target_lead_ms"),
            "smoothing_ms": bundle.post_config().smoothing_ms,
            "engine": engine, "_run": run}


def bench_sim(*, minutes: float = 10.0, seed: int = 0, epochs: Optional[int] = None, engine: str = "numpy",
              n_channels: Optional[int] = None, fs_hz: Optional[float] = None) -> Dict[str, Any]:
    """Simulate a patient's session, train on all but its last two repetitions, replay those."""
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, hidden_intent, simulate_recording
    from neurohand.training.data import split_last_repetitions

    kw = {k: v for k, v in (("n_channels", n_channels), ("fs_hz", fs_hz)) if v is not None}
    cfg = SimulatorConfig(minutes=minutes, seed=seed, **kw)
    rec = simulate_recording(cfg)
    train_rec, test_rec, test_reps = split_last_repetitions(rec, 2)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _train_and_export(train_rec, tmp, seed=seed, epochs=epochs)
        out = _result("sim", bundle, test_rec, engine=engine, seed=seed)
    # movement onsets of the hidden intent, in the test recording's samples
    mask = np.isin(rec.repetitions, test_reps)
    new_index = np.cumsum(mask) - 1
    onsets = []
    for g, ramp, peak in hidden_intent(cfg)["onsets"]:
        s = min(int(g * cfg.fs_hz // cfg.glove_fs_hz), rec.n_samples - 1)
        if mask[s]:
            onsets.append((int(new_index[s]), ramp, peak))
    out["half_movement"] = half_movement_ms(out["_run"], onsets, cfg.fs_hz, cfg.glove_fs_hz)
    out["test_repetitions"] = test_reps
    out["minutes"] = minutes
    return out


def bench_ninapro(path: str, *, seed: int = 0, epochs: Optional[int] = None, engine: str = "numpy") -> Dict[str, Any]:
    """NinaPro DB1 S2 E1: train on repetitions 1-7, replay 8-10."""
    from neurohand.training.importers import import_ninapro

    train_rec = import_ninapro(path, reps=range(1, 8))
    test_rec = import_ninapro(path, reps=[8, 9, 10])
    with tempfile.TemporaryDirectory() as tmp:
        bundle = _train_and_export(train_rec, tmp, seed=seed, epochs=epochs)
        out = _result("ninapro", bundle, test_rec, engine=engine, seed=seed)
    out["test_repetitions"] = [8, 9, 10]
    return out


def bench_latency(*, data_dir: Optional[str] = None, seeds: Sequence[int] = (0,), minutes: float = 10.0,
                  epochs: Optional[int] = None, engine: str = "numpy", sim_channels: Optional[int] = None,
                  sim_fs_hz: Optional[float] = None) -> Dict[str, Any]:
    """Run the benchmark on the simulated patient and, with ``data_dir``, on NinaPro DB1 S2 E1; one row per seed.

    Returns
    -------
    dict
        ``{"benchmark": "latency", "results": [{"data": "sim"|"ninapro", "seed", "r2", "pearson_r", "delay_ms",
        "budget_ms": {...}, "decoder_output": {...}, ...}], "skipped": [{"data", "reason"}]}``; sim rows add
        ``half_movement``.
    """
    from neurohand.decoder.errors import InvalidValueError

    results, skipped = [], []
    ninapro = None
    if data_dir is None:
        skipped.append({"data": "ninapro", "reason": "no --data folder given (NinaPro DB1 S2 E1 is read from "
                        "DATA/{})".format(NINAPRO_FILE)})
    else:
        ninapro = os.path.join(data_dir, NINAPRO_FILE)
        if not os.path.isfile(ninapro):
            raise InvalidValueError("Invalid value for '--data': a folder holding {}, got {!r} (no such file)".format(
                NINAPRO_FILE, data_dir))
    for seed in seeds:
        results.append(bench_sim(minutes=minutes, seed=seed, epochs=epochs, engine=engine, n_channels=sim_channels,
                                 fs_hz=sim_fs_hz))
        if ninapro is not None:
            results.append(bench_ninapro(ninapro, seed=seed, epochs=epochs, engine=engine))
    for r in results:
        r.pop("_run", None)
    return {"benchmark": "latency", "engine": engine, "seeds": list(seeds), "epochs": epochs, "results": results,
            "skipped": skipped}


def register(bsub) -> None:
    """Add ``neurohand bench latency`` to the ``bench`` subcommands."""
    p = bsub.add_parser("latency", help="replay held-out data through the device path; score the commands against "
                        "the true positions (R2, delay) and add up the latency budget")
    p.add_argument("--data", default=None, help="folder with ninapro_db1_s2_e1/ (e.g. ../shared/data); without it "
                   "only the simulated patient is measured")
    p.add_argument("--seeds", default="0", help="training seeds, e.g. 0-2 (default 0)")
    p.add_argument("--minutes", type=float, default=10.0, help="simulated session length (default 10)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the training default)")
    p.add_argument("--engine", default="numpy", choices=["numpy", "onnxruntime"], help="default numpy")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_bench_latency)


def _bench_latency(args: argparse.Namespace) -> int:
    from neurohand.decoder.validation import check_positive, parse_index_ranges

    check_positive("--minutes", args.minutes)
    seeds = parse_index_ranges("--seeds", args.seeds)
    out = bench_latency(data_dir=args.data, seeds=seeds, minutes=args.minutes, epochs=args.epochs,
                        engine=args.engine)
    if args.json:
        print(json.dumps(out))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="commands against the true positions ({} engine)".format(out["engine"]))
    for col in ("data", "seed", "R2", "r", "delay ms", "before post R2/ms", "onset->half ms (intent)"):
        t.add_column(col, justify="right")
    u = Table(title="latency budget, ms")
    for col in ("data", "seed", "filter", "window/2", "hop", "smoothing", "software", "total"):
        u.add_column(col, justify="right")
    for r in out["results"]:
        b, h, d = r["budget_ms"], r.get("half_movement") or {}, r["decoder_output"]
        t.add_row(r["data"], str(r["seed"]), "{:.3f}".format(r["r2"]), "{:.3f}".format(r["pearson_r"]),
                  "{:.0f}".format(r["delay_ms"]), "{:.3f}/{:.0f}".format(d["r2"], d["delay_ms"]),
                  "-" if h.get("command_median_ms") is None else "{:.0f} ({:.0f})".format(
                      h["command_median_ms"], h["intent_median_ms"]))
        u.add_row(r["data"], str(r["seed"]), *["{:.1f}".format(b[k]) for k in (
            "filter_group_delay", "window", "hop", "smoothing", "software", "total")])
    Console().print(t)
    Console().print(u)
    for s in out["skipped"]:
        print("skipped {}: {}".format(s["data"], s["reason"]))
    return 0
