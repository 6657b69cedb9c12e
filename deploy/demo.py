"""``neurohand demo``: the main job end to end on a simulated patient.

Simulate a patient's session, write and re-read the session file, stream it through the causal filters and
feature extractor exactly as the device does (10 ms chunks; checked equal to the offline path), train the
recurrent decoder and the classic baselines on all but the last two repetitions, export the bundle, decode the
held-out repetitions frame by frame with the device engine, and finally run the standalone runtime live (real-time
pacing) into a simulated hand on a pseudo-terminal, printing accuracy, latency and how well the hand follows.
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
    p.add_argument("--minutes", type=float, default=4.0, help="simulated session length (default 4)")
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--hidden", type=int, default=128, help="recurrent state size (default 128)")
    p.add_argument("--channels", type=int, default=16, help="simulated recording sites (default 16)")
    p.add_argument("--fs-hz", type=float, default=10000.0, help="simulated sample rate (default 10000)")
    p.add_argument("--live-seconds", type=float, default=10.0, help="live decoding into the hand (default 10)")
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
    cfg = SimulatorConfig(minutes=args.minutes, seed=args.seed, n_channels=args.channels, fs_hz=args.fs_hz)
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
    ok = _train_export_decode(args, rec, console)
    return 0 if (same and ok) else 1


def _train_export_decode(args: argparse.Namespace, rec, console) -> bool:
    import numpy as np
    from rich.table import Table

    from decoder.bundle import Bundle
    from decoder.engines import create_engine
    from deploy.export import export_bundle
    from training.evaluate import evaluate
    from training.metrics import r2_per_finger
    from training.train import TrainConfig, train

    reps = sorted(int(r) for r in np.unique(rec.repetitions) if r > 0)
    if len(reps) < 4:
        console.print("[red]--minutes too short: need at least 4 repetitions to train, validate and test[/red]")
        return False
    test_reps = reps[-2:]
    train_rec = rec.select_samples(~np.isin(rec.repetitions, test_reps) & (rec.repetitions > 0))
    test_rec = rec.select_samples(np.isin(rec.repetitions, test_reps))
    model_dir = os.path.join(args.out_dir, "model")
    bundle_dir = os.path.join(args.out_dir, "bundle")
    console.rule("[bold]4. Train the decoder (repetitions {}), test on {}".format(
        "{}-{}".format(reps[0], reps[-3]), test_reps))
    t0 = time.perf_counter()
    cfg = TrainConfig(epochs=args.epochs, hidden=args.hidden, seed=args.seed, device="cpu")
    res = train([train_rec], model_dir, config=cfg, progress=True, log=lambda m: console.print(m) if m else None)
    console.print("trained in {:.0f} s (best epoch {}, refit {} epochs)".format(
        time.perf_counter() - t0, res.best_epoch, res.refit_epochs))
    ev = evaluate(model_dir, [test_rec], report_dir=os.path.join(args.out_dir, "report"))
    t = Table("decoder", "R2 mean", "Pearson r", "delay ms", "class accuracy")
    for name, r in ev["decoders"].items():
        t.add_row(name, *["-" if r.get(k) is None else "{:.3f}".format(r[k]) for k in
                          ("r2_mean", "pearson_r_mean", "delay_ms", "accuracy")])
    console.print(t)
    console.print("report: {}".format(ev["report"]))

    console.rule("[bold]5. Export and decode the held-out repetitions frame by frame on the device engine")
    export_bundle(model_dir, bundle_dir)
    bundle = Bundle(bundle_dir)
    bundle.check_source(fs_hz=test_rec.fs_hz, n_channels=test_rec.n_channels)
    engine = create_engine(bundle, "auto")
    truth, decoded, step_us = [], [], []
    for a, b in test_rec.segments():
        ex = bundle.feature_extractor()
        fstate, estate = ex.new_state(), engine.new_state()
        for i in range(a, b, ex.hop_samples):
            frames, fstate = ex.process(fstate, test_rec.signals[i:min(i + ex.hop_samples, b)])
            for f in frames:
                t1 = time.perf_counter()
                out, estate = engine.step(estate, f)
                step_us.append((time.perf_counter() - t1) * 1e6)
                decoded.append(out.positions)
            if len(frames):
                ends = a + ex.frame_end_samples(fstate.n_frames - len(frames), len(frames))
                truth.extend(test_rec.positions_at(ends))
    r2 = r2_per_finger(np.array(truth), np.array(decoded))
    t = Table(show_header=False)
    t.add_row("bundle", bundle_dir)
    t.add_row("engine", engine.name)
    t.add_row("frames decoded", str(len(decoded)))
    t.add_row("R2 per finger (live path)", " ".join("{:.2f}".format(v) for v in r2))
    t.add_row("R2 mean (live path)", "{:.3f} (offline evaluation: {:.3f})".format(
        float(np.mean(r2)), ev["decoders"]["gru"]["r2_mean"]))
    t.add_row("engine step", "median {:.0f} us, p99 {:.0f} us".format(np.median(step_us),
                                                                     np.percentile(step_us, 99)))
    console.print(t)
    same = abs(float(np.mean(r2)) - ev["decoders"]["gru"]["r2_mean"]) < 1e-3
    return same and _live_into_hand(args, bundle, test_rec, console)


def _live_into_hand(args: argparse.Namespace, bundle, test_rec, console) -> bool:
    import numpy as np
    from rich.table import Table

    from deploy.runtime import HandSink, Runtime
    from deploy.sources import RecordingSource
    from firmware_bridge.sim_hand import SimHand

    console.rule("[bold]6. Live: the runtime drives the simulated hand over a serial pseudo-terminal")
    hop = int(round(test_rec.fs_hz * bundle.feature_config.hop_ms / 1000.0))
    with SimHand() as hand:
        sink = HandSink(hand.port)
        rt = Runtime(bundle, RecordingSource(test_rec, chunk_samples=hop), sink, engine="auto")
        errors = []
        write = sink.write

        def tracked(cmd, probs=None):
            ok = write(cmd, probs)
            errors.append(np.abs(hand.positions / 1000.0 - cmd).max())
            return ok

        sink.write = tracked
        stats = rt.run(seconds=args.live_seconds)
    s = stats.summary()
    t = Table(show_header=False)
    t.add_row("hand port", hand.port)
    t.add_row("frames (real time)", "{} in {:g} s".format(s["frames"], args.live_seconds))
    t.add_row("software latency", "median {:.2f} ms, p99 {:.2f} ms (last sample in -> command written)".format(
        s["latency_ms"]["median"], s["latency_ms"]["p99"]))
    t.add_row("hand tracking", "median |hand - command| {:.3f} (speed-limited motors)".format(
        float(np.median(errors)) if errors else float("nan")))
    t.add_row("faults", str(s["faults"] or "none"))
    t.add_row("end", "safe posture sent, port closed")
    console.print(t)
    return s["frames"] > 0
