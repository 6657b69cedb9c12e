"""Neurodata Without Borders (NWB, the format of the DANDI archive) both ways, with pynwb (the ``nwb`` extra).

Export (``neurohand export-session SESSION --nwb OUT``) writes one ElectricalSeries of the samples (the electrodes
table names the channels), the finger positions as the behaviour module's TimeSeries ``finger_positions``, the
labels as trials (start, stop, ``label``, ``repetition``), and neurohand's own tables (``repetitions``, ``segments``,
``cues``); a JSON note in the series' description keeps what NWB has no field for (units other than volts, the
signal kind, mains), so that a session comes back exactly.

Import (``neurohand import nwb FILE``) reads such a file, or one any lab wrote: the ElectricalSeries (in microvolts,
through its ``conversion`` and ``offset``), positions from a behaviour TimeSeries of 5 columns in 0..1, labels from
an intervals table (``trials`` by default) and one of its columns; samples outside every interval are rest.
"""

from __future__ import annotations

import datetime
import json
import os
import uuid
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.recording import CUE_DTYPE, Recording
from neurohand.decoder.validation import check_option, invalid_value

MARK = "neurohand "  # the series' description starts with it, then JSON
POSITIONS = "finger_positions"
TO_VOLTS = {"uV": 1e-6, "mV": 1e-3, "V": 1.0}


def _runs(values: np.ndarray) -> List[tuple]:
    """``(start, stop, value)`` of each run of one non-zero value."""
    v = np.asarray(values)
    edges = np.flatnonzero(np.diff(v)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(v)]
    return [(int(a), int(b), v[a].item()) for a, b in zip(starts, stops) if v[a] != 0]


