"""The runtime loop: replay -> decoder -> sinks, faults to the safe posture and back, over a real pty hand."""

import time

import numpy as np
import pytest

from neurohand.decoder.postprocess import PostConfig, PostProcessor
from neurohand.decoder.signal_quality import QualityConfig, QualityMonitor
from neurohand.deploy.runtime import SAFE, HandSink, NoneSink, Runtime, RuntimeConfig
from neurohand.deploy.sources import RecordingSource
from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording
from neurohand.firmware_bridge.protocol import HandState
from neurohand.firmware_bridge.sim_hand import track_following


@pytest.fixture
def rec(short_rec):
    return short_rec


@pytest.fixture
def bundle(adapted_bundle):  # adapting within seconds, so the 6 s recording shows it
    return adapted_bundle


class RecordingSink(NoneSink):
    def __init__(self):
        self.commands, self.safe_calls = [], []

    def write(self, command, probabilities=None):
        self.commands.append((time.monotonic(), np.array(command)))
        return True

    def safe(self):
        self.safe_calls.append(time.monotonic())
        return True


def chunk(rec, bundle):
    return int(rec.fs_hz * bundle.feature_config.hop_ms / 1000)


def test_replay_decodes_every_frame(rec, bundle):
    sink = RecordingSink()
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=True), sink,
                 config=RuntimeConfig(engine="numpy"))
    stats = rt.run()
    expected = len(bundle.feature_extractor().transform(rec.signals))
    assert stats.frames == expected == len(sink.commands)
    assert stats.state != SAFE and not stats.faults
    s = stats.summary()
    assert 0 < s["latency_ms"]["median"] <= s["latency_ms"]["p99"]
    assert sink.safe_calls  # the loop always ends in the safe posture


def test_live_decoding_adapts_exactly_as_the_offline_path(rec, bundle):
    from neurohand.decoder.engines import create_engine
    from neurohand.training.data import adapt_frames, build_frames

    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=37, fast=True), NoneSink(), record_frames=True,
                 config=RuntimeConfig(engine="numpy"))
    rt.run()
    live = np.array([f["positions"] for f in rt.frames])
    offline = adapt_frames(build_frames([rec], bundle.feature_config), bundle.feature_adapter()).features
    unadapted = bundle.feature_extractor().transform(rec.signals)
    assert np.max(np.abs(offline - unadapted)) > 0.1  # the adaptation does change these frames
    eng = create_engine(bundle, "numpy")
    for frames, close in ((offline, True), (unadapted, False)):
        st, pos = eng.new_state(), []
        for f in frames:
            out, st = eng.step(st, f)
            pos.append(out.positions)
        assert np.allclose(live, np.array(pos), atol=1e-5) == close


def test_a_glitch_faults_and_decoding_resumes_with_the_adaptation_kept(rec, bundle):
    # samples of 1e25 for three hops: whatever they do downstream, the hand goes safe, decoding comes back, and the
    # running feature statistics (kept across the fault: they describe the electrodes) stay usable
    def inject(i, x):
        return x * 1e25 if i in (150, 151, 152) else x

    sink = RecordingSink()
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=True, inject=inject), sink,
                 record_frames=True, config=RuntimeConfig(engine="numpy"))
    with np.errstate(over="ignore", invalid="ignore"):  # the features do overflow: that is the fault to catch
        stats = rt.run()
    assert stats.safe_events and stats.safe_events[0]["kind"] == "signal" and stats.state == "running"
    assert np.all(np.isfinite(rt.astate.mean)) and np.all(np.isfinite(rt.astate.var))
    assert rt.astate.n_frames >= stats.frames  # one running estimate across the fault, never restarted
    clean = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=True), NoneSink(),
                    record_frames=True, config=RuntimeConfig(engine="numpy"))
    clean.run()
    last, last_clean = (np.array([f["positions"] for f in r.frames[-50:]]) for r in (rt, clean))
    assert np.all(np.isfinite(last))
    # 3 s (three horizons) after the glitch the decoded positions are close to a clean run's again
    assert np.max(np.abs(last - last_clean)) < 0.05


def test_runtime_refuses_a_mismatched_source(rec, bundle):
    from neurohand.decoder.bundle import BundleError

    other = simulate_recording(SimulatorConfig(minutes=0.02, n_channels=6, fs_hz=4000.0, seed=2))
    with pytest.raises(BundleError, match="expects 4"):
        Runtime(bundle, RecordingSource(other, chunk_samples=40, fast=True), NoneSink())


