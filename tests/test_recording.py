import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from neurohand.decoder.recording import CUE_DTYPE, Recording
from neurohand.decoder.session_file import (
    FORMAT_VERSION,
    SessionFormatError,
    SessionWriter,
    read_recording,
    recover_session,
    write_recording,
)


def make_recording(rng, n=2000, c=4):
    return Recording(
        signals=rng.normal(size=(n, c)).astype(np.float32),
        fs_hz=1000.0,
        signal_kind="emg",
        channel_names=tuple("e{}".format(i) for i in range(c)),
        units="uV",
        positions=rng.uniform(size=(n // 10, 5)),
        position_index=np.arange(0, n, 10),
        labels=rng.integers(0, 3, n),
        class_names=("rest", "a", "b"),
        repetitions=np.repeat(np.arange(1, 5), n // 4),
        segment_starts=np.array([0, n // 2]),
        cues=np.array([(5, 1, 100, b"a"), (900, 2, 50, b"b")], dtype=CUE_DTYPE),
        metadata={"patient_id": "P7", "session_id": "S1", "device": "test", "source": "unit test", "notes": "n"},
    )


def test_round_trip_keeps_everything(tmp_path, rng):
    rec = make_recording(rng)
    path = str(tmp_path / "s.h5")
    write_recording(rec, path)
    back = read_recording(path)
    assert np.array_equal(back.signals, rec.signals)
    assert back.signals.dtype == np.float32
    assert back.fs_hz == 1000.0 and back.signal_kind == "emg" and back.units == "uV"
    assert back.channel_names == rec.channel_names
    np.testing.assert_array_equal(back.positions, rec.positions)
    np.testing.assert_array_equal(back.position_index, rec.position_index)
    np.testing.assert_array_equal(back.labels, rec.labels)
    assert back.class_names == ("rest", "a", "b")
    np.testing.assert_array_equal(back.repetitions, rec.repetitions)
    np.testing.assert_array_equal(back.segment_starts, [0, 1000])
    np.testing.assert_array_equal(back.cues, rec.cues)
    for k, v in rec.metadata.items():
        assert back.metadata[k] == v
    assert "date" in back.metadata


def test_optional_parts_absent(tmp_path, rng):
    rec = Recording(signals=rng.normal(size=(50, 2)), fs_hz=200.0)
    path = str(tmp_path / "s.h5")
    write_recording(rec, path)
    back = read_recording(path)
    assert back.positions is None and back.labels is None and back.repetitions is None
    assert not back.has_positions and not back.has_labels
    with pytest.raises(ValueError, match="no finger positions"):
        back.positions_at(np.arange(3))


def test_schema_errors_name_the_problem(tmp_path, rng):
    path = str(tmp_path / "x.h5")
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(SessionFormatError, match="not a neurohand session file: attribute 'format'"):
        read_recording(path)
    good = str(tmp_path / "g.h5")
    write_recording(make_recording(rng), good)
    with h5py.File(good, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(SessionFormatError, match="newer than this neurohand reads"):
        read_recording(good)
    with h5py.File(good, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        del f["labels"]
    with pytest.raises(SessionFormatError, match="missing dataset '/labels'"):
        read_recording(good)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(SessionFormatError, match="not a readable HDF5 session file"):
        read_recording(str(notes))
    with pytest.raises(FileNotFoundError, match="No session file"):
        read_recording(str(tmp_path / "missing.h5"))


def test_recording_validation(rng):
    x = rng.normal(size=(100, 2))
    with pytest.raises(ValueError, match=r"'positions' must have shape \(n_positions, 5\)"):
        Recording(signals=x, fs_hz=100.0, positions=np.zeros((10, 4)), position_index=np.arange(10))
    with pytest.raises(ValueError, match="0..1"):
        Recording(signals=x, fs_hz=100.0, positions=np.full((10, 5), 2.0), position_index=np.arange(10))
    with pytest.raises(ValueError, match="'labels' must have shape \\(100,\\)"):
        Recording(signals=x, fs_hz=100.0, labels=np.zeros(99))
    with pytest.raises(ValueError, match="'labels' must be in 0..0"):
        Recording(signals=x, fs_hz=100.0, labels=np.ones(100))
    with pytest.raises(ValueError, match="Invalid value for 'signal_kind'"):
        Recording(signals=x, fs_hz=100.0, signal_kind="eeg")
    with pytest.raises(ValueError, match="'fs_hz'"):
        Recording(signals=x, fs_hz=0)


def test_positions_at_interpolates(rng):
    pos = np.zeros((3, 5))
    pos[:, 1] = [0.0, 1.0, 0.5]
    rec = Recording(signals=np.zeros((30, 1)), fs_hz=100.0, positions=pos, position_index=[0, 10, 20])
    np.testing.assert_allclose(rec.positions_at([0, 5, 10, 15, 29])[:, 1], [0, 0.5, 1.0, 0.75, 0.5])


def test_select_samples_makes_segments(rng):
    rec = make_recording(rng)
    keep = (np.arange(2000) % 500) < 200
    sub = rec.select_samples(keep)
    assert sub.n_samples == 800
    np.testing.assert_array_equal(sub.segment_starts, [0, 200, 400, 600])
    assert np.array_equal(sub.signals, rec.signals[keep])
    assert len(sub.positions) == 80 and sub.position_index.max() < 800
    assert list(sub.cues["sample"]) == [5]


def test_writer_refuses_overwrite_and_checks_appends(tmp_path):
    path = str(tmp_path / "w.h5")
    with SessionWriter(path, fs_hz=100.0, n_channels=2) as w:
        with pytest.raises(ValueError, match="'labels' are required"):
            w.append(np.zeros((3, 2)))
        with pytest.raises(ValueError, match="must have 2 channels"):
            w.append(np.zeros((3, 3)), labels=np.zeros(3), repetitions=np.zeros(3))
        w.append(np.full((3, 2), np.nan), labels=np.zeros(3), repetitions=np.zeros(3))
    with pytest.raises(FileExistsError, match="Refusing to overwrite"):
        SessionWriter(path, fs_hz=100.0, n_channels=2)
    # NaN is kept as recorded: nothing recorded is dropped
    assert np.isnan(read_recording(path).signals).all()


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from neurohand.decoder.session_file import SessionWriter
    w = SessionWriter(sys.argv[1], fs_hz=1000.0, n_channels=4, class_names=("rest", "move"),
                      metadata={"patient_id": "crash-test"})
    i = 0
    start = time.monotonic()
    while True:
        block = np.arange(i, i + 50, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
        w.append(block, labels=np.ones(50) * ((i // 50) % 2), repetitions=np.ones(50))
        if i % 1000 == 0:
            w.append_positions(np.full((1, 5), 0.5), [i])
            w.add_cue(i, "move", label=1)
        i += 50
        # report progress *after* data is flushed, so the test knows a lower bound of what must survive
        if w._last_flush > start:
            print("flushed", w.n_samples, flush=True)
            start = w._last_flush
        time.sleep(0.005)
    """
)


def test_sigkill_writer_loses_at_most_one_second(tmp_path):
    path = str(tmp_path / "live.h5")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, path], stdout=subprocess.PIPE, text=True,
                            cwd=root, env={**os.environ, "PYTHONPATH": root})
    flushed = []
    deadline = time.monotonic() + 30
    while len(flushed) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("flushed"):
            flushed.append(int(line.split()[1]))
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert len(flushed) == 3, "writer never flushed"
    rec = read_recording(path)  # readable although the writer was killed mid-session
    # everything up to the last flush survives; the writer flushes every second, so at most 1 s is lost
    assert rec.n_samples >= flushed[-1]
    assert rec.metadata["patient_id"] == "crash-test"
    expected = np.arange(rec.n_samples, dtype=np.float32)
    np.testing.assert_array_equal(rec.signals[:, 0], expected)
    np.testing.assert_array_equal(rec.labels, (np.arange(rec.n_samples) // 50) % 2)
    assert rec.has_positions and np.all(rec.position_index < rec.n_samples)
    # recovery makes an ordinary, appendable file again without losing a sample
    n = rec.n_samples
    back = recover_session(path)
    assert back.n_samples == n
    with h5py.File(path, "r") as f:  # opens normally now
        assert f["signals"].shape == (n, 4)
    assert not os.path.exists(path + ".crashed")


def test_session_files_stay_within_the_hdf5_1_10_format(tmp_path, rng):
    """HDF5 1.10/1.12 (a Jetson's h5py 3.1) reads them: a newer HDF5's ``libver="latest"`` objects it cannot
    ("bad version number for datatype message"; tests/test_old_pythons.py reads them with h5py 3.1). A SWMR writer
    keeps the version-3 superblock that SWMR, and so crash safety, needs."""
    from neurohand.decoder.session_file import _libver_bounds

    if h5py.version.hdf5_version_tuple >= (1, 10, 2):
        assert _libver_bounds(h5py, True) == ("v110", "v110")
        assert _libver_bounds(h5py, False) == ("earliest", "v110")
    path = str(tmp_path / "live.h5")
    w = SessionWriter(path, fs_hz=1000.0, n_channels=2)
    w.append(rng.normal(size=(100, 2)).astype(np.float32), labels=np.zeros(100), repetitions=np.zeros(100))
    w.flush()
    with open(path, "rb") as f:
        head = f.read(9)
    w.close()
    assert head[:8] == b"\x89HDF\r\n\x1a\n" and head[8] == 3  # superblock version 3: SWMR-capable, HDF5 1.10
    assert read_recording(path).n_samples == 100
