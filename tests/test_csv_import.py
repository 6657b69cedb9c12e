"""``neurohand import csv`` as a researcher meets it (issue 20): a header row, columns by name, messages that count
columns from 0 as the flags do, ``--mains-hz``, and a repetition column that counts from 0."""

import os
import subprocess
import sys

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.feature_config import config_for_recording
from neurohand.decoder.session_file import read_recording
from neurohand.training.importers import import_csv
from tests.test_data_errors import run_cli

HEADER = "emg0,emg1,label,rep,thumb,index,middle,ring,little"


def neurohand(*args):
    exe = os.path.join(os.path.dirname(sys.executable), "neurohand")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "neurohand"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=120)


@pytest.fixture
def table(rng):
    n = 300
    sig = rng.normal(size=(n, 2))
    lab = (np.arange(n) // 25) % 3
    rep = 1 + np.arange(n) // 100
    pos = rng.uniform(size=(n, 5))
    return np.column_stack([sig, lab, rep, pos])


@pytest.fixture
def named_csv(tmp_path, table):
    path = tmp_path / "rec.csv"
    np.savetxt(path, table, delimiter=",", header=HEADER, comments="", fmt="%.6g")
    return str(path)


def test_a_header_row_imports_by_column_names_from_the_command_line(tmp_path, named_csv, table):
    out = tmp_path / "s.h5"
    r = neurohand("import", "csv", named_csv, "--out", str(out), "--fs-hz", "1000", "--signal-columns", "emg0,emg1",
                  "--label-column", "label", "--repetition-column", "rep", "--position-columns", "thumb-little",
                  "--mains-hz", "60", "--class-names", "rest,fist,pinch")
    assert r.returncode == 0, r.stderr
    rec = read_recording(str(out))
    np.testing.assert_allclose(rec.signals, table[:, :2], rtol=1e-5)
    np.testing.assert_array_equal(rec.labels, table[:, 2])
    np.testing.assert_array_equal(rec.repetitions, table[:, 3])
    np.testing.assert_allclose(rec.positions, table[:, 4:], rtol=1e-5, atol=1e-6)
    assert rec.channel_names == ("emg0", "emg1") and rec.class_names == ("rest", "fist", "pinch")
    assert rec.metadata["mains_hz"] == "60" and config_for_recording(rec).filters.notch_hz == 60.0


def test_names_indices_and_ranges_go_to_the_same_columns(named_csv):
    by_name = import_csv(named_csv, fs_hz=1000.0, signal_columns="emg0-emg1", label_column="label",
                         position_columns=["thumb", "index", "middle", "ring", "little"])
    by_index = import_csv(named_csv, fs_hz=1000.0, signal_columns="0-1", label_column=2, position_columns="4-8")
    mixed = import_csv(named_csv, fs_hz=1000.0, signal_columns=[0, "emg1"], label_column="2", position_columns="4-8")
    for rec in (by_index, mixed):
        np.testing.assert_array_equal(rec.signals, by_name.signals)
        np.testing.assert_array_equal(rec.labels, by_name.labels)
        np.testing.assert_array_equal(rec.positions, by_name.positions)
    assert by_name.metadata.get("mains_hz") is None  # not given: not recorded (50 Hz is assumed)
    # the header is detected: no --skip-rows needed, and --skip-rows 1 with --no-header reads the same data
    plain = import_csv(named_csv, fs_hz=1000.0, signal_columns="0-1", skip_rows=1, header=False)
    np.testing.assert_array_equal(plain.signals, by_name.signals)
    assert plain.channel_names == ("ch0", "ch1")


def test_a_numpy_savetxt_comment_header_names_the_columns(tmp_path, table):
    path = tmp_path / "c.csv"
    np.savetxt(path, table, delimiter=",", header=HEADER, fmt="%.6g")  # "# emg0,emg1,..."
    rec = import_csv(str(path), fs_hz=1000.0, signal_columns="emg0,emg1", repetition_column="rep")
    assert rec.channel_names == ("emg0", "emg1") and rec.n_samples == len(table)


def test_header_forced_when_it_holds_numbers(tmp_path, table):
    path = tmp_path / "n.csv"
    np.savetxt(path, table, delimiter=",", header="1,2,label,rep,a,b,c,d,e", comments="", fmt="%.6g")
    with pytest.raises(ValueError, match="line 1, column 2: 'label' is not a number; .*pass --header"):
        import_csv(str(path), fs_hz=1000.0, signal_columns="0-1")
    rec = import_csv(str(path), fs_hz=1000.0, signal_columns="1,2", header=True)  # names first: columns '1', '2'
    np.testing.assert_allclose(rec.signals, table[:, :2], rtol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["--signal-columns", "emg0,emg9"],
     "Invalid value for '--signal-columns': '{path}' has no column named 'emg9'; it has 9 columns: 0 emg0, 1 emg1, "
     "2 label"),
    (["--signal-columns", "0-1", "--label-column", "12"],
     "Invalid value for '--label-column': column 12 does not exist; '{path}' has 9 columns: 0 emg0"),
    (["--signal-columns", "0-1", "--position-columns", "thumb-ring"],
     "Invalid value for '--position-columns': 5 columns (thumb, index, middle, ring, little), got 4 (column 4 "
     "('thumb'), column 5 ('index')"),
    (["--signal-columns", "0-100000000"], "Invalid value for '--signal-columns': column 9 does not exist"),
])
def test_column_errors_count_from_0_and_name_the_columns(tmp_path, named_csv, capsys, argv, message):
    rc, err = run_cli(capsys, "import", "csv", named_csv, "--out", str(tmp_path / "o.h5"), "--fs-hz", "100", *argv)
    assert rc == 2 and message.format(path=named_csv) in err, err


