"""Generic CSV and NPZ imports with explicit sample rate and column choices."""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from neurohand.decoder.errors import InvalidValueError, MissingKeyError
from neurohand.decoder.recording import INT16_MAX, Recording, first_bad_integer, int16_column
from neurohand.decoder.validation import check_int, check_option, check_positive, invalid_value


def _build(signals: np.ndarray, *, fs_hz: float, signal_kind: str, labels: Optional[np.ndarray],
           positions: Optional[np.ndarray], repetitions: Optional[np.ndarray], units: str, source: str,
           class_names: Optional[Sequence[str]]) -> Recording:
    check_positive("fs_hz", fs_hz)
    check_option("signal_kind", signal_kind, ("nerve", "emg", "envelope"))
    if labels is not None:
        labels = int16_column("labels", labels).astype(np.int64)  # no wrap (65537 -> 1) or truncation (1.7 -> 1)
        names = tuple(class_names) if class_names else ("rest",) + tuple(
            "class{}".format(i) for i in range(1, int(labels.max()) + 1))
    else:
        names = tuple(class_names) if class_names else ("rest",)
    pos_idx = None
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != 5:
            raise InvalidValueError(
                "positions must be 5 columns (thumb, index, middle, ring, little), got shape {}".format(
                positions.shape))
        if np.nanmin(positions) < 0 or np.nanmax(positions) > 1:
            raise InvalidValueError(
                "positions must already be scaled to 0..1 (0 open, 1 flexed), got range [{}, {}]".format(
                np.nanmin(positions), np.nanmax(positions)))
        pos_idx = np.arange(len(positions), dtype=np.int64)
    return Recording(
        signals=signals, fs_hz=fs_hz, signal_kind=signal_kind, units=units, labels=labels, class_names=names,
        positions=positions, position_index=pos_idx, repetitions=repetitions,
        metadata={"source": source, "device": "imported", "session_id": os.path.basename(source)},
    )


def _cols(arg: Optional[Sequence[int]]) -> Optional[list]:
    return None if arg is None else [int(c) for c in arg]


def import_csv(
    path: str,
    *,
    fs_hz: float,
    signal_columns: Sequence[int],
    signal_kind: str = "emg",
    label_column: Optional[int] = None,
    position_columns: Optional[Sequence[int]] = None,
    repetition_column: Optional[int] = None,
    delimiter: str = ",",
    skip_rows: int = 0,
    units: str = "",
    class_names: Optional[Sequence[str]] = None,
) -> Recording:
    """Import a delimited text file with one row per sample.

    Parameters
    ----------
    path : str
    fs_hz : float
        Sample rate (required: text files do not carry one).
    signal_columns : sequence of int
        0-based columns holding the signal channels.
    label_column, repetition_column : int, optional
        Column of the movement class (0 = rest) and of the repetition.
    position_columns : sequence of 5 int, optional
        Columns of thumb..little positions already in 0..1.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("No CSV file at {!r}".format(path))
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"#":
        raise invalid_value("--delimiter", "one character (e.g. ',', ';', '\\t'), not a newline, quote or '#', got "
                            "{!r}".format(delimiter))
    check_int("skip_rows", skip_rows, minimum=0)
    try:
        data = np.loadtxt(path, delimiter=delimiter, skiprows=skip_rows, ndmin=2)
    except ValueError as e:
        raise InvalidValueError("{!r} is not {!r}-separated numbers after {} header row(s): {}".format(
            path, delimiter, skip_rows, e)) from None
    ncol = data.shape[1]
    used = list(signal_columns) + [c for c in [label_column, repetition_column] if c is not None] + list(
        position_columns or [])
    bad = [c for c in used if not (0 <= c < ncol)]
    if bad:
        raise InvalidValueError(
            "{!r} has {} columns (0..{}); columns {} do not exist".format(path, ncol, ncol - 1, bad))
    for what, col in (("label", label_column), ("repetition", repetition_column)):
        if col is not None:
            k = first_bad_integer(data[:, col])
            if k is not None:
                raise InvalidValueError(
                    "{!r} row {}, column {} ({}): expected an integer in 0..{}, got {!r}".format(
                        path, skip_rows + k + 1, col, what, INT16_MAX, data[k, col].item()))
    return _build(
        data[:, _cols(signal_columns)].astype(np.float32), fs_hz=fs_hz, signal_kind=signal_kind,
        labels=None if label_column is None else data[:, label_column],
        positions=None if position_columns is None else data[:, _cols(position_columns)],
        repetitions=None if repetition_column is None else data[:, repetition_column],
        units=units, source=path, class_names=class_names,
    )


def import_npz(
    path: str,
    *,
    fs_hz: float,
    signals_key: str = "signals",
    signal_kind: str = "emg",
    labels_key: Optional[str] = None,
    positions_key: Optional[str] = None,
    repetitions_key: Optional[str] = None,
    units: str = "",
    class_names: Optional[Sequence[str]] = None,
) -> Recording:
    """Import arrays from a ``.npz`` file (loaded with ``allow_pickle=False``).

    Parameters
    ----------
    signals_key : str
        Array of shape (n_samples, n_channels).
    labels_key, positions_key, repetitions_key : str, optional
        Arrays of shape (n,), (n, 5) in 0..1 and (n,).
    """
    if not os.path.exists(path):
        raise FileNotFoundError("No NPZ file at {!r}".format(path))
    with np.load(path, allow_pickle=False) as z:
        keys = list(z.keys())
        for k in [signals_key, labels_key, positions_key, repetitions_key]:
            if k is not None and k not in z:
                raise MissingKeyError("{!r} has no array {!r}; it has {}".format(path, k, keys))
        return _build(
            np.asarray(z[signals_key], dtype=np.float32), fs_hz=fs_hz, signal_kind=signal_kind,
            labels=None if labels_key is None else z[labels_key],
            positions=None if positions_key is None else z[positions_key],
            repetitions=None if repetitions_key is None else z[repetitions_key],
            units=units, source=path, class_names=class_names,
        )
