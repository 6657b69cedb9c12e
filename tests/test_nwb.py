"""NWB both ways: a session exported and imported back exactly, a file written by pynwb itself in another lab's
layout, pynwb's own validator on what neurohand writes, and bad input in one line."""

import dataclasses
import datetime
import os
import uuid

import numpy as np
import pytest

from neurohand.cli import main
from neurohand.decoder.session_file import read_recording, write_recording

pynwb = pytest.importorskip("pynwb", reason="pynwb (the nwb extra) is not installed")


@pytest.fixture
def session(tmp_path, small_sim):
    """A simulated session with positions, labels, repetitions, cues and two segments."""
    rec = dataclasses.replace(small_sim, segment_starts=np.array([0, small_sim.n_samples // 2]),
                              metadata=dict(small_sim.metadata, patient_id="P3", session_id="day2",
                                            date="2026-11-30", mains_hz="60"))
    path = str(tmp_path / "s.h5")
    write_recording(rec, path)
    return path, rec


def test_a_session_goes_to_nwb_and_comes_back_exactly(session, tmp_path, capsys):
    path, rec = session
    out = str(tmp_path / "s.nwb")
    assert main(["export-session", path, "--nwb", out]) == 0
    assert "wrote {}: {} samples x {} channels".format(out, rec.n_samples, rec.n_channels) in capsys.readouterr().out
    assert main(["import", "nwb", out, "--out", str(tmp_path / "back.h5")]) == 0
    back = read_recording(str(tmp_path / "back.h5"))
    np.testing.assert_array_equal(back.signals, rec.signals)
    assert (back.fs_hz, back.units, back.signal_kind, back.channel_names, back.class_names) == (
        rec.fs_hz, rec.units, rec.signal_kind, rec.channel_names, rec.class_names)
    np.testing.assert_array_equal(back.labels, rec.labels)
    np.testing.assert_array_equal(back.repetitions, rec.repetitions)
    np.testing.assert_array_equal(back.position_index, rec.position_index)
    np.testing.assert_allclose(back.positions, rec.positions, atol=1e-7)
    np.testing.assert_array_equal(back.segment_starts, rec.segment_starts)
    np.testing.assert_array_equal(back.cues, rec.cues)
    for key in ("patient_id", "session_id", "date", "mains_hz", "device"):
        assert back.metadata[key] == rec.metadata[key], key
    assert main(["export-session", path, "--nwb", out]) == 2  # never overwritten
    assert "exists; give another --nwb file" in capsys.readouterr().err


def test_what_neurohand_writes_passes_pynwbs_validator(session, tmp_path):
    from neurohand.training.importers.nwb import export_nwb

    out = str(tmp_path / "v.nwb")
    export_nwb(session[1], out)
    assert list(pynwb.validate(path=out)) == []


def write_foreign(path, *, two_series=False):
    """Another lab's file, written with pynwb: int16 counts scaled to volts by 'conversion', electrodes without
    labels, timestamps instead of a rate, a trials table whose 'condition' names the gesture, no positions."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.ecephys import ElectricalSeries
    from pynwb.file import Subject

    nwb = NWBFile(session_description="EMG gestures", identifier=str(uuid.uuid4()),
                  session_start_time=datetime.datetime(2025, 3, 1, 9, 30, tzinfo=datetime.timezone.utc),
                  subject=Subject(subject_id="sub-07", species="Homo sapiens"))
    device = nwb.create_device(name="Myo armband")
    group = nwb.create_electrode_group(name="forearm", description="8 EMG", location="forearm", device=device)
    for _ in range(8):
        nwb.add_electrode(group=group, location="forearm")
    region = nwb.create_electrode_table_region(region=list(range(8)), description="all")
    counts = (np.random.default_rng(0).normal(size=(2000, 8)) * 300).astype(np.int16)
    nwb.add_acquisition(ElectricalSeries(name="EMG", data=counts, electrodes=region, conversion=2e-7,
                                         timestamps=10.0 + np.arange(2000) / 200.0))
    if two_series:
        nwb.add_acquisition(ElectricalSeries(name="EMG2", data=counts, electrodes=region, rate=200.0))
    nwb.add_trial_column(name="condition", description="gesture")
    for start, gesture in [(1.0, "fist"), (3.0, "open"), (5.0, "fist"), (7.0, "open")]:
        nwb.add_trial(start_time=10.0 + start, stop_time=10.0 + start + 1.5, condition=gesture)
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return counts


def test_a_file_another_lab_wrote_with_pynwb(tmp_path, capsys):
    path = str(tmp_path / "sub-07_ses-1.nwb")
    counts = write_foreign(path)
    out = str(tmp_path / "o.h5")
    assert main(["import", "nwb", path, "--out", out]) == 0, capsys.readouterr().err
    rec = read_recording(out)
    assert rec.fs_hz == 200.0 and rec.units == "uV" and rec.signal_kind == "emg" and rec.n_channels == 8
    np.testing.assert_allclose(rec.signals, counts * 0.2, rtol=1e-6)  # counts x 2e-7 V = x 0.2 uV
    assert rec.class_names == ("rest", "fist", "open")
    expected = np.zeros(2000, int)
    for start, k in ((1.0, 1), (3.0, 2), (5.0, 1), (7.0, 2)):  # timestamps start at 10 s: sample 0
        expected[int(start * 200):int((start + 1.5) * 200)] = k
    np.testing.assert_array_equal(rec.labels, expected)
    assert rec.repetitions is None and not rec.has_positions
    assert rec.metadata["patient_id"] == "sub-07" and rec.metadata["date"] == "2025-03-01"


@pytest.mark.parametrize("argv, message", [
    (["--series", "EMG", "--label-column", "gesture"],
     "Invalid value for '--label-column': allowed 'condition', got 'gesture'"),
    (["--series", "LFP"], "Invalid value for '--series': an ElectricalSeries of the file (EMG, EMG2), got 'LFP'"),
    ([], "the file has 2 ElectricalSeries in acquisition (EMG, EMG2); choose one with --series"),
    (["--series", "EMG", "--class-names", "rest,fist"],
     "Invalid value for '--class-names': every label of the 'trials' table (open), got rest, fist"),
])
def test_nwb_choices_that_cannot_work_are_one_line(tmp_path, capsys, argv, message):
    path = str(tmp_path / "f.nwb")
    write_foreign(path, two_series=True)
    assert main(["import", "nwb", path, "--out", str(tmp_path / "o.h5")] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not os.path.exists(str(tmp_path / "o.h5"))


def test_a_file_that_is_not_nwb_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x.nwb"
    bad.write_bytes(b"not an hdf5 file at all")
    assert main(["import", "nwb", str(bad), "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a readable NWB file" in err, err