def test_an_unexpected_header_row_points_to_header_and_skip_rows(tmp_path, table, capsys):
    path = tmp_path / "units.csv"
    np.savetxt(path, table, delimiter=",", header=HEADER + "\nuV,uV,-,-,0..1,0..1,0..1,0..1,0..1", comments="",
               fmt="%.6g")
    rc, err = run_cli(capsys, "import", "csv", str(path), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "emg0,emg1")
    assert rc == 2
    assert "line 2, column 0 ('emg0'): 'uV' is not a number; if the file starts with a header or units row, pass " \
           "--header (the first remaining line names the columns) and/or --skip-rows N" in err
    # names without any header row
    bare = tmp_path / "bare.csv"
    np.savetxt(bare, table, delimiter=",", fmt="%.6g")
    rc, err = run_cli(capsys, "import", "csv", str(bare), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "emg0")
    assert rc == 2 and "'emg0' is not a column number and '{}' has no header row".format(bare) in err
    assert "pass --header if the first line names the columns" in err
    # a header naming fewer columns than the data has
    short = tmp_path / "short.csv"
    np.savetxt(short, table, delimiter=",", header="emg0,emg1,label", comments="", fmt="%.6g")
    rc, err = run_cli(capsys, "import", "csv", str(short), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "emg0")
    assert rc == 2 and "the header row (line 1) names 3 columns but the data rows have 9" in err


def test_a_wrong_delimiter_is_named(tmp_path, table, capsys):
    path = tmp_path / "semi.csv"
    np.savetxt(path, table, delimiter=";", header=HEADER.replace(",", ";"), comments="", fmt="%.6g")
    rc, err = run_cli(capsys, "import", "csv", str(path), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "emg0", "--delimiter", ",")
    assert rc == 2 and ("is not ','-separated numbers: line 1 has no ','; it looks ';'-separated: pass --delimiter "
                        "';' (or leave --delimiter out: it is detected)") in err
    rec = import_csv(str(path), fs_hz=100.0, signal_columns="emg0", delimiter=";")
    assert rec.channel_names == ("emg0",)


