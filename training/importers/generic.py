"""Generic CSV and NPZ imports with explicit sample rate and column choices."""

from __future__ import annotations

import os
import warnings
from typing import Optional, Sequence, Union

import numpy as np

from neurohand.decoder.errors import InvalidValueError, MissingKeyError
from neurohand.decoder.recording import INT16_MAX, Recording, first_bad_integer, int16_column
from neurohand.decoder.validation import check_int, check_option, check_positive, invalid_value

from .csv_table import (
    AUTO,
    SKIP_HINT,
    ColumnSpec,
    bad_cell_error,
    column_label,
    parse_delimiter,
    read_header,
    resolve_column,
    resolve_columns,
    sniff_delimiter,
)


def _build(signals: np.ndarray, *, fs_hz: float, signal_kind: str, labels: Optional[np.ndarray],
           positions: Optional[np.ndarray], repetitions: Optional[np.ndarray], units: str, source: str,
           class_names: Optional[Sequence[str]], channel_names: Sequence[str] = (),
           metadata: Optional[dict] = None) -> Recording:
    check_positive("fs_hz", fs_hz)
    check_option("signal_kind", signal_kind, ("nerve", "emg", "envelope"))
    if signals.ndim != 2 or signals.shape[0] == 0 or signals.shape[1] == 0:
        raise InvalidValueError("{}: the signals have shape {}; expected (n_samples, n_channels) with at least one "
                                "sample and one channel".format(source, signals.shape))
    bad = ~np.isfinite(signals)
    if bad.any():
        i, c = np.argwhere(bad)[0]
        raise InvalidValueError("{}: {} of {} signal values are not finite (NaN or infinity), the first at sample {}, "
                                "channel {}; expected finite samples (cut or fill the gaps first)".format(
                                    source, int(bad.sum()), bad.size, int(i), int(c)))
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
        positions=positions, position_index=pos_idx, repetitions=repetitions, channel_names=tuple(channel_names),
        metadata=dict({"source": source, "device": "imported", "session_id": os.path.basename(source)},
                      **(metadata or {})),
    )


REPETITION_ZERO = ("error", "none", "shift")
"""What a 0 in a CSV's repetition column means: refused (``error``, the default: neurohand reads 0 as "no
repetition", never held out for validation or test), ``none`` (it does mean no repetition, e.g. rest between
trials), or ``shift`` (the file counts repetitions from 0: every repetition is renumbered +1)."""


def _mains(mains_hz: Optional[float]) -> dict:
    if mains_hz is None:
        return {}
    check_option("mains_hz", float(mains_hz), (50.0, 60.0), extra="the mains frequency of the country recorded in")
    return {"mains_hz": "{:g}".format(float(mains_hz))}