@pytest.mark.parametrize("fault", ["nan", "stall", "flat", "engine"])
def test_faults_go_safe_within_100ms_and_recover(rec, bundle, fault, monkeypatch):
    bad_chunks = set(range(150, 160))

    def inject(i, x):
        if i in bad_chunks:
            if fault == "nan":
                x = x.copy()
                x[::3, 1] = np.nan
                return x
            if fault == "stall":
                return None
            if fault == "flat":
                x = x.copy()
                x[:, 2] = 0.0
                return x
        return x

    n = chunk(rec, bundle)
    src = RecordingSource(rec, chunk_samples=n, fast=False, inject=inject if fault != "engine" else None,
                          stall_s=0.15)
    sink = RecordingSink()
    q = QualityConfig(flat_window_s=0.05) if fault == "flat" else QualityConfig()
    rt = Runtime(bundle, src, sink, config=RuntimeConfig(engine="numpy", quality=q))
    if fault == "engine":
        real = rt.engine.step
        calls = {"n": 0}

        def flaky(state, frame):
            calls["n"] += 1
            if 120 <= calls["n"] < 125:
                raise RuntimeError("engine exploded")
            return real(state, frame)

        monkeypatch.setattr(rt.engine, "step", flaky)
    if fault == "flat":
        # make channel 2 flat for a long stretch so the flat detector's window fills
        bad_chunks.update(range(150, 175))
    stats = rt.run(seconds=3.5)
    assert stats.safe_events, "no fault was detected"
    ev = stats.safe_events[0]
    kind = {"nan": "signal", "stall": "stall", "flat": "signal", "engine": "engine"}[fault]
    assert ev["kind"] == kind
    # the safe posture went out at once: before any later command, and within 100 ms of the fault
    first_safe = min(t for t in sink.safe_calls if t >= ev["time"])
    assert first_safe - ev["time"] < 0.1
    assert not [t for t, _ in sink.commands if ev["time"] <= t < first_safe]
    later = [t for t, _ in sink.commands if t > first_safe]
    assert later, "decoding never resumed after the fault cleared"
    assert stats.state == "running"  # the cause cleared and the loop resumed by itself


def test_hand_follows_decoded_commands_over_a_pty(rec, bundle, Hand):
    with Hand() as hand:
        sink = HandSink(hand.port)
        rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=False), sink,
                     config=RuntimeConfig(engine="onnxruntime", post=PostConfig(rest_gate=1.0)))
        seen = []
        orig_write = sink.write

        def write(cmd, probs=None):
            ok = orig_write(cmd, probs)
            seen.append((time.monotonic(), np.array(cmd), hand.positions.copy()))
            return ok

        sink.write = write
        rt.run(seconds=2.0)
        assert len(seen) > 100
        # after the first second, the hand is where the decoder told it to be (speed-limited, 1 frame behind)
        errs = [np.abs(h / 1000.0 - c).max() for t, c, h in seen[100:]]
        assert np.median(errs) < 0.05
        time.sleep(0.05)
        # the run ended with the safe posture, so the hand heads there
        assert np.allclose(hand.target, 100)
        assert hand.state in (HandState.RUNNING, HandState.SAFE)


def test_stop_request_sends_safe_posture_first(rec, bundle):
    sink = RecordingSink()
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=False), sink,
                 config=RuntimeConfig(engine="numpy"))
    rt.request_stop()  # what SIGTERM and Ctrl-C do
    stats = rt.run(seconds=2)
    assert stats.state == "stopped" and sink.safe_calls and not sink.commands


def test_postprocessing_physics():
    post = PostProcessor(PostConfig(smoothing_ms=0.0, deadband=0.0, max_speed_per_s=1.0, rest_gate=0.9), hop_ms=10)
    s = post.new_state()
    cmd, s = post.step(s, np.zeros(5))
    for _ in range(10):
        cmd, s = post.step(s, np.ones(5))
    np.testing.assert_allclose(cmd, 0.1, atol=1e-9)  # 1.0 per second for 100 ms
    held, s = post.step(s, np.zeros(5), rest_probability=0.95)
    np.testing.assert_allclose(held, cmd)  # confident rest: hold
    smooth = PostProcessor(PostConfig(smoothing_ms=100.0, deadband=0.0, max_speed_per_s=100.0), hop_ms=10)
    s = smooth.new_state()
    smooth.step(s, np.zeros(5))
    c, s = smooth.step(smooth.step(s, np.zeros(5))[1], np.ones(5))
    np.testing.assert_allclose(c, 1 - np.exp(-0.1), rtol=1e-6)  # one exponential step of tau = 100 ms
    with pytest.raises(ValueError, match="finger_min and finger_max"):
        PostConfig(finger_min=(0.5,) * 5, finger_max=(0.4,) * 5)


