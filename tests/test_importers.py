import os

import numpy as np
import pytest

from neurohand.training.importers import (
    GLOVE_FINGER_SENSORS,
    glove_to_positions,
    import_3dc,
    import_csv,
    import_ninapro,
    import_npz,
)
from neurohand.training.importers.ninapro import FLEXION_MOVEMENT, _fill_rest_repetitions, finger_check


def test_ninapro_import(ninapro_file):
    rec = import_ninapro(ninapro_file)
    assert rec.signals.shape == (100686, 10) and rec.fs_hz == 100.0
    assert rec.signal_kind == "envelope"
    assert rec.positions.shape == (100686, 5)
    assert rec.positions.min() >= 0 and rec.positions.max() <= 1
    assert sorted(np.unique(rec.labels)) == list(range(13))
    assert rec.class_names[1] == "index_flexion" and rec.class_names[12] == "thumb_extension"
    assert sorted(np.unique(rec.repetitions)) == list(range(1, 11))  # rest assigned to a repetition


def test_ninapro_each_fingers_flexion_moves_it_most(ninapro_file):
    rec = import_ninapro(ninapro_file)
    check = finger_check(rec.positions, rec.labels)
    for finger, changes in check.items():
        own = changes[finger]
        others = [v for k, v in changes.items() if k != finger]
        assert own > 0.2, (finger, changes)
        assert own > max(others), (finger, changes)
    assert set(FLEXION_MOVEMENT) == set(GLOVE_FINGER_SENSORS)


def test_ninapro_repetition_split(ninapro_file):
    train = import_ninapro(ninapro_file, reps=range(1, 8))
    test = import_ninapro(ninapro_file, reps=[8, 9, 10])
    assert set(np.unique(train.repetitions)) == set(range(1, 8))
    assert set(np.unique(test.repetitions)) == {8, 9, 10}
    assert train.n_samples + test.n_samples == 100686
    # each movement's block of repetitions is its own continuous segment
    assert len(train.segment_starts) == 12 and len(test.segment_starts) == 12
    with pytest.raises(ValueError, match="has none of repetitions"):
        import_ninapro(ninapro_file, reps=[42])


def test_fill_rest_repetitions():
    np.testing.assert_array_equal(_fill_rest_repetitions(np.array([0, 0, 1, 1, 0, 2, 0, 0])),
                                  [1, 1, 1, 1, 2, 2, 2, 2])


def test_glove_mapping_shape_error():
    with pytest.raises(ValueError, match=r"shape \(n, 22\)"):
        glove_to_positions(np.zeros((10, 18)))


def test_3dc_import(threedc_dir):
    rec = import_3dc(os.path.join(threedc_dir, "Participant1", "train"))
    assert rec.fs_hz == 1000.0 and rec.n_channels == 10 and rec.signal_kind == "emg"
    assert sorted(np.unique(rec.labels)) == list(range(11))
    assert sorted(np.unique(rec.repetitions)) == [1, 2, 3, 4]
    assert len(rec.segment_starts) == 44 and len(rec.cues) == 44
    assert not rec.has_positions
    # the file documented as shortest (363 rows) is the segment of repetition 3, class 5
    lengths = np.diff(np.append(rec.segment_starts, rec.n_samples))
    k = int(np.flatnonzero((rec.cues["label"] == 5) & (rec.repetitions[rec.cues["sample"]] == 4))[0])
    assert lengths[k] == 363
    with pytest.raises(FileNotFoundError, match="no EMG/ folder"):
        import_3dc(threedc_dir)


def test_csv_and_npz_imports(tmp_path, rng):
    n = 200
    sig = rng.normal(size=(n, 3))
    lab = (np.arange(n) // 50) % 2
    pos = rng.uniform(size=(n, 5))
    table = np.column_stack([lab, sig, pos])
    path = tmp_path / "d.csv"
    np.savetxt(path, table, delimiter=",", header="label,a,b,c,p1,p2,p3,p4,p5", comments="")
    rec = import_csv(str(path), fs_hz=500.0, signal_columns=[1, 2, 3], label_column=0,
                     position_columns=[4, 5, 6, 7, 8], skip_rows=1, units="mV")
    np.testing.assert_allclose(rec.signals, sig, rtol=1e-6)
    np.testing.assert_array_equal(rec.labels, lab)
    assert rec.fs_hz == 500.0 and rec.class_names == ("rest", "class1")
    with pytest.raises(ValueError, match="Invalid value for '--signal-columns': column 12 does not exist; .* has 9 "
                                         "columns: 0 label, 1 a, 2 b"):
        import_csv(str(path), fs_hz=500.0, signal_columns=[12])  # the header row is detected
    npz = tmp_path / "d.npz"
    np.savez(npz, emg=sig, y=lab)
    rec2 = import_npz(str(npz), fs_hz=500.0, signals_key="emg", labels_key="y", signal_kind="nerve")
    np.testing.assert_allclose(rec2.signals, sig, rtol=1e-6)
    assert rec2.signal_kind == "nerve"
    with pytest.raises(KeyError, match="has no array 'signals'"):
        import_npz(str(npz), fs_hz=500.0)
    np.savez(npz, emg=sig, pos=pos * 3)
    with pytest.raises(ValueError, match="scaled to 0..1"):
        import_npz(str(npz), fs_hz=500.0, signals_key="emg", positions_key="pos")


@pytest.mark.parametrize("column, value, what", [(0, "65537", "label"), (0, "1.7", "label"), (0, "-1", "label"),
                                                 (0, "nan", "label"), (1, "70001", "repetition")])
def test_csv_labels_and_repetitions_never_wrap(tmp_path, capsys, column, value, what):
    """Issue 19.9: label 65537 became class 1 (int16), repetition 70001 became 4465, label 1.7 became 1."""
    from neurohand.cli import main

    rows = [["0", "1", "0.5", "0.1"] for _ in range(6)]
    rows[3][column] = value
    path = tmp_path / "d.csv"
    path.write_text("label,rep,a,b\n" + "".join(",".join(r) + "\n" for r in rows))
    out = tmp_path / "s.h5"
    assert main(["import", "csv", str(path), "--out", str(out), "--fs-hz", "100", "--signal-columns", "2-3",
                 "--label-column", "0", "--repetition-column", "1", "--skip-rows", "1"]) == 2
    err = capsys.readouterr().err
    assert "line 5, column {} ({} column): expected an integer in 0..32767".format(column, what) in err
    assert err.count("\n") == 1 and not out.exists()


def test_recording_refuses_labels_it_would_wrap():
    from neurohand.decoder.recording import Recording

    with pytest.raises(ValueError, match="'repetitions': integers in 0..32767, got 70001 at sample 2"):
        Recording(signals=np.zeros((4, 1), np.float32), fs_hz=100.0, signal_kind="emg",
                  repetitions=np.array([1, 1, 70001, 1]))
    with pytest.raises(ValueError, match="Invalid value for 'labels': integers in 0..32767, got 1.7 at sample 0"):
        Recording(signals=np.zeros((2, 1), np.float32), fs_hz=100.0, signal_kind="emg", labels=np.array([1.7, 0.0]),
                  class_names=("rest", "a"))