def import_csv(
    path: str,
    *,
    fs_hz: float,
    signal_columns: Optional[ColumnSpec] = None,
    signal_kind: str = "emg",
    label_column: Union[int, str, None] = None,
    position_columns: Optional[ColumnSpec] = None,
    repetition_column: Union[int, str, None] = None,
    delimiter: Optional[str] = AUTO,
    skip_rows: int = 0,
    header: Optional[bool] = None,
    units: str = "",
    class_names: Optional[Sequence[str]] = None,
    mains_hz: Optional[float] = None,
    repetition_zero: str = "error",
) -> Recording:
    """Import a delimited text file with one row per sample.

    Parameters
    ----------
    path : str
    fs_hz : float
        Sample rate (required: text files do not carry one).
    signal_columns : str or sequence of int or str, optional
        Columns of the signal channels, counted from 0 or named by the header row: ``"0-9"``, ``"emg0,emg1"``,
        ``"emg0-emg7"``, ``[0, 1]``. None (default): every column no other option names.
    label_column, repetition_column : int or str, optional
        Column of the movement class (0 = rest) and of the repetition (trial number, from 1).
    position_columns : str or sequence of 5 int or str, optional
        Columns of thumb..little positions already in 0..1.
    delimiter : str or None
        One character, None for runs of spaces and tabs, or ``'auto'`` (default): detected from the first lines
        (:func:`~training.importers.csv_table.sniff_delimiter`); ``'tab'`` and ``'whitespace'`` are read too.
    skip_rows : int
        Lines skipped before the header row (if any) and the data.
    header : bool, optional
        True: the first line after ``skip_rows`` names the columns; False: it is data; None (default): detected
        (a first line with no number in it is a header).
    mains_hz : {50, 60}, optional
        Mains frequency where it was recorded, recorded in the session (the EMG features notch it; 50 when absent).
    repetition_zero : {'error', 'none', 'shift'}
        What a 0 in the repetition column means: see :data:`REPETITION_ZERO`.

    Returns
    -------
    Recording
        ``channel_names`` from the header row when there is one.
    """
    if not os.path.exists(path):
        raise FileNotFoundError("No CSV file at {!r}".format(path))
    delimiter = parse_delimiter(delimiter)
    check_int("skip_rows", skip_rows, minimum=0)
    detected = delimiter == AUTO
    if detected:
        delimiter = sniff_delimiter(path, skip_rows=skip_rows)
    check_option("repetition_zero", repetition_zero, REPETITION_ZERO)
    meta = _mains(mains_hz)
    names, first = read_header(path, delimiter=delimiter, skip_rows=skip_rows, header=header)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Empty input file": refused below with the file named
            data = np.loadtxt(path, delimiter=delimiter, skiprows=first, ndmin=2)
    except ValueError as e:
        raise bad_cell_error(path, delimiter=delimiter, first_data_line=first, names=names, reason=str(e),
                             detected=detected) from None
    if data.size == 0:
        raise InvalidValueError("{!r} has no data rows after line {}".format(path, first))
    ncol = data.shape[1]
    if names is not None and len(names) != ncol:
        raise InvalidValueError("{!r}: the header row (line {}) names {} columns but the data rows have {}; {}".format(
            path, first, len(names), ncol, SKIP_HINT))
    lab = resolve_column("--label-column", label_column, names, ncol, path)
    rep = resolve_column("--repetition-column", repetition_column, names, ncol, path)
    pos = None if position_columns is None else resolve_columns("--position-columns", position_columns, names,
                                                                ncol, path)
    if signal_columns is None:
        sig = [c for c in range(ncol) if c not in {lab, rep} | set(pos or ())]
        if not sig:
            raise invalid_value("--signal-columns", "at least one column; the other options name all {} of {!r}"
                                .format(ncol, path))
    else:
        sig = resolve_columns("--signal-columns", signal_columns, names, ncol, path)
    if pos is not None and len(pos) != 5:
        raise invalid_value("--position-columns", "5 columns (thumb, index, middle, ring, little), got {} ({})".format(
            len(pos), ", ".join(column_label(c, names) for c in pos)))
    for what, col in (("label", lab), ("repetition", rep)):
        if col is not None:
            k = first_bad_integer(data[:, col])
            if k is not None:
                raise InvalidValueError(
                    "{!r} line {}, {} ({} column): expected an integer in 0..{}, got {!r}".format(
                        path, _line_of(path, first, k), column_label(col, names), what, INT16_MAX,
                        data[k, col].item()))
    repetitions = None if rep is None else data[:, rep]
    if repetitions is not None and (repetitions == 0).any():
        n0 = int((repetitions == 0).sum())
        if repetition_zero == "error":
            raise InvalidValueError(
                "{!r} {} (repetition column) holds 0 on {} of {} rows (first at line {}): neurohand reads repetition "
                "0 as 'none', never held out for validation or test; pass --repetition-zero none if 0 does mean no "
                "repetition, or --repetition-zero shift if the file counts repetitions from 0 (they become 1, 2, "
                "...)".format(path, column_label(rep, names), n0, len(repetitions),
                              _line_of(path, first, int(np.flatnonzero(repetitions == 0)[0]))))
        if repetition_zero == "shift":
            if repetitions.max() >= INT16_MAX:
                raise InvalidValueError("{!r} {}: repetition {:g} + 1 is beyond {}".format(
                    path, column_label(rep, names), repetitions.max(), INT16_MAX))
            repetitions = repetitions + 1
            meta["notes"] = "repetitions renumbered +1 (the file counts from 0)"
    channel_names = tuple(names[c] for c in sig) if names else ()
    return _build(
        data[:, sig].astype(np.float32), fs_hz=fs_hz, signal_kind=signal_kind,
        labels=None if lab is None else data[:, lab],
        positions=None if pos is None else data[:, pos],
        repetitions=repetitions, units=units, source=path, class_names=class_names,
        channel_names=channel_names if all(channel_names) and len(set(channel_names)) == len(sig) else (),
        metadata=meta,
    )


