"""``neurohand demo``: the main job end to end on a simulated patient.

A simulated patient is calibrated exactly as a clinician would with ``neurohand calibrate``: the cue protocol,
labels from a simulated data glove on the mirroring hand read over its own pseudo-terminal, the session recorded
crash-safely, the quality verdict, training on all but the last repetition with the classic baselines, the report,
acceptance into the patient's model store (which exports the bundle). The demo then checks that the device's
streaming front end equals the offline one on the recorded session, decodes the held-out repetition frame by frame
with the accepted bundle on the device engine, and finally runs the standalone runtime live (real-time pacing) into
a simulated hand on a pseudo-terminal, printing accuracy, latency and how well the hand follows.
"""

import argparse
import os
import time


def register(sub: "argparse._SubParsersAction") -> None:
    """Add ``neurohand demo``."""
    p = sub.add_parser("demo", help="simulate a patient, calibrate, accept, export and decode live into a hand",
                       description="Simulate a patient, calibrate with the cue protocol, accept the model, export it "
                       "and decode live into a simulated hand.")
    p.add_argument("--out-dir", default="demo_out", help="where files go (default demo_out/)")
    p.add_argument("--minutes", type=float, default=4.0,
                   help="calibration length: as many cue protocol repetitions as fit (default 4: all 5)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: neurohand train's)")
    p.add_argument("--hidden", type=int, default=None, help="recurrent state size (default: neurohand train's)")
    p.add_argument("--channels", type=int, default=16, help="simulated recording sites (default 16)")
    p.add_argument("--fs-hz", type=float, default=10000.0, help="simulated sample rate (default 10000)")
    p.add_argument("--live-seconds", type=float, default=10.0, help="live decoding into the hand (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated patient and the training")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo; returns the exit code."""
    import shutil

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from neurohand.calibration.model_store import ModelStore
    from neurohand.calibration.options import CalibrateOptions, DeviceOptions, SimulatorOptions, TrainingOptions
    from neurohand.calibration.workflow import run_calibration
    from neurohand.decoder.feature_config import config_for_recording
    from neurohand.decoder.features import FeatureExtractor
    from neurohand.decoder.filters import group_delay_ms
    from neurohand.decoder.session_file import read_recording

    console = Console()
    store_dir = os.path.join(args.out_dir, "store")
    if os.path.isdir(os.path.join(store_dir, "demo")):
        shutil.rmtree(os.path.join(store_dir, "demo"))  # each demo run calibrates a new patient
    console.rule("[bold]1. Calibration session: simulated patient {}, cue protocol, data-glove labels".format(
        args.seed))
    t0 = time.perf_counter()
    opts = CalibrateOptions(patient="demo", store=store_dir, tui=console.is_terminal, yes=True,
                            accept_worse=True, minutes=args.minutes,  # a walk-through: no patient
                            devices=DeviceOptions(source="sim", labels="glove:sim"),
                            simulator=SimulatorOptions(seed=args.seed, channels=args.channels, fs_hz=args.fs_hz,
                                                       fast=True),
                            training=TrainingOptions(epochs=args.epochs, hidden=args.hidden, seed=args.seed))
    outcome = run_calibration(opts, console=console)
    if outcome.version is None:
        console.print("[red]the model was not accepted[/red]")
        return 1
    store = ModelStore(store_dir, "demo")
    console.print("calibrated in {:.0f} s: session {}, accepted {} ({})".format(
        time.perf_counter() - t0, outcome.session, outcome.version, store.bundle_path()))
    rec = read_recording(outcome.session)

    console.rule("[bold]2. The device's streaming front end on the recorded session")
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
    t = Table("finger", "best feature", "Pearson r", "range of position", title="what the features say about each "
              "finger (glove positions)")
    z = (online - online.mean(0)) / (online.std(0) + 1e-12)
    for j, finger in enumerate(("thumb", "index", "middle", "ring", "little")):
        p = pos[:, j]
        r = z.T @ ((p - p.mean()) / (p.std() + 1e-12)) / len(p)
        k = int(np.nanargmax(np.abs(r)))
        t.add_row(finger, names[k], "{:+.2f}".format(r[k]), "{:.2f}..{:.2f}".format(p.min(), p.max()))
    console.print(t)
    decoded_same = _decode_held_out(store.bundle_path(), outcome, console)
    live = _live_into_hand(args, _bundle(store.bundle_path()), outcome.test_recording, console)
    gru = outcome.evaluation["decoders"]["gru"]
    console.rule("[bold]Summary")
    console.print("patient model {}: held-out finger R2 {:.3f} (Wiener {:.3f}), class accuracy {:.3f}; live software "
                  "latency median {:.2f} ms, p99 {:.2f} ms; front end online == offline: {}; device engine == "
                  "evaluation: {}".format(outcome.version, gru["r2_mean"],
                                          outcome.evaluation["decoders"]["wiener"]["r2_mean"], gru["accuracy"],
                                          live["latency_ms"]["median"], live["latency_ms"]["p99"], same,
                                          decoded_same))
    return 0 if (same and decoded_same and live["frames"] > 0) else 1


def _bundle(path: str):
    from neurohand.decoder.bundle import Bundle

    return Bundle(path)


def _decode_held_out(bundle_dir: str, outcome, console) -> bool:
    """Decode the held-out repetition frame by frame with the accepted bundle; True if it matches the evaluation."""
    import numpy as np
    from rich.table import Table

    from neurohand.decoder.bundle import Bundle
    from neurohand.decoder.stream import StreamDecoder
    from neurohand.training.metrics import r2_per_finger

    test_rec = outcome.test_recording
    ev = outcome.evaluation
    console.rule("[bold]3. The accepted bundle decodes the held-out repetition frame by frame on the device engine")
    bundle = Bundle(bundle_dir)
    bundle.check_source(fs_hz=test_rec.fs_hz, n_channels=test_rec.n_channels)
    decoder = StreamDecoder(bundle, engine="auto")
    engine = decoder.engine
    stream = decoder.new_stream()  # the session's running statistics carry across its segments
    truth, decoded, step_us = [], [], []
    hop = decoder.hop_samples
    for a, b in test_rec.segments():
        decoder.reset(stream)
        for i in range(a, b, hop):
            t1 = time.perf_counter()
            out = decoder.process(stream, test_rec.signals[i:min(i + hop, b)])
            if len(out.positions):
                step_us.append((time.perf_counter() - t1) * 1e6 / len(out.positions))
                decoded.extend(out.positions)
                truth.extend(test_rec.positions_at(a + out.frame_end_samples))
    r2 = r2_per_finger(np.array(truth), np.array(decoded))
    t = Table(show_header=False)
    t.add_row("bundle", bundle_dir)
    t.add_row("engine", engine.name)
    t.add_row("frames decoded", str(len(decoded)))
    t.add_row("R2 per finger (live path)", " ".join("{:.2f}".format(v) for v in r2))
    t.add_row("R2 mean (live path)", "{:.3f} (offline evaluation: {:.3f})".format(
        float(np.mean(r2)), ev["decoders"]["gru"]["r2_mean"]))
    t.add_row("decode a hop", "median {:.0f} us, p99 {:.0f} us (filters to commands)".format(
        np.median(step_us), np.percentile(step_us, 99)))
    console.print(t)
    return abs(float(np.mean(r2)) - ev["decoders"]["gru"]["r2_mean"]) < 1e-3


def _live_into_hand(args: argparse.Namespace, bundle, test_rec, console) -> dict:
    import numpy as np
    from rich.table import Table

    from neurohand.deploy.runtime import HandSink, Runtime
    from neurohand.deploy.sources import open_source
    from neurohand.firmware_bridge.sim_hand import SimHand, track_following

    console.rule("[bold]4. Live: the runtime drives the simulated hand over a serial pseudo-terminal")
    with SimHand() as hand:
        sink = HandSink(hand.port)
        source = open_source("replay:held-out repetition", recording=test_rec, chunk_samples=bundle.hop_samples)
        rt = Runtime(bundle, source, sink)
        errors = track_following(sink, hand)
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
    return s