def test_quality_monitor_names_the_channel():
    q = QualityMonitor(QualityConfig(saturation=100.0, flat_window_s=0.1), fs_hz=100.0, n_channels=3)
    x = np.random.default_rng(0).normal(size=(20, 3))
    x[:, 1] = 200.0
    msgs = q.check(x)
    assert any("saturated channel(s) 1" in m for m in msgs)
    x[:, 1] = 0.0
    x[:, 2] = np.nan
    msgs = q.check(x)
    assert any("NaN or inf samples on channel(s) 2" in m for m in msgs)


def test_flat_detector_matches_the_std_of_the_window_at_any_chunking(rng):
    """The flat window's standard deviation, combined from per-chunk summaries, equals numpy's over the same samples
    (a DC offset of 1e4 included), and a channel that stops moving is flagged once a full window of it has passed."""
    fs_hz = 1000.0
    q = QualityMonitor(QualityConfig(flat_window_s=0.1, rail_fraction=None), fs_hz=fs_hz, n_channels=3)
    x = rng.normal(size=(700, 3)) + np.array([1e4, 0.0, -3.0])
    x[400:, 2] = -3.0  # channel 2 disconnected from sample 400
    kept, i, sizes = [], 0, rng.integers(1, 37, size=200)
    for n in sizes:
        chunk = x[i:i + n]
        if not len(chunk):
            break
        i += len(chunk)
        kept.append(chunk)
        std = q._window_std(chunk.astype(np.float32))
        if std is None:
            assert i < 100
            continue
        n_back, k = 0, 0
        while n_back < 100:  # the latest whole chunks that cover the 100-sample window
            k += 1
            n_back += len(kept[-k])
        covered = np.concatenate(kept[-k:]).astype(np.float32).astype(np.float64)
        np.testing.assert_allclose(std, covered.std(axis=0), rtol=1e-6, atol=1e-9)
    q2 = QualityMonitor(QualityConfig(flat_window_s=0.1, rail_fraction=None), fs_hz=fs_hz, n_channels=3)
    flagged_at = None
    for start in range(0, 700, 10):
        if any("flat channel(s) 2 " in m for m in q2.check(x[start:start + 10])) and flagged_at is None:
            flagged_at = start + 10
    assert flagged_at == 500  # 100 samples of a constant channel after it stopped at 400


def test_end_to_end_interface_runtime_hand_over_two_ptys(rec, bundle, Hand):
    """Simulated interface -> runtime -> simulated hand, over pyserial on real pseudo-terminals."""
    from neurohand.firmware_bridge.interface_link import InterfaceSource
    from neurohand.firmware_bridge.sim_interface import SimInterface

    with SimInterface(rec, corrupt_every=25) as iface, Hand() as hand:
        src = InterfaceSource(iface.port)
        assert src.fs_hz == rec.fs_hz and src.n_channels == rec.n_channels
        sink = HandSink(hand.port)
        rt = Runtime(bundle, src, sink, config=RuntimeConfig(engine="onnxruntime", post=PostConfig(rest_gate=1.0)))
        track = track_following(sink, hand)
        stats = rt.run(seconds=2.5)
        src.close()
        assert stats.frames > 150
        assert np.median(track[50:]) < 0.05  # the hand follows the decoded commands
        assert src.parser.stats.frames_bad >= 3  # corrupted frames were dropped and counted
        assert src.dropped_samples > 0  # ... and show up as gaps in the sample count
        assert stats.summary()["dropped_samples"] == src.dropped_samples
        assert "signal" not in stats.faults  # scaled int16 samples are clean


def test_interface_stall_goes_safe_and_recovers(rec, bundle):
    from neurohand.firmware_bridge.interface_link import InterfaceSource
    from neurohand.firmware_bridge.sim_interface import SimInterface

    with SimInterface(rec) as iface:
        src = InterfaceSource(iface.port, stall_timeout_s=0.05)
        sink = RecordingSink()
        rt = Runtime(bundle, src, sink, config=RuntimeConfig(engine="numpy"))
        import threading

        def stall():
            time.sleep(0.8)
            iface.pause(True)
            time.sleep(0.4)
            iface.pause(False)

        threading.Thread(target=stall, daemon=True).start()
        stats = rt.run(seconds=2.5)
        src.close()
    assert stats.faults.get("stall", 0) >= 1
    ev = [e for e in stats.safe_events if e["kind"] == "stall"][0]
    assert any(0 <= t - ev["time"] < 0.1 for t in sink.safe_calls)
    assert stats.state == "running" and any(t > ev["time"] + 0.3 for t, _ in sink.commands)