def _line_of(path: str, first: int, row: int) -> int:
    """1-based line number of data row ``row`` (blank and comment lines skipped, as numpy.loadtxt skips them)."""
    k = -1
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            if i >= first and line.split("#", 1)[0].strip():
                k += 1
                if k == row:
                    return i + 1
    return first + row + 1


def _np_load(path: str, what: str, expected: str):
    """``numpy.load`` without pickle; a missing file or one numpy cannot read is one line naming ``expected``."""
    if not os.path.exists(path):
        raise FileNotFoundError("No {} at {!r}".format(what, path))
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InvalidValueError("{!r} is not {} ({})".format(path, expected, str(e).split(". ")[0])) from None


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
    mains_hz: Optional[float] = None,
) -> Recording:
    """Import arrays from a ``.npz`` file (loaded with ``allow_pickle=False``).

    Parameters
    ----------
    signals_key : str
        Array of shape (n_samples, n_channels).
    labels_key, positions_key, repetitions_key : str, optional
        Arrays of shape (n,), (n, 5) in 0..1 and (n,).
    mains_hz : {50, 60}, optional
        Mains frequency where it was recorded, recorded in the session.
    """
    meta = _mains(mains_hz)
    z = _np_load(path, "NPZ file", "a NumPy .npz archive of plain arrays")
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise InvalidValueError("{!r} holds a single array ({}); expected a .npz archive with a {!r} array".format(
            path, "np.save" if isinstance(z, np.ndarray) else type(z).__name__, signals_key))
    with z:
        keys = list(z.keys())
        arrays = {}
        for k in [signals_key, labels_key, positions_key, repetitions_key]:
            if k is None:
                continue
            if k not in z:
                raise MissingKeyError("{!r} has no array {!r}; it has {}".format(path, k, keys))
            try:
                arrays[k] = z[k]
            except ValueError:  # an object array: loading it would unpickle
                raise InvalidValueError("array {!r} of {!r} holds Python objects; expected numbers (save it with a "
                                        "numeric dtype)".format(k, path)) from None
            if arrays[k].dtype.kind not in "biuf":
                raise InvalidValueError("array {!r} of {!r} is of type {}; expected numbers".format(
                    k, path, arrays[k].dtype))
        return _build(
            np.asarray(arrays[signals_key], dtype=np.float32), fs_hz=fs_hz, signal_kind=signal_kind,
            labels=arrays.get(labels_key), positions=arrays.get(positions_key),
            repetitions=arrays.get(repetitions_key), units=units, source=path, class_names=class_names,
            metadata=meta,
        )


def import_npy(
    path: str,
    *,
    fs_hz: float,
    signal_kind: str = "emg",
    channels_first: bool = False,
    units: str = "",
    class_names: Optional[Sequence[str]] = None,
    mains_hz: Optional[float] = None,
) -> Recording:
    """Import one array saved with ``numpy.save``: the samples, shape (n_samples, n_channels), or (n_samples,).

    Parameters
    ----------
    channels_first : bool
        The array is (n_channels, n_samples).
    mains_hz : {50, 60}, optional
        Mains frequency where it was recorded, recorded in the session.
    """
    meta = _mains(mains_hz)
    x = _np_load(path, ".npy file", "a NumPy .npy array of numbers")
    if not isinstance(x, np.ndarray):
        raise InvalidValueError("{!r} is a .npz archive; import it with: neurohand import npz".format(path))
    if x.dtype.kind not in "biuf":
        raise InvalidValueError("{!r} holds {} values; expected numbers".format(path, x.dtype))
    x = x[:, None] if x.ndim == 1 else (x.T if channels_first else x)
    if x.ndim == 2 and x.shape[0] < x.shape[1]:
        raise InvalidValueError("{!r} has shape {}: fewer samples than channels; if each row is a channel, pass "
                                "--channels-first".format(path, x.shape[::-1] if channels_first else x.shape))
    return _build(np.asarray(x, dtype=np.float32), fs_hz=fs_hz, signal_kind=signal_kind, labels=None,
                  positions=None, repetitions=None, units=units, source=path, class_names=class_names,
                  metadata=meta)
