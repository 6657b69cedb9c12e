"""``neurohand demo``: the main job end to end on a simulated patient.

Today: simulate a patient, write and re-read the session file, stream it through the causal filters and
feature extractor exactly as the live runtime will (in 10 ms chunks), check that this equals the offline
path, and print what the features say about each finger.
"""

from __future__ import annotations

import argparse
import os
import time


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``neurohand demo``."""
    p = sub.add_parser("demo", help="simulate a patient and run the decoding front end on it",
                       description="Simulate a patient, record a session file, and stream it through the filters "
                       "and features the device uses.")
    p.add_argument("--out-dir", default="demo_out", help="where files go (default demo_out/)")
    p.add_argument("--minutes", type=float, default=1.0, help="simulated session length (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from decoder.features import FeatureExtractor, config_for_recording
    from decoder.filters import group_delay_ms
    from decoder.recording import read_recording, write_recording
    from firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

    console = Console()
    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, "patient_seed{}_day1.h5".format(args.seed))

    t0 = time.perf_counter()
    cfg = SimulatorConfig(minutes=args.minutes, seed=args.seed)
    rec = simulate_recording(cfg)
    write_recording(rec, path)
    rec = read_recording(path)
    console.rule("[bold]1. Simulated patient")
    t = Table(show_header=False)
    for k, v in rec.summary().items():
        t.add_row(str(k), str(v))
    t.add_row("file", path)
    t.add_row("simulated in", "{:.1f} s".format(time.perf_counter() - t0))
    console.print(t)

    fcfg = config_for_recording(rec)
    ex = FeatureExtractor(fcfg, fs_hz=rec.fs_hz, n_channels=rec.n_channels)
    chunk = ex.hop_samples
    state = ex.new_state()
    frames = []
    t1 = time.perf_counter()
    for i in range(0, rec.n_samples, chunk):
        f, state = ex.process(state, rec.signals[i:i + chunk])
        frames.append(f)
    dt = time.perf_counter() - t1
    online = np.concatenate(frames)
    offline = ex.transform(rec.signals)
    same = online.shape == offline.shape and np.allclose(online, offline, rtol=1e-5, atol=1e-5)
    console.rule("[bold]2. Causal filters and features, streamed as on the device")
    t = Table(show_header=False)
    t.add_row("filters", "{} (causal, group delay {:.2f} ms at 1 kHz)".format(
        fcfg.filters.to_dict(), group_delay_ms(ex.filter_bank.sos, rec.fs_hz, 1000.0)))
    t.add_row("window / hop", "{:g} ms / {:g} ms ({} / {} samples)".format(
        fcfg.window_ms, fcfg.hop_ms, ex.window_samples, ex.hop_samples))
    t.add_row("features", "{} per channel, {} per frame".format(", ".join(fcfg.features), ex.n_features))
    t.add_row("frames", "{} ({} per second)".format(len(online), 1000.0 / fcfg.hop_ms))
    t.add_row("streamed in", "{} chunks of {} samples, real-time factor {:.4f}".format(
        -(-rec.n_samples // chunk), chunk, dt / rec.duration_s))
    t.add_row("online == offline", "[green]yes[/green]" if same else "[red]NO[/red]")
    console.print(t)

    ends = ex.frame_end_samples(0, len(online))
    pos = rec.positions_at(ends)
    names = ex.feature_names
    console.rule("[bold]3. What the features say about each finger")
    t = Table("finger", "best feature", "Pearson r", "range of position")
    z = (online - online.mean(0)) / (online.std(0) + 1e-12)
    for j, finger in enumerate(("thumb", "index", "middle", "ring", "little")):
        p = pos[:, j]
        r = z.T @ ((p - p.mean()) / (p.std() + 1e-12)) / len(p)
        k = int(np.nanargmax(np.abs(r)))
        t.add_row(finger, names[k], "{:+.2f}".format(r[k]), "{:.2f}..{:.2f}".format(p.min(), p.max()))
    console.print(t)
    console.print("Next issues extend this demo: train, export, and decode live into the simulated hand.")
    return 0 if same else 1
