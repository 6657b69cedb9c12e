"""Issue 19.14 (data side): every malformed input the red team tried is one line on stderr and exit 2."""

import os
import re

import h5py
import numpy as np
import pytest

from neurohand.cli import main


def run_cli(capsys, *argv):
    capsys.readouterr()
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no traceback
    return rc, err


@pytest.fixture
def session(tmp_path, small_sim):
    from neurohand.decoder.session_file import write_recording

    path = str(tmp_path / "s.h5")
    write_recording(small_sim, path)
    return path


def test_signals_that_are_a_group(session, capsys):
    with h5py.File(session, "a") as f:
        del f["signals"]
        f.create_group("signals")
    rc, err = run_cli(capsys, "inspect", session)
    assert rc == 2 and "'/signals' must be a dataset, got a Group" in err


def test_a_format_version_that_is_an_array(session, capsys):
    with h5py.File(session, "a") as f:
        f.attrs["format_version"] = np.array([1, 2])
    rc, err = run_cli(capsys, "inspect", session)
    assert rc == 2 and "invalid format_version array([1, 2]) (expected an integer)" in err


def test_a_small_file_declaring_1e12_samples(tmp_path, session, capsys):
    """8 KB on disk, 1e12 x 16 samples declared: reading it was a MemoryError."""
    path = str(tmp_path / "huge.h5")
    with h5py.File(session, "r") as src, h5py.File(path, "w") as f:
        for k, v in src.attrs.items():
            f.attrs[k] = v
        for name in src:
            if name != "signals":
                src.copy(name, f)
        f.create_dataset("signals", shape=(10 ** 12, 16), maxshape=(None, 16), dtype="<f4", chunks=(1024, 16))
    assert os.path.getsize(path) < 1 << 20  # the session's other datasets; the signals store nothing
    rc, err = run_cli(capsys, "inspect", path)
    assert rc == 2 and "'/signals' declares shape (1000000000000, 16)" in err and "corrupted or not a session" in err


def test_an_empty_mat_file(tmp_path, capsys):
    path = tmp_path / "S1_A1_E1.mat"
    path.write_bytes(b"")
    rc, err = run_cli(capsys, "import", "ninapro", str(path), "--out", str(tmp_path / "o.h5"))
    assert rc == 2 and "is not a readable NinaPro DB1 .mat file" in err


def test_a_3dc_repetition_beyond_int16(tmp_path, capsys):
    emg = tmp_path / "p1" / "train" / "EMG"
    emg.mkdir(parents=True)
    (emg / "3dc_EMG_gesture_99999_0.txt").write_text("\n".join(",".join(["0.1"] * 10) for _ in range(20)) + "\n")
    rc, err = run_cli(capsys, "import", "3dc", str(tmp_path / "p1" / "train"), "--out", str(tmp_path / "o.h5"))
    assert rc == 2 and "repetition 99999 is outside 0..32766" in err


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("".join("0,{},{}\n".format(i * 0.1, i * 0.2) for i in range(50)))
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["--delimiter", ""], "Invalid value for '--delimiter': one character"),
    (["--delimiter", "\n"], "Invalid value for '--delimiter': one character"),
    (["--delimiter", "::"], "Invalid value for '--delimiter': one character (e.g. ',', ';', '\\t'), 'whitespace'"),
    (["--signal-columns", "0-100000000"], "'--signal-columns': column 3 does not exist; "),
    (["--delimiter", ";"], "is not ';'-separated numbers: line 1 has no ';'; it looks ','-separated: pass "
                           "--delimiter ',' (or leave --delimiter out: it is detected)"),
])
def test_csv_options_that_cannot_work(tmp_path, csv_file, capsys, argv, message):
    args = ["import", "csv", csv_file, "--out", str(tmp_path / "o.h5"), "--fs-hz", "100", "--signal-columns", "1-2"]
    rc, err = run_cli(capsys, *(args + argv))
    assert rc == 2 and message in err


