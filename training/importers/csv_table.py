"""Delimited text tables for :func:`training.importers.import_csv`: header row, columns by name or index, errors.

Errors point at the line (counted from 1, as editors count) and column (counted from 0, as the ``--*-column`` flags
count) that is wrong.

A header row is the first line after the skipped ones when none of its fields is a number (``# a,b,c`` as
``numpy.savetxt(header=...)`` writes it counts too), or when forced with ``header=True``.

The delimiter is one character, or ``None``: runs of spaces and tabs (``numpy.loadtxt``'s whitespace). ``'auto'``
(the default) takes the one that splits the first lines into the same number of numbers: comma, tab, semicolon,
pipe, then whitespace.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import invalid_value

ColumnSpec = Union[str, int, Sequence[Union[int, str]]]
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")
MAX_NAMES_SHOWN = 16
SKIP_HINT = ("if the file starts with a header or units row, pass --header (the first remaining line names the "
             "columns) and/or --skip-rows N (lines to skip first)")


AUTO = "auto"
CANDIDATES = (",", "\t", ";", "|")
SNIFF_LINES = 50


def parse_delimiter(text: Optional[str]) -> Optional[str]:
    r"""Return the delimiter a user typed: one character, ``None`` (whitespace) or ``'auto'``.

    ``	`` (a backslash and a t, as a shell passes ``'	'``) and ``tab`` are a tab; ``' '``, ``space`` and
    ``whitespace`` are runs of spaces and tabs; ``comma``, ``semicolon`` and ``pipe`` are what they say.
    """
    if text is None or text == AUTO:
        return text
    t = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(text, text)
    if t in (" ", "space", "whitespace"):
        return None
    if len(t) != 1 or t in "\r\n\"#":
        raise invalid_value("--delimiter", "one character (e.g. ',', ';', '\\t'), 'whitespace' (runs of spaces and "
                            "tabs) or 'auto' (detected), not a newline, quote or '#', got {!r}".format(text))
    return t


def delimiter_name(delimiter: Optional[str]) -> str:
    """``"','"``, ``"tab"``, ``"whitespace"``: how messages name a delimiter."""
    return "whitespace" if delimiter is None else "tab" if delimiter == "\t" else repr(delimiter)


def sniff_delimiter(path: str, *, skip_rows: int = 0) -> Optional[str]:
    """Return the delimiter of a table (``None``: whitespace).

    The first of :data:`CANDIDATES`, then whitespace, that splits the first lines (after ``skip_rows``; comments and
    blank lines aside) into the same number of fields, more than one, the last line's all numbers; else the first
    that splits them evenly (a bad cell: reading the table then says where); else ``','`` (one column).
    """
    lines = []
    for i, line in _lines(path):
        text = line.strip()
        if i >= skip_rows and text and not text.startswith("#"):
            lines.append(text)
            if len(lines) == SNIFF_LINES:
                break
    if not lines:
        return ","
    even = [d for d in CANDIDATES + (None,) if len({len(_fields(t, d)) for t in lines}) == 1
            and len(_fields(lines[0], d)) > 1]
    numbers = [d for d in even if all(_is_number(f) for f in _fields(lines[-1], d))]
    return (numbers or even or [","])[0]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _fields(line: str, delimiter: Optional[str]) -> List[str]:
    return [f.strip().strip("\"'").strip() for f in line.split(delimiter)]


def _lines(path: str):
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f):
            yield i, line.rstrip("\r\n")


def read_header(path: str, *, delimiter: Optional[str], skip_rows: int, header: Optional[bool]
                ) -> Tuple[Optional[List[str]], int]:
    """Return the column names (None without a header row) and how many lines to skip before the data.

    Parameters
    ----------
    header : bool or None
        True: the first line after ``skip_rows`` names the columns; False: it is data; None: detect (a header when
        none of its fields is a number, or a ``#`` comment just before the first data line with one name per
        column).
    """
    comment = None
    for i, line in _lines(path):
        text = line.strip()
        if i < skip_rows or not text:
            continue
        names = _fields(text.lstrip("#").strip(), delimiter)
        if header is not None:
            return (names, i + 1) if header else (None, i)
        if text.startswith("#"):
            comment = (names, i + 1)
            continue
        if len(names) == 1 and (any(d in text for d in CANDIDATES if d != delimiter) or len(text.split()) > 1):
            return None, i  # another delimiter: reported by bad_cell_error, not taken for a header
        if not any(_is_number(n) for n in names):
            return names, i + 1
        if comment is not None and len(comment[0]) == len(names) > 1 and not any(_is_number(n) for n in comment[0]):
            return comment
        return None, i
    return None, skip_rows


def _shown(names: Optional[Sequence[str]], n_columns: int) -> str:
    if not names:
        return "{} columns (0..{})".format(n_columns, n_columns - 1)
    listed = ", ".join("{} {}".format(i, n) for i, n in enumerate(names[:MAX_NAMES_SHOWN]))
    return "{} columns: {}{}".format(n_columns, listed, ", ..." if len(names) > MAX_NAMES_SHOWN else "")


def column_label(col: int, names: Optional[Sequence[str]]) -> str:
    """``"column 3 ('emg2')"``, or ``"column 3"`` without a header."""
    if names and 0 <= col < len(names) and names[col]:
        return "column {} ({!r})".format(col, names[col])
    return "column {}".format(col)


def _one(flag: str, part: Union[int, str], names: Optional[Sequence[str]], n_columns: int, path: str) -> List[int]:
    if isinstance(part, (int, np.integer)) and not isinstance(part, bool):
        cols = [int(part)]
    else:
        p = str(part).strip()
        m = _RANGE.match(p)
        if names and p in names:
            if list(names).count(p) > 1:
                raise invalid_value(flag, "{!r} names {} columns of {!r} ({}); give the column number".format(
                    p, list(names).count(p), path, ", ".join(str(i) for i, n in enumerate(names) if n == p)))
            cols = [list(names).index(p)]
        elif p.isdigit():
            cols = [int(p)]
        elif m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise invalid_value(flag, "a range runs from low to high, got {!r}".format(p))
            cols = list(range(lo, min(hi, n_columns) + 1)) + ([hi] if hi > n_columns else [])
        else:
            ends = [(p[:k], p[k + 1:]) for k in range(len(p)) if p[k] == "-"] if names else []
            ends = [(a, b) for a, b in ends if a in names and b in names]
            if ends:
                lo, hi = list(names).index(ends[0][0]), list(names).index(ends[0][1])
                if hi < lo:
                    raise invalid_value(flag, "{!r}: {!r} (column {}) comes after {!r} (column {})".format(
                        p, ends[0][0], lo, ends[0][1], hi))
                cols = list(range(lo, hi + 1))
            elif names:
                raise invalid_value(flag, "{!r} has no column named {!r}; it has {}".format(
                    path, p, _shown(names, n_columns)))
            else:
                raise invalid_value(flag, "{!r} is not a column number and {!r} has no header row (its first "
                                    "line is numbers); columns count from 0 (0..{})".format(p, path, n_columns - 1),
                                    extra="pass --header if the first line names the columns")
    bad = [c for c in cols if not 0 <= c < n_columns]
    if bad:
        raise invalid_value(flag, "column {} does not exist; {!r} has {}".format(
            bad[0], path, _shown(names, n_columns)))
    return cols


def resolve_columns(flag: str, spec: ColumnSpec, names: Optional[Sequence[str]], n_columns: int, path: str
                    ) -> List[int]:
    """Return the column indices (0-based) of ``spec``.

    ``spec``: ``"0-9"``, ``"emg0,emg1"``, ``"emg0-emg7"``, ``[0, "label"]``, or one name or index.

    Raises
    ------
    InvalidValueError
        ``Invalid value for '<flag>': ...`` naming the columns the file has.
    """
    parts = spec.split(",") if isinstance(spec, str) else ([spec] if isinstance(spec, (int, np.integer))
                                                         else list(spec))
    parts = [p for p in parts if not (isinstance(p, str) and not p.strip())]
    if not parts:
        raise invalid_value(flag, "no columns in {!r}".format(spec))
    out: List[int] = []
    for p in parts:
        out.extend(_one(flag, p, names, n_columns, path))
    return out


def resolve_column(flag: str, spec: Union[int, str, None], names: Optional[Sequence[str]], n_columns: int,
                   path: str) -> Optional[int]:
    """Return one column (None stays None)."""
    if spec is None:
        return None
    cols = resolve_columns(flag, spec, names, n_columns, path)
    if len(cols) != 1:
        raise invalid_value(flag, "one column, got {!r} ({} columns)".format(spec, len(cols)))
    return cols[0]


def bad_cell_error(path: str, *, delimiter: Optional[str], first_data_line: int, names: Optional[Sequence[str]],
                   reason: str, detected: bool = False) -> InvalidValueError:
    """Return the error for a table ``numpy.loadtxt`` could not read.

    It names the delimiter (and whether it was detected), then the first line with a field that is not a number or
    with a different number of fields.
    """
    sep = "{}-separated numbers{}".format(delimiter_name(delimiter), " (the delimiter detected)" if detected else "")
    width = len(names) if names else None
    for i, line in _lines(path):
        text = line.split("#", 1)[0]
        if i < first_data_line or not text.strip():
            continue
        fields = _fields(text, delimiter)
        if width is None:
            width = len(fields)
            if width == 1 and delimiter is not None and delimiter not in text:
                seen = sniff_delimiter(path, skip_rows=first_data_line)
                if seen != delimiter and len(_fields(text, seen)) > 1:
                    return InvalidValueError("{!r} is not {}: line {} has no {}; it looks {}-separated: pass "
                                             "--delimiter {} (or leave --delimiter out: it is detected)".format(
                                                 path, sep, i + 1, delimiter_name(delimiter), delimiter_name(seen),
                                                 "whitespace" if seen is None else repr(seen)))
        if len(fields) != width:
            return InvalidValueError("{!r} is not {}: line {} has {} fields where {} {}".format(
                path, sep, i + 1, len(fields), "the header names" if names else "the first data line has", width))
        for c, value in enumerate(fields):
            if not _is_number(value):
                hint = SKIP_HINT if i == first_data_line else "fix or remove that line"
                return InvalidValueError("{!r} is not {}: line {}, {}: {!r} is not a number; {}".format(
                    path, sep, i + 1, column_label(c, names), value, hint))
    return InvalidValueError("{!r} is not {} after {} line(s): {}".format(path, sep, first_data_line, reason))