def test_live_view_renders_to_a_captured_console(rec, bundle):
    import io

    from rich.console import Console

    from neurohand.deploy.live_view import LiveView

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    view = LiveView(bundle.class_names, channel_names=rec.channel_names, units="uV", console=console, refresh_hz=1000)
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle), fast=True), NoneSink(),
                 on_chunk=view.on_chunk, config=RuntimeConfig(engine="numpy"))
    with view:
        rt.run()
    text = buf.getvalue()
    for word in ("thumb", "little", "latency", "median", "signal level", "ulnar1", "uV", "class"):
        assert word in text


def test_lsl_source_against_a_real_outlet_on_loopback(rec, bundle):
    pylsl = pytest.importorskip("pylsl", reason="pylsl (the lsl extra) is not installed")
    import threading
    import uuid

    from neurohand.firmware_bridge.lsl_source import LslSource

    name = "neurohand-test-" + uuid.uuid4().hex[:8]
    info = pylsl.StreamInfo(name, "ENG", rec.n_channels, rec.fs_hz, "float32", name)
    outlet = pylsl.StreamOutlet(info, chunk_size=40)
    stop = threading.Event()

    def push():
        hop = 40
        t0 = time.monotonic()
        for k, i in enumerate(range(0, rec.n_samples, hop)):
            if stop.is_set():
                return
            outlet.push_chunk(rec.signals[i:i + hop].tolist())
            delay = t0 + (k + 1) * hop / rec.fs_hz - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    th = threading.Thread(target=push, daemon=True)
    th.start()
    try:
        src = LslSource(name)
        assert src.fs_hz == rec.fs_hz and src.n_channels == rec.n_channels
        sink = RecordingSink()
        stats = Runtime(bundle, src, sink, config=RuntimeConfig(engine="numpy")).run(seconds=1.5)
        src.close()
    finally:
        stop.set()
        th.join(timeout=2)
    assert stats.frames > 80 and not stats.faults.get("signal")


def launch_run(rec, bundle, tmp_path, port):
    """``neurohand run`` replaying ``rec`` into the hand on ``port``, as its own process."""
    import os
    import subprocess
    import sys

    from neurohand.decoder.session_file import write_recording

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    session = str(tmp_path / "s.h5")
    write_recording(rec, session)
    return subprocess.Popen([sys.executable, "-m", "neurohand", "run", "--bundle", bundle.path, "--source",
                             "replay:" + session, "--hand", "serial:" + port, "--engine", "numpy",
                             "--allow-replay-into-hand"],
                            cwd=root, env={**os.environ, "PYTHONPATH": root}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_to_neurohand_run_sends_the_safe_posture(rec, bundle, tmp_path, Hand):
    import signal

    with Hand() as hand:
        proc = launch_run(rec, bundle, tmp_path, hand.port)
        try:
            wait = time.monotonic()
            while hand.commands_received < 50 and time.monotonic() - wait < 30:
                time.sleep(0.05)
            assert hand.commands_received >= 50, "the runtime never drove the hand"
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        # the last command the runtime sent before closing the port was the safe posture (not the watchdog's doing)
        assert hand.last_command == (100, 100, 100, 100, 100)
        assert "frames" in out


def test_hand_link_closed_and_reopened_mid_run(rec, bundle, Hand):
    import threading

    with Hand() as hand:
        sink = HandSink(hand.port)
        rt = Runtime(bundle, RecordingSource(rec, chunk_samples=chunk(rec, bundle)), sink,
                     config=RuntimeConfig(engine="numpy", post=PostConfig(rest_gate=1.0)))
        threading.Timer(0.7, sink.link.close).start()  # the USB cable pulled and the port gone for a moment
        rt.run(seconds=2.0)
        assert sink.link.reconnects >= 2
        assert hand.commands_received > 150  # commands kept flowing after the reconnect


def test_runtime_killed_with_sigkill_hand_watchdog_takes_over(rec, bundle, tmp_path, Hand):
    import signal

    with Hand() as hand:
        proc = launch_run(rec, bundle, tmp_path, hand.port)
        try:
            t0 = time.monotonic()
            while not (hand.commands_received >= 50 and hand.state == HandState.RUNNING) and time.monotonic() - t0 < 30:
                time.sleep(0.02)
            assert hand.state == HandState.RUNNING
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
            t_kill = time.monotonic()
            while hand.state != HandState.SAFE and time.monotonic() - t_kill < 1.0:
                time.sleep(0.005)
            assert hand.state == HandState.SAFE
            assert time.monotonic() - t_kill < 0.4  # no safe command could be sent: the hand's own watchdog acted
        finally:
            if proc.poll() is None:
                proc.kill()
