"""Data sets stored one file per class, repetition, session or subject: import by a file-name pattern."""

import os

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.session_file import read_recording
from neurohand.training.importers.file_pattern import combine, match_files
from neurohand.training.importers.generic import import_npy

FS = 500.0


@pytest.fixture
def dataset(tmp_path):
    """The issue's data set: S0_D{day}_C{class}.csv, space-separated (a double space here and there), no header, no
    label column; 3 channels, 3 classes, days 1, 2 and 10 (10 sorts after 2)."""
    rng = np.random.default_rng(7)
    raw = tmp_path / "raw"
    raw.mkdir()
    truth = {}
    for day in (1, 2, 10):
        for c in range(3):
            x = (rng.normal(size=(200 + 10 * c, 3)) * (1 + c)).round(4)
            truth[day, c] = x
            rows = [("  " if i % 5 else " ").join("{:g}".format(v) for v in row) for i, row in enumerate(x)]
            (raw / "S0_D{}_C{}.csv".format(day, c)).write_text("\n".join(rows) + "\n")
    (raw / "notes.txt").write_text("not data\n")
    return raw, truth


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_one_session_file_per_day_with_labels_from_the_file_names(dataset, tmp_path, capsys):
    raw, truth = dataset
    rc, out, err = run(capsys, "import", "csv", str(raw / "S0_D{session}_C{label}.csv"), "--fs-hz", str(FS),
                       "--out", str(tmp_path / "out" / "day{session}.h5"))
    assert rc == 0, err
    assert out.splitlines()[0] == "9 files match {}".format(raw / "S0_D{session}_C{label}.csv")
    assert [ln.split(":")[0] for ln in out.splitlines()[1:]] == [
        "wrote " + str(tmp_path / "out" / "day{}.h5".format(d)) for d in (1, 2, 10)]
    rec = read_recording(str(tmp_path / "out" / "day10.h5"))
    np.testing.assert_allclose(rec.signals, np.concatenate([truth[10, c] for c in range(3)]), rtol=1e-5)
    assert rec.class_names == ("rest", "class1", "class2") and rec.fs_hz == FS
    np.testing.assert_array_equal(rec.labels, np.repeat([0, 1, 2], [200, 210, 220]))
    np.testing.assert_array_equal(rec.segment_starts, [0, 200, 410])  # filters restart at each file
    assert [c["name"].decode() for c in rec.cues] == ["rest", "class1", "class2"]
    assert rec.repetitions is None and rec.metadata["session_id"] == "10"


def test_days_joined_in_one_file_become_repetitions_in_day_order(dataset, tmp_path):
    raw, truth = dataset
    files = match_files(str(raw / "S0_D{session}_C{label}.csv"))
    assert [(f.fields["session"], f.fields["label"]) for f in files][:4] == [("1", "0"), ("1", "1"), ("1", "2"),
                                                                             ("2", "0")]
    from neurohand.training.importers import import_csv

    rec = combine(files, lambda p: import_csv(p, fs_hz=FS), source="S0_D{session}_C{label}.csv")
    sizes = [len(truth[d, c]) for d in (1, 2, 10) for c in range(3)]
    np.testing.assert_array_equal(rec.repetitions, np.repeat([1] * 3 + [2] * 3 + [3] * 3, sizes))
    assert "repetitions 1..3 are sessions 1, 2, 10" in rec.metadata["notes"]
    assert rec.metadata["session_id"] == "1,2,10"


def test_a_label_map_names_the_classes_in_order(dataset, tmp_path, capsys):
    raw, _ = dataset
    out = str(tmp_path / "m.h5")
    rc, _, err = run(capsys, "import", "csv", str(raw / "S0_D1_C{label}.csv"), "--fs-hz", str(FS), "--out", out,
                     "--label-map", "2=rest,0=power,1=open")
    assert rc == 0, err
    rec = read_recording(out)
    assert rec.class_names == ("rest", "power", "open")
    np.testing.assert_array_equal(rec.labels, np.repeat([1, 2, 0], [200, 210, 220]))


@pytest.mark.parametrize("argv, message", [
    (["S0_D{day}_C{label}.csv", "--out", "o.h5"],
     "Invalid value for 'FILE': fields allowed {subject}, {session}, {repetition}, {label}, got {day}"),
    (["X_{label}.csv", "--out", "o.h5"], "No file matches '{raw}/X_{label}.csv'; '{raw}' holds S0_D10_C0.csv, "),
    (["S0_D{session}_C{label}.csv", "--out", "s{subject}.h5"],
     "Invalid value for '--out': fields the file pattern has ({session}, {label}), got {subject}"),
    (["S0_D1_C{label}.csv", "--out", "o.h5", "--label-map", "0=rest,1=open"],
     "Invalid value for '--label-map': a class for every label in the file names; '2' is not in it"),
    (["S0_D1_C0.csv", "--out", "o{session}.h5"], "Invalid value for '--out': one file name when FILE is one file"),
    (["S0_D1_C{label}.csv", "--out", "o.h5", "--class-names", "rest,a"],
     "Invalid value for '--class-names': a name for each class 0..2"),
])
def test_patterns_that_cannot_work_are_one_line(dataset, tmp_path, capsys, argv, message):
    raw, _ = dataset
    argv = [str(raw / argv[0])] + [str(tmp_path / a) if a.endswith(".h5") else a for a in argv[1:]]
    rc, out, err = run(capsys, "import", "csv", *argv, "--fs-hz", str(FS))
    assert rc == 2 and err.count("\n") == 1 and message.replace("{raw}", str(raw)) in err, err
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith(".h5")]


