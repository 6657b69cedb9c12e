"""Issue 19 (runtime side): the red team's attacks on the runtime, each replayed against real ptys, files, processes."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from neurohand.decoder.postprocess import PostConfig
from neurohand.decoder.signal_quality import QualityConfig, QualityMonitor
from neurohand.deploy.runtime import HandSink, NoneSink, Runtime, RuntimeConfig
from neurohand.deploy.sources import RecordingSource
from neurohand.firmware_bridge.protocol import (
    CRC,
    HEADER,
    MAX_ERROR_KINDS,
    VERSION,
    Caps,
    Hello,
    MsgType,
    ProtocolError,
    Role,
    Samples,
    StreamParser,
    crc16,
    encode,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAFE = (100, 100, 100, 100, 100)


def hop(rec, bundle):
    return int(rec.fs_hz * bundle.feature_config.hop_ms / 1000)


class Recorder(NoneSink):
    def __init__(self):
        self.commands, self.safe_calls = [], 0

    def write(self, command, probabilities=None):
        self.commands.append(np.array(command))
        return True

    def safe(self):
        self.safe_calls += 1
        return True


# ---------------------------------------------------------------- 1. saturated or railed input
def test_a_full_scale_square_wave_faults_to_safe_and_recovers(rec, bundle):
    # the red team's attack: samples replaced by a full-scale square wave; no full scale is known for a replay, so
    # the rail detector must catch it
    amp = float(np.abs(rec.signals).max()) * 20

    def inject(i, x):
        if 100 <= i < 250:
            x = np.empty_like(x)
            x[:] = amp
            x[1::2] = -amp
        return x

    sink = Recorder()
    rt = Runtime(bundle, RecordingSource(rec, chunk_samples=hop(rec, bundle), fast=True, inject=inject), sink,
                 config=RuntimeConfig(engine="numpy"))
    n_before = None
    stats = rt.run()
    assert stats.faults.get("signal", 0) >= 100, stats.faults
    ev = stats.safe_events[0]
    assert ev["kind"] == "signal" and "railed" in ev["message"]
    assert stats.state == "running" and stats.faults_cleared >= 1
    n_before = len(sink.commands)
    assert n_before > 0 and sink.safe_calls >= 2  # decoding resumed after the wave; the end is safe too


def test_an_interfaces_full_scale_is_the_default_saturation_limit():
    q = QualityMonitor(QualityConfig(saturation=32767 * 0.25, rail_fraction=None), fs_hz=4000.0, n_channels=2)
    x = np.random.default_rng(0).normal(size=(40, 2))
    x[::2, 0] = 32767 * 0.25  # half the samples at the converter's limit
    assert any("saturated channel(s) 0" in m for m in q.check(x))
    # a quantised low-level signal sitting often at +-1 LSB is not railed
    q = QualityMonitor(QualityConfig(), fs_hz=4000.0, n_channels=1)
    for k in range(50):
        assert not q.check(np.random.default_rng(k).integers(-1, 2, size=(40, 1)).astype(float) * 0.25)


# ---------------------------------------------------------------- 2. the velocity limit across resets
def hand_log(hand):
    if hasattr(hand, "received"):  # the C firmware's host build records them itself
        return hand.received
    got = []
    orig = hand._handle

    def handle(msg, now):
        if type(msg.body).__name__ == "SetPositions":
            got.append(tuple(msg.body.positions))
        orig(msg, now)

    hand._handle = handle
    return got


def violations(received, max_step_units, start=SAFE):
    """Commands (other than the safe posture itself) more than the limit away from the previous one received."""
    out, prev = [], start
    for k, c in enumerate(received):
        if c != SAFE and np.max(np.abs(np.array(c) - np.array(prev))) > max_step_units:
            out.append((k, prev, c))
        prev = c
    return out


def test_velocity_limit_holds_across_start_fault_stall_and_reconnect_over_a_pty(rec, bundle, monkeypatch, Hand):
    # jumpy decoder outputs (a fresh random position every frame), no smoothing or dead-band: the velocity limit is
    # all that stands between them and the hand, at start, after a NaN burst, after a stall and after a reconnect
    def inject(i, x):
        if 60 <= i < 64:
            x = x.copy()
            x[::2, 1] = np.nan
            return x
        return None if i == 140 else x

    post = PostConfig(smoothing_ms=0.0, deadband=0.0, max_speed_per_s=4.0, rest_gate=1.0)
    with Hand() as hand:
        received = hand_log(hand)
        sink = HandSink(hand.port)
        rt = Runtime(bundle, RecordingSource(rec, chunk_samples=hop(rec, bundle), inject=inject, stall_s=0.1), sink,
                     config=RuntimeConfig(engine="numpy", post=post))
        rng = np.random.default_rng(0)
        real = rt.engine.step

        def jumpy(state, frame):
            out, state = real(state, frame)
            return out._replace(positions=rng.uniform(0.0, 1.0, 5)), state

        monkeypatch.setattr(rt.engine, "step", jumpy)
        threading.Timer(2.0, sink.link.close).start()  # the cable pulled: the next write fails, then reconnects
        stats = rt.run(seconds=3.0)
        time.sleep(0.05)
    assert {"signal", "stall", "link"} <= set(stats.faults), stats.faults
    assert sink.link.reconnects >= 2 and len(received) > 150
    assert received.count(SAFE) >= 3  # each fault did send the safe posture
    assert violations(received, round(rt.max_step * 1000)) == []
    assert stats.limit_clips == 0  # the post-processor itself kept the limit; the runtime's guard never had to


# ---------------------------------------------------------------- 3 and 6. the interface's HELLO and SAMPLES
def interface_run(rec, bundle, events, seconds=2.5, **iface_kw):
    from neurohand.firmware_bridge.interface_link import InterfaceSource
    from neurohand.firmware_bridge.sim_interface import SimInterface

    with SimInterface(rec, **iface_kw) as iface:
        src = InterfaceSource(iface.port)
        sink = Recorder()
        rt = Runtime(bundle, src, sink, config=RuntimeConfig(engine="numpy"))
        timers = [threading.Timer(t, iface.inject, args=(wire,)) for t, wire in events]
        for t in timers:
            t.start()
        stats = rt.run(seconds=seconds)
        for t in timers:
            t.cancel()
        src.close()
    return rt, stats, sink


def test_a_mid_stream_hello_changing_the_scale_faults_until_the_original_returns(rec, bundle):
    hello = Hello(Role.INTERFACE, Caps.SAMPLES, rec.n_channels, rec.fs_hz, 0.25, "sim-interface")
    evil = Hello(Role.INTERFACE, Caps.SAMPLES, rec.n_channels, rec.fs_hz, 25.0, "sim-interface")  # scale x100
    rt, stats, sink = interface_run(rec, bundle, [(0.7, encode(evil, 1)), (1.5, encode(hello, 2))])
    assert stats.faults.get("hello", 0) >= 1, stats.faults
    ev = [e for e in stats.safe_events if e["kind"] == "hello"][0]
    assert "changes (n_channels, fs_hz, scale)" in ev["message"]
    assert stats.state == "running" and stats.faults_cleared >= 1  # the original parameters came back


def test_hello_fields_are_validated():
    for bad in (dict(fs_hz=float("nan")), dict(fs_hz=10.0), dict(scale=float("inf")), dict(scale=-1.0),
                dict(scale=0.0), dict(n_channels=0)):
        kw = dict(role=Role.INTERFACE, caps=Caps.SAMPLES, n_channels=4, fs_hz=4000.0, scale=0.25)
        kw.update(bad)
        h = Hello.unpack(Hello(**kw).pack())
        with pytest.raises(ProtocolError, match="out of range"):
            h.check_stream()


def test_an_interface_announcing_nan_is_refused_at_connect(rec):
    from neurohand.firmware_bridge.interface_link import InterfaceSource
    from neurohand.firmware_bridge.sim_interface import SimInterface

    with SimInterface(rec, scale=float("nan")) as iface:
        with pytest.raises(ProtocolError, match="scale nan"):
            InterfaceSource(iface.port)


def test_one_malformed_samples_frame_is_a_signal_fault_not_the_end(rec, bundle):
    bad = encode(Samples(123, np.zeros((20, rec.n_channels // 2), np.int16)), 7)  # half the channels
    rt, stats, sink = interface_run(rec, bundle, [(0.8, bad)])
    assert stats.faults.get("signal", 0) >= 1, stats.faults
    assert "malformed SAMPLES" in stats.safe_events[0]["message"]
    assert stats.state == "running" and stats.frames > 100


def test_oversized_samples_are_refused_and_error_kinds_stay_bounded():
    from cobs import cobs

    n, c = 4100, 2  # 16 400 bytes of samples: over the 8192-byte packet limit
    body = HEADER.pack(VERSION, MsgType.SAMPLES, 1) + Samples._S.pack(0, n, c) + b"\x01\x00" * (n * c)
    p = StreamParser(max_packet=1 << 16)  # even a receiver with a bigger buffer refuses it
    assert p.feed(cobs.encode(body + CRC.pack(crc16(body))) + b"\x00") == []
    assert p.stats.frames_bad == 1
    q = StreamParser()
    for k in range(500):  # 500 distinct defects: the error table stays small
        q.feed(cobs.encode(bytes([VERSION, 0x70 + k % 100, k & 0xFF, 0, 0, 0])) + b"\x00")
        h = HEADER.pack((VERSION + 1 + k % 200) % 256, 1, k)
        q.feed(cobs.encode(h + CRC.pack(crc16(h))) + b"\x00")
    assert q.stats.frames_bad == 1000 and len(q.stats.errors) <= MAX_ERROR_KINDS


# ---------------------------------------------------------------- 7. bounded memory, the log as it goes
def test_latency_statistics_stay_bounded():
    from neurohand.deploy.runlog import LatencyHistogram

    h = LatencyHistogram()
    size = h.counts.nbytes
    x = np.random.default_rng(0).lognormal(0.0, 1.0, 200000)
    for v in x:
        h.add(v)
    assert h.counts.nbytes == size and h.count == len(x)
    for q in (50, 99):
        assert abs(h.percentile(q) / np.percentile(x, q) - 1) < 0.02
    assert h.percentile(100) == x.max()


def neurohand(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "neurohand"] + list(args), cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=os.path.dirname(ROOT)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def session(rec, tmp_path):
    from neurohand.decoder.session_file import write_recording

    path = str(tmp_path / "s.h5")
    write_recording(rec, path)
    return "replay:" + path


def test_sigkill_loses_at_most_a_second_of_the_log_and_restarts_append(rec, bundle, tmp_path):
    log = str(tmp_path / "run.jsonl")
    src = session(rec, tmp_path)  # a 6 s recording, replayed in real time
    proc = neurohand("run", "--bundle", bundle.path, "--source", src, "--engine", "numpy", "--log", log)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60 and (not os.path.exists(log) or os.path.getsize(log) < 5000):
            time.sleep(0.05)
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        t_kill = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
    with open(log) as f:
        lines = [json.loads(line) for line in f if line.endswith("\n")]
    frames = [r for r in lines if "command" in r]
    assert frames, "nothing was written before the kill"
    # frame times are the system-wide monotonic clock: the last line on disk is at most a second old
    assert t_kill - frames[-1]["t"] <= 1.0, t_kill - frames[-1]["t"]
    # a restart appends: the killed run's lines stay, the new run's summary follows them
    r = neurohand("run", "--bundle", bundle.path, "--source", src, "--engine", "numpy", "--fast", "--seconds",
                  "0.5", "--log", log)
    r.communicate(timeout=120)
    assert r.returncode == 0
    with open(log) as f:
        after = f.read().splitlines()
    assert len(after) > len(lines) and json.loads(after[0]) == lines[0]
    assert "summary" in json.loads(after[-1])


def test_the_log_rotates_by_size(rec, bundle, tmp_path):
    from neurohand.cli import main

    log = str(tmp_path / "log" / "run.jsonl")
    src = session(rec, tmp_path)
    for _ in range(3):
        assert main(["run", "--bundle", bundle.path, "--source", src, "--engine", "numpy", "--log", log,
                     "--log-max-mb", "0.05", "--seconds", "1.6"]) == 0
    rotated = sorted(p for p in os.listdir(str(tmp_path / "log")) if p.startswith("run.jsonl."))
    assert rotated and len(rotated) <= 5
    assert all(os.path.getsize(str(tmp_path / "log" / p)) < 0.05e6 * 3 for p in rotated)


# ---------------------------------------------------------------- 11. a missing hand port
def test_a_missing_hand_port_is_one_line_exit_2_naming_it(bundle, capsys):
    from neurohand.cli import main

    assert main(["run", "--bundle", bundle.path, "--source", "sim", "--hand", "serial:/dev/ttyNOPE0",
                 "--allow-replay-into-hand", "--seconds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "/dev/ttyNOPE0" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------- 4. the service unit
def test_replay_or_sim_never_drives_a_hand_without_the_flag(bundle, capsys, Hand):
    from neurohand.cli import main

    with Hand() as hand:
        for src in ("sim", "replay:/nonexistent.h5"):
            assert main(["run", "--bundle", bundle.path, "--source", src, "--hand", "serial:" + hand.port]) == 2
            assert "--allow-replay-into-hand" in capsys.readouterr().err
        assert hand.commands_received == 0


def unit_exec_start():
    import configparser
    import shlex

    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read(os.path.join(ROOT, "deploy", "neurohand.service"))
    assert cp["Service"]["Restart"] in ("always", "on-failure")
    return shlex.split(cp["Service"]["ExecStart"])


def test_the_service_unit_decodes_the_patients_current_bundle_from_a_live_source(rec, bundle, tmp_path, Hand):
    from neurohand.calibration.model_store import ModelStore
    from neurohand.firmware_bridge.sim_interface import SimInterface

    argv = unit_exec_start()
    opt = dict(zip(argv[2::2], argv[3::2]))
    assert argv[1] == "run" and opt["--source"].startswith("serial:") and opt["--hand"].startswith("serial:")
    assert "--allow-replay-into-hand" not in argv
    # the bundle path is the model store's own layout: STORE/PATIENT/current.json
    store_dir, patient = os.path.dirname(os.path.dirname(opt["--bundle"])), os.path.basename(
        os.path.dirname(opt["--bundle"]))
    assert os.path.basename(opt["--bundle"]) == "current.json"
    store = str(tmp_path / "store")
    ModelStore(store, patient).accept(bundle.path)
    # the unit decodes only signed bundles: the clinic's key signs the accepted version, its .pub is trusted
    from neurohand.decoder.signature import generate_key

    _, pub, _ = generate_key(str(tmp_path / "clinic"))
    os.makedirs(str(tmp_path / "trusted"))
    shutil.copy(pub, str(tmp_path / "trusted"))
    current = opt["--bundle"].replace(store_dir, store)
    with SimInterface(rec) as iface, Hand() as hand:
        subst = {opt["--bundle"]: current, opt["--trusted-keys"]: str(tmp_path / "trusted"),
                 opt["--source"]: "serial:" + iface.port, opt["--hand"]: "serial:" + hand.port,
                 opt["--log"]: str(tmp_path / "log" / "run.jsonl"), opt["--engine"]: "numpy"}
        refused = neurohand(*[subst.get(a, a) for a in argv[1:]])
        out, err = refused.communicate(timeout=60)
        assert refused.returncode == 2 and "it is not signed" in err, err  # accepted, not yet signed
        signing = neurohand("sign", current, "--key", str(tmp_path / "clinic.key"))
        assert signing.wait(timeout=60) == 0, signing.communicate()
        proc = neurohand(*[subst.get(a, a) for a in argv[1:]])
        try:
            t0 = time.monotonic()
            while hand.commands_received < 50 and time.monotonic() - t0 < 60 and proc.poll() is None:
                time.sleep(0.05)
            assert hand.commands_received >= 50, proc.communicate(timeout=5) if proc.poll() is not None else ""
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert hand.last_command == SAFE
    assert os.path.getsize(str(tmp_path / "log" / "run.jsonl")) > 0


# ---------------------------------------------------------------- the soak, short
@pytest.mark.slow
def test_a_short_soak_keeps_the_limit_and_clears_every_fault(bundle):
    from neurohand.deploy.soak import soak

    out = soak(bundle.path, hours=0.1, seed=3)  # six simulated minutes into a pty hand, random faults of every kind
    assert out["faults_injected"] >= 10 and {"freeze", "starve", "unplug"} <= {
        k for k, n in out["faults_by_kind"].items() if n}, out
    assert out["velocity_limit_violations"] == 0 and out["limit_clips"] == 0, out
    assert out["window_violations"] == 0 and out["largest_move_within_100ms"] <= 0.40 + 1e-9, out
    assert out["late_frames"] > 0 and out["hand_received"] >= out["frames"] * 0.5, out
    assert out["faults_detected"] == out["faults_cleared"] == out["faults_injected"], out
    assert out["log_lines"] >= out["frames"]


def test_neurohand_run_survives_a_malformed_frame_and_logs_it(rec, bundle, tmp_path, capsys):
    # the red team's attack through the command line: 8 of 16 channels ended the run with exit 2 and no log
    from neurohand.cli import main
    from neurohand.firmware_bridge.sim_interface import SimInterface

    log = str(tmp_path / "run.jsonl")
    bad = encode(Samples(123, np.zeros((20, rec.n_channels // 2), np.int16)), 7)
    with SimInterface(rec) as iface:
        threading.Timer(1.0, iface.inject, args=(bad,)).start()
        assert main(["run", "--bundle", bundle.path, "--source", "serial:" + iface.port, "--engine", "numpy",
                     "--seconds", "2.5", "--log", log]) == 0
    with open(log) as f:
        lines = [json.loads(line) for line in f]
    faults = [r for r in lines if r.get("event") == "fault"]
    assert faults and "malformed SAMPLES" in faults[0]["message"]
    assert any(r.get("event") == "cleared" for r in lines) and "summary" in lines[-1]


@pytest.mark.slow
def test_bench_soak_prints_its_figures(bundle, capsys):
    from neurohand.cli import main

    assert main(["bench", "soak", "--hours", "0.01", "--bundle", bundle.path, "--json", "--seed", "1"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("memory_growth_mb_per_hour", "velocity_limit_violations", "faults_injected", "faults_cleared",
                "log_lines", "frames"):
        assert key in out