def test_tensorrt_where_it_is_not_installed_is_one_line(tmp_path, small_sim, capsys):
    from neurohand.decoder.engines.tensorrt_engine import tensorrt_available
    from tests.test_export_engines import small_bundle

    if tensorrt_available()[0]:
        pytest.skip("TensorRT is installed here")
    from neurohand.decoder.session_file import write_recording

    b = small_bundle(str(tmp_path), small_sim)
    write_recording(small_sim, str(tmp_path / "s.h5"))
    source = "replay:" + str(tmp_path / "s.h5")
    rc, err = run_cli(capsys, "run", "--bundle", b, "--engine", "tensorrt", "--source", source, "--seconds", "0.1",
                      "--fast")
    assert rc == 2 and "TensorRT engine unavailable" in err


@pytest.mark.parametrize("kind, message", [
    ("object", "array 'signals' of '.*' holds Python objects; expected numbers"),
    ("random bytes", "is not a NumPy .npz archive of plain arrays"),
    ("np.save", r"holds a single array \(np.save\); expected a .npz archive with a 'signals' array"),
    ("all NaN", r"400 of 400 signal values are not finite \(NaN or infinity\), the first at sample 0, channel 0"),
    ("no samples", r"the signals have shape \(0, 4\); expected \(n_samples, n_channels\) with at least one sample"),
    ("strings", "array 'signals' of '.*' is of type <U1; expected numbers"),
])
def test_npz_files_that_are_not_recordings(tmp_path, capsys, kind, message):
    path = str(tmp_path / "x.npz")
    if kind == "object":
        np.savez(path, signals=np.array([object(), 1], dtype=object))
    elif kind == "random bytes":
        with open(path, "wb") as f:
            f.write(np.random.default_rng(0).bytes(5000))
    elif kind == "np.save":
        with open(path, "wb") as f:
            np.save(f, np.zeros((10, 2)))
    elif kind == "all NaN":
        np.savez(path, signals=np.full((100, 4), np.nan))
    elif kind == "no samples":
        np.savez(path, signals=np.zeros((0, 4)))
    else:
        np.savez(path, signals=np.array([["a", "b"], ["c", "d"]]))
    rc, err = run_cli(capsys, "import", "npz", path, "--out", str(tmp_path / "x.h5"), "--fs-hz", "1000")
    assert rc == 2 and re.search(message, err), err
    assert not os.path.exists(str(tmp_path / "x.h5"))


def test_a_partial_file_left_by_a_crashed_import_does_not_block_the_retry(tmp_path, capsys):
    path, out = str(tmp_path / "x.npz"), str(tmp_path / "x.h5")
    np.savez(path, signals=np.random.default_rng(0).normal(size=(1000, 2)))
    with open(out + ".partial", "wb") as f:  # what a killed import leaves
        f.write(b"half an HDF5 file")
    assert main(["import", "npz", path, "--out", out, "--fs-hz", "1000"]) == 0
    assert os.path.isfile(out) and not os.path.exists(out + ".partial")


def test_an_lsl_source_without_pylsl_names_the_extra(tmp_path, adapted_bundle):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    hide = "import sys; sys.modules['pylsl'] = None; from neurohand.cli import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", hide, "run", "--bundle", adapted_bundle.path, "--source", "lsl:x"],
                       cwd=root, env=dict(os.environ, PYTHONPATH=root), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "pylsl is not installed; this command needs pip install 'neurohand[lsl]'" in r.stderr


def test_evaluate_names_the_file_it_was_given_not_the_one_imported_from(tmp_path, small_sim, capsys):
    """A session imported from a CSV keeps the CSV as its source; a mismatch names the .h5 the user passed."""
    from dataclasses import replace

    from neurohand.decoder.session_file import read_recording, write_recording

    path = str(tmp_path / "other.h5")
    write_recording(replace(small_sim, metadata=dict(small_sim.metadata, source="/elsewhere/original.csv")), path)
    assert read_recording(path).path == path
    from neurohand.training.evaluate import check_contract

    with pytest.raises(Exception, match=r"Test recording 0 \({}\) has 8 channels".format(re.escape(path))):
        check_contract({"n_channels": 4, "channel_names": ["a", "b", "c", "d"]}, [read_recording(path)])