def test_labels_that_are_words_need_a_map_and_repetitions_come_from_names(tmp_path, capsys):
    for rep in (0, 1):
        for g in ("fist", "open", "rest"):
            np.save(str(tmp_path / "{}_r{}.npy".format(g, rep)), np.full((100, 2), rep, np.float32))
    pattern = str(tmp_path / "{label}_r{repetition}.npy")
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o.h5"))
    assert rc == 2 and "'--label-map': needed when the file names' labels are not class numbers" in err
    assert "they are 'fist', 'open', 'rest'; list them in class order, rest first, e.g. --label-map rest,fist,open" \
        in err
    # class 0 is rest, where the decoder holds the hand: a map with rest elsewhere would hold it on a gesture
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o.h5"),
                     "--label-map", "fist,rest,open", "--repetition-zero", "shift")
    assert rc == 2 and "Invalid value for '--label-map': rest first: class 0 is rest, where the decoder holds the " \
                       "hand; 'rest' is class 1 in fist,rest,open" in err, err
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o.h5"),
                     "--label-map", "rest,fist,open")
    assert rc == 2 and "repetition 0 in the file name" in err and "--repetition-zero shift" in err
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o.h5"),
                     "--label-map", "rest,fist,open", "--repetition-zero", "shift")
    assert rc == 0, err
    rec = read_recording(str(tmp_path / "o.h5"))
    assert rec.class_names == ("rest", "fist", "open")
    np.testing.assert_array_equal(rec.repetitions, np.repeat([1, 2], 300))
    np.testing.assert_array_equal(rec.labels, np.repeat([1, 2, 0, 1, 2, 0], 100))  # by repetition, then label


def test_a_data_set_without_rest_gets_rest_as_class_0_and_out_names_only_sessions_or_subjects(tmp_path, capsys):
    for g in ("fist", "open"):
        np.save(str(tmp_path / "{}.npy".format(g)), np.ones((100, 2), np.float32))
    pattern = str(tmp_path / "{label}.npy")
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o.h5"),
                     "--label-map", "fist,open")
    assert rc == 0, err
    rec = read_recording(str(tmp_path / "o.h5"))
    assert rec.class_names == ("rest", "fist", "open")
    np.testing.assert_array_equal(rec.labels, np.repeat([1, 2], 100))
    rc, _, err = run(capsys, "import", "npy", pattern, "--fs-hz", "100", "--out", str(tmp_path / "o{label}.h5"),
                     "--label-map", "fist,open")
    assert rc == 2 and "Invalid value for '--out': {session} or {subject} (one session file each), got {label}" in err


def test_a_bad_file_in_a_pattern_leaves_nothing_written(dataset, tmp_path, capsys):
    raw, _ = dataset
    with open(str(raw / "S0_D10_C2.csv"), "a") as f:
        f.write("1 2\n")  # a short row in the last day's last file
    rc, out, err = run(capsys, "import", "csv", str(raw / "S0_D{session}_C{label}.csv"), "--fs-hz", str(FS),
                       "--out", str(tmp_path / "day{session}.h5"))
    assert rc == 2 and "S0_D10_C2.csv" in err and "has 2 fields" in err, err
    assert not [f for f in os.listdir(str(tmp_path)) if f.endswith(".h5")], out  # not even day 1 and day 2


def test_files_of_one_session_must_agree(tmp_path, capsys):
    np.save(str(tmp_path / "c0.npy"), np.zeros((100, 2), np.float32))
    np.save(str(tmp_path / "c1.npy"), np.zeros((100, 3), np.float32))
    rc, _, err = run(capsys, "import", "npy", str(tmp_path / "c{label}.npy"), "--fs-hz", "100", "--out",
                     str(tmp_path / "o.h5"))
    assert rc == 2 and "c1.npy' has 3 channels at 100 Hz (emg) where" in err and "must agree" in err


def test_npy_arrays_either_way_round(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    np.save(str(tmp_path / "a.npy"), x)
    np.save(str(tmp_path / "t.npy"), x.T)
    np.testing.assert_array_equal(import_npy(str(tmp_path / "a.npy"), fs_hz=10.0).signals, x)
    np.testing.assert_array_equal(import_npy(str(tmp_path / "t.npy"), fs_hz=10.0, channels_first=True).signals, x)
    from neurohand.decoder.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match=r"has shape \(2, 20\): fewer samples than channels; if each row is a "
                                                r"channel, pass --channels-first"):
        import_npy(str(tmp_path / "t.npy"), fs_hz=10.0)
    np.savez(str(tmp_path / "z.npz"), signals=x)
    with pytest.raises(InvalidValueError, match="is a .npz archive; import it with: neurohand import npz"):
        import_npy(str(tmp_path / "z.npz"), fs_hz=10.0)