def export_nwb(rec: Recording, out: str) -> None:
    """Write ``rec`` as the NWB file ``out`` (see the module's description)."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.ecephys import ElectricalSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject

    meta = rec.metadata
    try:
        start = datetime.datetime.strptime(meta.get("date", ""), "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        start = datetime.datetime.now(datetime.timezone.utc)
    nwb = NWBFile(session_description="neurohand session {}".format(meta.get("session_id", "")).strip(),
                  identifier=str(uuid.uuid4()), session_start_time=start, session_id=meta.get("session_id"),
                  subject=Subject(subject_id=meta["patient_id"]) if meta.get("patient_id") else None,
                  notes=meta.get("notes"))
    device = nwb.create_device(name=(meta.get("device") or "neurohand").replace("/", "-").replace(":", "-"),
                               description=meta.get("device"))
    group = nwb.create_electrode_group(name="electrodes", description="{} recording sites".format(rec.signal_kind),
                                      location="unknown", device=device)
    nwb.add_electrode_column(name="label", description="channel name")
    for name in rec.channel_names:
        nwb.add_electrode(group=group, location="unknown", label=name)
    note = {"units": rec.units, "signal_kind": rec.signal_kind, "class_names": list(rec.class_names),
            "metadata": {k: v for k, v in meta.items() if k not in ("patient_id", "session_id", "notes")}}
    nwb.add_acquisition(ElectricalSeries(
        name="ElectricalSeries", data=rec.signals, rate=float(rec.fs_hz), conversion=TO_VOLTS.get(rec.units, 1.0),
        electrodes=nwb.create_electrode_table_region(region=list(range(rec.n_channels)), description="all"),
        description=MARK + json.dumps(note), filtering="none: raw samples"))
    if rec.has_positions:
        beh = nwb.create_processing_module(name="behavior", description="finger positions")
        beh.add(TimeSeries(name=POSITIONS, data=rec.positions, timestamps=rec.position_index / rec.fs_hz,
                           unit="fraction of full flexion", description="thumb, index, middle, ring, little; 0 open "
                           "1 flexed"))
    fs = rec.fs_hz
    if rec.labels is not None:
        nwb.add_trial_column(name="label", description="movement class")
        nwb.add_trial_column(name="repetition", description="repetition (0: none)")
        reps = rec.repetitions if rec.repetitions is not None else np.zeros(rec.n_samples, np.int16)
        for a, b, k in _runs(rec.labels):
            nwb.add_trial(start_time=a / fs, stop_time=b / fs, label=rec.class_names[k], repetition=int(reps[a]))
    tables = []
    if rec.repetitions is not None:
        tables.append(("repetitions", "repetition numbers (samples outside: none)",
                       [dict(start_time=a / fs, stop_time=b / fs, repetition=int(r)) for a, b, r in
                        _runs(rec.repetitions)], [("repetition", "repetition number")]))
    if len(rec.segment_starts) > 1:
        ends = list(rec.segment_starts[1:]) + [rec.n_samples]
        tables.append(("segments", "continuous stretches (filters restart at each)",
                       [dict(start_time=a / fs, stop_time=b / fs) for a, b in zip(rec.segment_starts, ends)], []))
    if len(rec.cues):
        tables.append(("cues", "cues shown to the patient",
                       [dict(start_time=int(c["sample"]) / fs, stop_time=(int(c["sample"]) + int(c["duration_samples"]))
                             / fs, cue=c["name"].decode(), label=int(c["label"])) for c in rec.cues],
                       [("cue", "what was cued"), ("label", "class of the cue")]))
    for name, description, rows, columns in tables:
        table = TimeIntervals(name=name, description=description)
        for col, text in columns:
            table.add_column(name=col, description=text)
        for row in rows:
            table.add_interval(**row)
        nwb.add_time_intervals(table)
    with NWBHDF5IO(out, "w") as io:
        io.write(nwb)


def _series(nwb, name: Optional[str]):
    from pynwb.ecephys import ElectricalSeries

    found = {k: v for k, v in nwb.acquisition.items() if isinstance(v, ElectricalSeries)}
    if name is not None:
        if name not in found:
            raise invalid_value("--series", "an ElectricalSeries of the file ({}), got {!r}".format(
                ", ".join(found) or "none", name))
        return found[name]
    if len(found) != 1:
        raise InvalidValueError("the file has {} ElectricalSeries in acquisition ({}); choose one with --series".format(
            len(found), ", ".join(found) or "none"))
    return next(iter(found.values()))


def _rate(series) -> tuple:
    if series.rate is not None:
        return float(series.rate), float(series.starting_time or 0.0)
    t = np.asarray(series.timestamps[:], float)
    step = np.diff(t)
    if len(t) < 2 or np.ptp(step) > 1e-3 * np.median(step):
        raise InvalidValueError("{!r} has irregular timestamps; a decoder needs a fixed sample rate".format(
            series.name))
    return float("{:.9g}".format(1.0 / np.median(step))), float(t[0])  # 200.00000000004 from float stamps: 200


def _sample(t, t0: float, fs: float, n: int) -> np.ndarray:
    return np.clip(np.round((np.asarray(t, float) - t0) * fs).astype(np.int64), 0, n)


def _label_column(table, name: Optional[str]) -> str:
    cols = [c for c in table.colnames if c not in ("start_time", "stop_time", "tags", "timeseries", "repetition")]
    if name is not None:
        check_option("--label-column", name, cols)
        return name
    if "label" in cols or len(cols) == 1:
        return "label" if "label" in cols else cols[0]
    raise InvalidValueError("the {!r} table has the columns {}; say which names the movement with --label-column"
                            .format(table.name, ", ".join(cols) or "none"))


def import_nwb(path: str, *, series: Optional[str] = None, intervals: str = "trials",
               label_column: Optional[str] = None, positions: Optional[str] = None, signal_kind: Optional[str] = None,
               class_names: Optional[Sequence[str]] = None, mains_hz: Optional[float] = None) -> Recording:
    """Read an NWB file into a :class:`Recording` (see the module's description).

    Parameters
    ----------
    series : str, optional
        The ElectricalSeries to read (needed when the file has several).
    intervals : str
        The intervals table whose rows are the labelled movements (``trials``); absent: no labels.
    label_column : str, optional
        Its column naming the movement (default ``label``, or its only other column).
    positions : str, optional
        The behaviour TimeSeries of finger positions (default ``finger_positions`` when there).
    signal_kind : {'nerve', 'emg', 'envelope'}, optional
        Default: what neurohand wrote, else ``emg``.
    class_names : sequence of str, optional
        The classes in order, rest first (default: neurohand's, else the labels in order of appearance after rest).
    """
    from pynwb import NWBHDF5IO, TimeSeries

    if not os.path.isfile(path):
        raise FileNotFoundError("No NWB file at {!r}".format(path))
    try:
        io = NWBHDF5IO(path, "r")
        nwb = io.read()
    except Exception as e:  # noqa: BLE001 - h5py, hdmf and pynwb each raise their own for a file that is not NWB
        raise InvalidValueError("{!r} is not a readable NWB file ({}: {})".format(
            path, type(e).__name__, str(e).split("\n")[0])) from None
    with io:
        s = _series(nwb, series)
        fs, t0 = _rate(s)
        desc = s.description or ""
        note: Dict[str, Any] = json.loads(desc[len(MARK):]) if desc.startswith(MARK) else {}
        raw = np.asarray(s.data[:])
        if note:  # written by neurohand: the samples as they were
            signals, units = raw.astype(np.float32), note["units"]
        else:
            signals, units = ((raw * float(s.conversion) + float(s.offset or 0.0)) * 1e6).astype(np.float32), "uV"
        signals = signals[:, None] if signals.ndim == 1 else signals
        n = len(signals)
        etable = s.electrodes.table
        rows = np.asarray(s.electrodes.data[:], int)
        names = [str(v) for v in np.asarray(etable["label"][:])[rows]] if "label" in etable.colnames else []
        meta = dict(note.get("metadata", {}))
        meta.update(source=path, session_id=str(nwb.session_id or nwb.identifier),
                    date=nwb.session_start_time.strftime("%Y-%m-%d"))
        if nwb.subject is not None and nwb.subject.subject_id:
            meta["patient_id"] = str(nwb.subject.subject_id)
        if nwb.notes:
            meta["notes"] = str(nwb.notes)
        if mains_hz is not None:
            meta["mains_hz"] = "{:g}".format(float(mains_hz))
        pos = pos_idx = None
        beh = nwb.processing.get("behavior")
        found = {k: v for k, v in (beh.data_interfaces.items() if beh is not None else []) if isinstance(v, TimeSeries)}
        if positions is not None and positions not in found:
            raise invalid_value("--positions", "a TimeSeries of the behaviour module ({}), got {!r}".format(
                ", ".join(found) or "none", positions))
        ts = found.get(positions or POSITIONS)
        if ts is not None:
            pos = np.asarray(ts.data[:], np.float32)
            t = ts.timestamps[:] if ts.timestamps is not None else ts.starting_time + np.arange(len(pos)) / ts.rate
            pos_idx = _sample(t, t0, fs, n - 1)
        classes = list(class_names or note.get("class_names") or [])
        labels = reps = None
        table = nwb.intervals.get(intervals) if nwb.intervals is not None else None
        if table is not None and len(table):
            col = _label_column(table, label_column)
            values = [v.decode() if isinstance(v, bytes) else str(v) for v in table[col][:]]
            if not classes:
                seen = list(dict.fromkeys(values))
                classes = ["rest"] + [v for v in seen if v != "rest"]
            missing = sorted(set(values) - set(classes))
            if missing:
                raise invalid_value("--class-names", "every label of the {!r} table ({}), got {}".format(
                    intervals, ", ".join(missing), ", ".join(classes)))
            labels = np.zeros(n, np.int64)
            a, b = _sample(table["start_time"][:], t0, fs, n), _sample(table["stop_time"][:], t0, fs, n)
            for lo, hi, v in zip(a, b, values):
                labels[lo:hi] = classes.index(v)
            if "repetition" in table.colnames and "repetitions" not in nwb.intervals:
                reps = np.zeros(n, np.int64)
                for lo, hi, r in zip(a, b, table["repetition"][:]):
                    reps[lo:hi] = int(r)
        extra = {k: nwb.intervals[k] for k in ("repetitions", "segments", "cues") if k in (nwb.intervals or {})}
        if "repetitions" in extra:
            reps = np.zeros(n, np.int64)
            tab = extra["repetitions"]
            for lo, hi, r in zip(_sample(tab["start_time"][:], t0, fs, n), _sample(tab["stop_time"][:], t0, fs, n),
                                 tab["repetition"][:]):
                reps[lo:hi] = int(r)
        starts = _sample(extra["segments"]["start_time"][:], t0, fs, n) if "segments" in extra else [0]
        cues = np.zeros(0, CUE_DTYPE)
        if "cues" in extra:
            tab = extra["cues"]
            a = _sample(tab["start_time"][:], t0, fs, n)
            b = np.round((np.asarray(tab["stop_time"][:], float) - t0) * fs).astype(np.int64)  # may end after the data
            cues = np.array([(lo, int(k), hi - lo, str(nm).encode()) for lo, hi, k, nm in
                             zip(a, b, tab["label"][:], tab["cue"][:])], dtype=CUE_DTYPE)
    return Recording(signals=signals, fs_hz=fs, signal_kind=signal_kind or note.get("signal_kind", "emg"),
                     channel_names=tuple(names), units=units, positions=pos, position_index=pos_idx, labels=labels,
                     class_names=tuple(classes) if classes else ("rest",), repetitions=reps,
                     segment_starts=np.asarray(starts, np.int64), cues=cues, metadata=meta)
