"""``neurohand run`` for a user: which source, what a class-only model sends, what the log says, a live view that
never holds up decoding."""

import json
import os
import shutil

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.bundle import Bundle
from neurohand.decoder.postprocess import SAFE_POSTURE
from neurohand.deploy.runlog import JsonLog
from neurohand.deploy.runtime import NoneSink, Runtime, RuntimeConfig
from neurohand.deploy.sources import RecordingSource, source_for


class RecordingSink(NoneSink):
    def __init__(self, start=SAFE_POSTURE):
        self.start, self.commands = start, []

    def start_posture(self):
        return self.start

    def write(self, command, probabilities=None):
        self.commands.append(np.array(command))
        return True


def chunk(rec, bundle):
    return int(rec.fs_hz * bundle.feature_config.hop_ms / 1000)


@pytest.fixture(scope="module")
def class_only_bundle(adapted_bundle, tmp_path_factory):
    """The adapted bundle as a class-only model would export it: its position head untrained."""
    from tests.test_export_engines import forge

    path = str(tmp_path_factory.mktemp("class_only") / "b")
    shutil.copytree(adapted_bundle.path, path)
    forge(path, lambda c: c["model"].update(positions=False))
    return Bundle(path)


def test_run_without_a_source_names_replay_when_the_simulator_does_not_fit(adapted_bundle, capsys):
    capsys.readouterr()
    assert main(["run", "--bundle", adapted_bundle.path, "--seconds", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "expects 4000 Hz, 4 channels, but the simulator delivers 10000 Hz, 16 channels" in err
    assert "--source is required" in err and "--source replay:SESSION.h5" in err and "serial:PORT" in err
    assert "lsl:NAME" in err
    with pytest.raises(ValueError, match="give --source replay:SESSION.h5"):  # 'sim' asked for explicitly
        source_for("sim", fs_hz=4000.0, n_channels=4)
    assert source_for(None, fs_hz=10000.0, n_channels=16) == "sim"
    assert source_for("replay:s.h5", fs_hz=4000.0, n_channels=4) == "replay:s.h5"


@pytest.mark.parametrize("start", [SAFE_POSTURE, (0.6, 0.5, 0.4, 0.3, 0.9)])
def test_a_class_only_model_never_sends_its_untrained_positions(short_rec, adapted_bundle, class_only_bundle, start):
    runs = {}
    for name, b in (("trained", adapted_bundle), ("class-only", class_only_bundle)):
        sink = RecordingSink(start)
        rt = Runtime(b, RecordingSource(short_rec, chunk_samples=chunk(short_rec, b), fast=True), sink,
                     record_frames=True, config=RuntimeConfig(engine="numpy"))
        rt.run()
        runs[name] = (np.array(sink.commands), rt)
    cmd, rt = runs["class-only"]
    assert not rt.decoder.drives_fingers and runs["trained"][1].decoder.drives_fingers
    assert rt.decoder.grips is None  # exported before grips
    assert all("positions" not in f and "grip" not in f for f in rt.frames)  # its untrained positions are not logged
    # the head's outputs (the same weights) are far from the safe posture, and a model with positions sends them
    pos = np.array([f["positions"] for f in runs["trained"][1].frames])
    assert np.max(np.abs(pos - np.asarray(SAFE_POSTURE))) > 0.1
    assert np.max(np.abs(runs["trained"][0] - np.asarray(SAFE_POSTURE))) > 0.1
    # the class-only model's commands go straight to the safe posture (within the velocity limit) and stay there
    step = rt.max_step + 1e-9
    path = np.vstack([np.asarray(start)[None], cmd])
    assert np.all(np.abs(np.diff(path, axis=0)) <= step)
    dist = np.max(np.abs(cmd - np.asarray(SAFE_POSTURE)), axis=1)
    assert np.all(np.diff(dist) <= 1e-9) and np.allclose(cmd[-50:], SAFE_POSTURE)


def test_the_run_log_carries_the_class_and_its_probability(short_rec, adapted_bundle, tmp_path):
    log = str(tmp_path / "run.jsonl")
    rt = Runtime(adapted_bundle, RecordingSource(short_rec, chunk_samples=chunk(short_rec, adapted_bundle), fast=True),
                 NoneSink(), json_log=JsonLog(log), record_frames=True, config=RuntimeConfig(engine="numpy"))
    rt.run()
    frames = [r for r in map(json.loads, open(log)) if "command" in r]
    assert len(frames) == rt.stats.frames > 0
    names = adapted_bundle.class_names
    assert all(f["class"] in names and 0.0 <= f["probability"] <= 1.0 for f in frames)
    # the class is the most probable one, its probability at least 1 / n_classes
    assert all(f["probability"] >= 1.0 / len(names) - 1e-4 for f in frames)
    assert len({f["class"] for f in frames}) >= 1 and len({f["probability"] for f in frames}) > 1
    # each frame says which sample of the recording it ended at: the log lines up with the session
    samples = [f["sample"] for f in frames]
    hop, first = adapted_bundle.hop_samples, adapted_bundle.feature_extractor().window_samples - 1
    assert samples[0] >= first and all(b - a == hop for a, b in zip(samples, samples[1:])), samples[:5]
    assert samples[-1] < short_rec.n_samples


def test_the_live_view_draws_in_its_own_process_with_named_channels_and_units(short_rec, adapted_bundle, tmp_path,
                                                                               monkeypatch):
    from neurohand.deploy import live_view

    drawn_by = str(tmp_path / "pids")
    render = live_view.render

    def recording_render(*a, **kw):  # the forked drawing process inherits this
        with open(drawn_by, "a") as f:
            f.write("{}\n".format(os.getpid()))
        return render(*a, **kw)

    monkeypatch.setattr(live_view, "render", recording_render)
    screen = str(tmp_path / "screen.txt")
    view = live_view.LiveView(adapted_bundle.class_names, channel_names=short_rec.channel_names, units="uV",
                              path=screen, refresh_hz=20)
    src = RecordingSource(short_rec, chunk_samples=chunk(short_rec, adapted_bundle), fast=False)
    rt = Runtime(adapted_bundle, src, NoneSink(), on_chunk=view.on_chunk, config=RuntimeConfig(engine="numpy"))
    with view:
        rt.run(seconds=1.5)
    pids = {int(p) for p in open(drawn_by).read().split()}
    assert view.snapshots >= 5 and pids and os.getpid() not in pids  # drawn, never by the decoding process
    text = open(screen).read()
    for word in ("thumb", "little", "latency", "signal level per channel (RMS, uV)", "median0", "ulnar1", "uV"):
        assert word in text
    assert "ch0" not in text


def test_a_log_that_cannot_be_written_never_stops_the_hand(short_rec, adapted_bundle, tmp_path):
    """Issue 28.4: with the log's file size limited (a full disk), run sent the safe posture and exited 2 after 1.6 s.

    Now the run decodes to its end, says once that the log cannot be written, and counts the lines it dropped.
    """
    import resource
    import subprocess
    import sys

    from neurohand.decoder.session_file import write_recording

    session = str(tmp_path / "s.h5")
    write_recording(short_rec, session)
    log = str(tmp_path / "run.jsonl")

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (40000, 40000))

    r = subprocess.run([sys.executable, "-m", "neurohand", "run", "--bundle", adapted_bundle.path, "--source",
                        "replay:" + session, "--fast", "--log", log], cwd=str(tmp_path), capture_output=True,
                       text=True, timeout=120, preexec_fn=small_files)
    assert r.returncode == 0, r.stderr
    frames = len(short_rec.signals) // adapted_bundle.hop_samples
    decoded = int(r.stdout.split(": ", 1)[1].split(" frames")[0])  # "engine numpy: 595 frames, ..."
    assert decoded >= frames - 10  # decoded to the end of the recording, not stopped by the log
    assert r.stderr.count("cannot be written") == 1 and log in r.stderr  # reported once, naming the log
    dropped = int(r.stdout.split("log: ")[1].split(" lines dropped")[0])
    written = sum(1 for _ in open(log))
    assert dropped > 0 and os.path.getsize(log) <= 40000 and written + dropped >= frames - 5


def test_a_log_comes_back_when_the_disk_does(tmp_path):
    """The file is tried again: lines written after the failure clears reach it, with a note of what was lost."""
    said = []
    log = JsonLog(str(tmp_path / "run.jsonl"), flush_s=0.0, retry_s=0.0, report=said.append)
    log.write({"n": 1})

    class FullDisk:
        closed = False

        def write(self, text=None):
            raise OSError(28, "No space left on device")

        flush = close = write

    log._f = FullDisk()  # the operating system refuses the next write, as a full disk would
    log.write({"n": 2})
    assert log.dropped_lines == 1 and log.failure is not None and len(said) == 1
    log.write({"n": 3})  # the retry opens the file again
    log.close()
    lines = [json.loads(x) for x in open(str(tmp_path / "run.jsonl"))]
    assert lines[0] == {"n": 1} and lines[1]["event"] == "log_resumed" and lines[1]["dropped_lines"] == 1
    assert lines[2] == {"n": 3} and "written again" in said[1]