@pytest.mark.parametrize("name, write, typed", [
    ("comma", lambda t: "\n".join(",".join(r) for r in t), ["auto", ","]),
    ("semicolon", lambda t: "\n".join(";".join(r) for r in t), ["auto", ";", "semicolon"]),
    ("tab", lambda t: "\n".join("\t".join(r) for r in t), ["auto", "\\t", "\t", "tab"]),
    # a researcher's data set: space-separated, no header, and here and there two spaces or a tab
    ("spaces", lambda t: "\n".join(("  " if i % 3 else " \t").join(r) for i, r in enumerate(t)),
     ["auto", " ", "whitespace", "space"]),
])
def test_the_delimiter_is_detected_or_read_as_typed(tmp_path, name, write, typed):
    rng = np.random.default_rng(3)
    values = rng.normal(size=(40, 3)).round(4)
    path = tmp_path / (name + ".txt")
    path.write_text(write([["{:g}".format(v) for v in row] for row in values]) + "\n")
    for d in typed:
        rec = import_csv(str(path), fs_hz=100.0, signal_columns="0-2", delimiter=d)
        np.testing.assert_allclose(rec.signals, values, rtol=1e-5, err_msg=d)


def test_a_space_separated_file_with_commas_typed_names_whitespace(tmp_path, capsys):
    """It failed with a message that guessed a header and suggested --header/--skip-rows, not --delimiter."""
    path = tmp_path / "S0_D1_C1.csv"
    path.write_text("".join("{:g}  {:g} {:g}\n".format(i, -i, 2 * i) for i in range(30)))
    rc, err = run_cli(capsys, "import", "csv", str(path), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "0-2", "--delimiter", ",")
    assert rc == 2 and "line 1 has no ','; it looks whitespace-separated: pass --delimiter whitespace" in err, err
    assert "--header" not in err
    path.write_text("1 2 3\n4 5 6\n7 8 x\n")
    rc, err = run_cli(capsys, "import", "csv", str(path), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100",
                      "--signal-columns", "0-2")
    assert rc == 2 and ("is not whitespace-separated numbers (the delimiter detected): line 3, column 2: 'x' is not a "
                        "number") in err, err


def test_repetition_zero_is_refused_unless_its_meaning_is_given(tmp_path, table, capsys):
    zero_based = table.copy()
    zero_based[:, 3] -= 1  # repetitions 0, 1, 2
    path = tmp_path / "z.csv"
    np.savetxt(path, zero_based, delimiter=",", header=HEADER, comments="", fmt="%.6g")
    args = ["import", "csv", str(path), "--out", str(tmp_path / "o.h5"), "--fs-hz", "100", "--signal-columns",
            "emg0,emg1", "--label-column", "label", "--repetition-column", "rep"]
    rc, err = run_cli(capsys, *args)
    assert rc == 2 and not (tmp_path / "o.h5").exists()
    assert "column 3 ('rep') (repetition column) holds 0 on 100 of 300 rows (first at line 2): neurohand reads " \
           "repetition 0 as 'none', never held out for validation or test; pass --repetition-zero none" in err
    assert main(args + ["--repetition-zero", "shift"]) == 0
    rec = read_recording(str(tmp_path / "o.h5"))
    assert sorted(np.unique(rec.repetitions)) == [1, 2, 3] and "renumbered +1" in rec.metadata["notes"]
    assert main(args + ["--repetition-zero", "none"]) == 2  # a session file is never replaced unless told
    assert "o.h5 already exists: import into a new file, or give --overwrite to replace it" in capsys.readouterr().err
    assert main(args + ["--repetition-zero", "none", "--overwrite"]) == 0
    rec = read_recording(str(tmp_path / "o.h5"))
    assert sorted(np.unique(rec.repetitions)) == [0, 1, 2] and rec.summary()["repetitions"] == [1, 2]


def test_label_errors_name_the_line_and_the_column(tmp_path, named_csv):
    text = open(named_csv).read().splitlines()
    fields = text[5].split(",")
    fields[2] = "1.5"
    text[5] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"line 6, column 2 \('label'\) \(label column\): expected an integer in "
                                         r"0..32767, got 1.5"):
        import_csv(str(path), fs_hz=100.0, signal_columns="emg0", label_column="label")


def test_mains_hz_is_50_or_60_and_help_names_the_defaults(named_csv):
    with pytest.raises(ValueError, match="Invalid value for 'mains_hz': allowed 50.0, 60.0, got 55.0"):
        import_csv(named_csv, fs_hz=1000.0, signal_columns="emg0", mains_hz=55)
    r = neurohand("import", "csv", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "(default emg)" in text and "--mains-hz {50,60}" in text and "--repetition-zero" in text
    assert "--header" in text and "named by the header row" in text
