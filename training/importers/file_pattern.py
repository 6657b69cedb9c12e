"""Data sets stored one file per class, repetition, session or subject: a file-name pattern to session recordings.

``'DIR/S{subject}_D{session}_C{label}.csv'`` matches every file of that shape; each field's value comes from the
file name: ``{label}`` is the movement class of all its samples, ``{repetition}`` its repetition (trial), and
``{session}`` and ``{subject}`` say which session file it belongs to (one per session, or one with all). Each file
becomes one segment (filters restart there) with a cue at its start, as the 3DC importer does.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.grips import grip_for_name
from neurohand.decoder.recording import CUE_DTYPE, INT16_MAX, Recording
from neurohand.decoder.validation import invalid_value

FIELDS = ("subject", "session", "repetition", "label")
_FIELD = re.compile(r"\{([^{}]*)\}")


def is_pattern(text: str) -> bool:
    """Whether ``text`` names files by a pattern (it has a ``{field}`` and is not itself a file)."""
    return bool(_FIELD.search(text)) and not os.path.exists(text)


def pattern_fields(pattern: str, *, flag: str = "FILE") -> List[str]:
    """Return the fields of ``pattern`` in order of first use; refuse unknown ones in MNE's shape."""
    names = []
    for name in _FIELD.findall(pattern):
        if name not in FIELDS:
            raise invalid_value(flag, "fields allowed {}, got {{{}}} in {!r}".format(
                ", ".join("{" + f + "}" for f in FIELDS), name, pattern))
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class MatchedFile:
    """One file a pattern matched, and the value of each field in its name."""

    path: str
    fields: Dict[str, str]


def _natural(value: str):
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", value)]


def match_files(pattern: str) -> List[MatchedFile]:
    """Every file that matches ``pattern``, ordered by subject, session, repetition and label (numbers as numbers).

    A field used twice must have the same value in both places. A field's value holds no ``/``.

    Raises
    ------
    FileNotFoundError
        Nothing matches; the message names the folder searched and what it holds.
    """
    fields = pattern_fields(pattern)
    parts = _FIELD.split(pattern)  # literal, field, literal, field, ...
    regex, seen = "", set()
    for k, part in enumerate(parts):
        if k % 2 == 0:
            regex += re.escape(part)
        elif part in seen:
            regex += "(?P={})".format(part)
        else:
            regex += "(?P<{}>[^/]+?)".format(part)
            seen.add(part)
    rx = re.compile(regex + r"\Z")
    glob_pattern = "".join(glob.escape(p) if k % 2 == 0 else "*" for k, p in enumerate(parts))
    out = []
    for path in glob.glob(glob_pattern):
        m = rx.match(path)
        if m and os.path.isfile(path):
            out.append(MatchedFile(path, {f: m.group(f) for f in fields}))
    if not out:
        folder = os.path.dirname(glob_pattern.split("*", 1)[0]) or "."
        there = sorted(os.listdir(folder))[:5] if os.path.isdir(folder) else None
        raise FileNotFoundError("No file matches {!r}; {}".format(pattern, "{!r} is not a folder".format(folder)
                                                                   if there is None else "{!r} holds {}".format(
                                                                       folder, ", ".join(there) or "nothing")))
    out.sort(key=lambda f: [_natural(f.fields.get(k, "")) for k in ("subject", "session", "repetition", "label")]
             + [_natural(f.path)])
    return out


def parse_label_map(text: Optional[str]) -> Optional[List[Tuple[str, str]]]:
    """Parse ``'1=rest,2=power,3=open'`` into ``[('1', 'rest'), ...]``.

    The file names' label values in class order, rest first, each with its class name (``'rest,power'`` names the
    values themselves).
    """
    if not text:
        return None
    out = []
    for item in text.split(","):
        value, _, name = item.partition("=")
        value, name = value.strip(), (name.strip() or value.strip())
        if not value:
            raise invalid_value("--label-map", "VALUE=NAME pairs in class order, rest first (e.g. 1=rest,2=power), "
                                "got {!r}".format(text))
        out.append((value, name))
    if len({v for v, _ in out}) != len(out):
        raise invalid_value("--label-map", "each label value once, got {!r}".format(text))
    return out


def _class_index(files: Sequence[MatchedFile], label_map, class_names) -> Tuple[Dict[str, int], Tuple[str, ...]]:
    values = sorted({f.fields["label"] for f in files}, key=_natural)
    if label_map is not None:
        names = [n for _, n in label_map]
        rest_at = [i for i, n in enumerate(names) if grip_for_name(n) == "rest"]
        if rest_at and rest_at[0] != 0:
            raise invalid_value("--label-map", "rest first: class 0 is rest, where the decoder holds the hand; {!r} "
                                "is class {} in {}".format(names[rest_at[0]], rest_at[0], ",".join(names)))
        first = 0 if rest_at else 1  # no rest in the data: class 0 is rest all the same, with no samples
        index = {v: first + i for i, (v, _) in enumerate(label_map)}
        missing = [v for v in values if v not in index]
        if missing:
            raise invalid_value("--label-map", "a class for every label in the file names; {} {} not in it (it maps "
                                "{})".format(", ".join(repr(v) for v in missing), "is" if len(missing) == 1 else
                                             "are", ", ".join(repr(v) for v, _ in label_map)))
        return index, ("rest",) * first + tuple(names)
    if not all(v.isdigit() for v in values):
        example = sorted(values, key=lambda v: grip_for_name(v) != "rest")  # rest first
        raise invalid_value("--label-map", "needed when the file names' labels are not class numbers (0 = rest): "
                            "they are {}; list them in class order, rest first, e.g. --label-map {}".format(
                                ", ".join(repr(v) for v in values[:8]), ",".join(example[:8])))
    index = {v: int(v) for v in values}
    top = max(index.values())
    if top >= INT16_MAX:
        raise InvalidValueError("label {} in the file names is beyond {}".format(top, INT16_MAX - 1))
    names = tuple(class_names) if class_names else ("rest",) + tuple("class{}".format(i) for i in range(1, top + 1))
    if len(names) <= top:
        raise invalid_value("--class-names", "a name for each class 0..{} (the file names' labels), got {}".format(
            top, len(names)))
    return index, names


def _repetition(f: MatchedFile, repetition_zero: str) -> int:
    v = f.fields["repetition"]
    if not v.isdigit() or int(v) + 1 >= INT16_MAX:
        raise InvalidValueError("{!r}: repetition {!r} in the file name is not a number in 0..{}".format(
            f.path, v, INT16_MAX - 2))
    r = int(v) + (1 if repetition_zero == "shift" else 0)
    if r == 0 and repetition_zero == "error":
        raise InvalidValueError("{!r}: repetition 0 in the file name: neurohand reads 0 as 'none', never held out for "
                                "validation or test; pass --repetition-zero shift if the files count repetitions "
                                "from 0, or --repetition-zero none if 0 means no repetition".format(f.path))
    return r


def combine(files: Sequence[MatchedFile], read: Callable[[str], Recording], *, label_map=None,
            class_names: Optional[Sequence[str]] = None, repetition_zero: str = "error",
            source: str = "") -> Recording:
    """Read each file with ``read`` and join them, one segment (and a cue) per file.

    Labels and repetitions come from the file names where the pattern has them. Several sessions joined without
    repetitions (neither in the pattern nor in the files) become one repetition each, in session order, so that
    training can hold out a session for validation.

    Raises
    ------
    InvalidValueError
        Files that disagree (rate, channels, kind), a label both in a column and in the file name, a label the map
        lacks.
    """
    has_label = "label" in files[0].fields
    index, names = _class_index(files, label_map, class_names) if has_label else ({}, None)
    sessions = sorted({f.fields.get("session") for f in files}, key=lambda v: _natural(v or ""))
    own = []  # each file's own repetitions (None: it has none)
    parts, starts, cues, labels, reps, pos, pos_idx = [], [], [], [], [], [], []
    n = 0
    first = None
    for f in files:
        rec = read(f.path)
        if first is None:
            first = rec
        elif (rec.fs_hz, rec.n_channels, rec.signal_kind) != (first.fs_hz, first.n_channels, first.signal_kind):
            raise InvalidValueError("{!r} has {} channels at {:g} Hz ({}) where {!r} has {} at {:g} Hz ({}); the "
                                    "files of one session must agree".format(
                                        f.path, rec.n_channels, rec.fs_hz, rec.signal_kind, files[0].path,
                                        first.n_channels, first.fs_hz, first.signal_kind))
        if has_label and rec.labels is not None:
            raise InvalidValueError("{!r}: the label comes from the file name ({{label}}) and from a column; give one"
                                    .format(f.path))
        k = rec.n_samples
        starts.extend(n + s for s in rec.segment_starts)
        if has_label:
            cls = index[f.fields["label"]]
            labels.append(np.full(k, cls, np.int16))
            cues.append((n, cls, k, names[cls].encode()))
        elif rec.labels is not None:
            labels.append(rec.labels)
        if "repetition" in f.fields:
            reps.append(np.full(k, _repetition(f, repetition_zero), np.int16))
        else:
            own.append(rec.repetitions)
        if rec.positions is not None:
            pos.append(rec.positions)
            pos_idx.append(rec.position_index + n)
        parts.append(rec.signals)
        n += k
    by_session = len(sessions) > 1 and own and all(r is None for r in own)
    if by_session:
        reps = [np.full(len(p), sessions.index(f.fields["session"]) + 1, np.int16) for f, p in zip(files, parts)]
    elif own:
        reps = [r for r in own if r is not None]
    for what, got in (("labels", labels), ("repetitions", reps), ("positions", pos)):
        if got and len(got) != len(files):
            raise InvalidValueError("{} of the {} files matching {!r} have {}; all or none must".format(
                len(got), len(files), source, what))
    fields = {k: sorted({f.fields[k] for f in files}, key=_natural) for k in files[0].fields}
    meta = dict(first.metadata)
    meta.update(source=source, notes="{} files matching {}{}{}".format(
        len(files), source, "; labels from the file names" if has_label else "",
        "; repetitions 1..{} are sessions {}".format(len(sessions), ", ".join(sessions)) if by_session else ""))
    for k in ("subject", "session"):
        if k in fields:
            meta["patient_id" if k == "subject" else "session_id"] = ",".join(fields[k])
    return Recording(
        signals=np.concatenate(parts), fs_hz=first.fs_hz, signal_kind=first.signal_kind,
        channel_names=first.channel_names, units=first.units,
        labels=np.concatenate(labels) if labels else None,
        class_names=names if has_label else first.class_names,
        repetitions=np.concatenate(reps) if reps else None,
        positions=np.concatenate(pos) if pos else None, position_index=np.concatenate(pos_idx) if pos else None,
        segment_starts=np.asarray(starts, np.int64), cues=np.array(cues, dtype=CUE_DTYPE), metadata=meta)


def groups(files: Sequence[MatchedFile], out: str) -> List[Tuple[str, List[MatchedFile]]]:
    """Split the files by the fields ``out`` names; returns ``[(output path, files), ...]``.

    ``'day{session}.h5'``: one session file per session; ``out`` without a field: one file with all.
    """
    fields = pattern_fields(out, flag="--out")
    wrong = [f for f in fields if f not in ("session", "subject")]
    if wrong:
        raise invalid_value("--out", "{{session}} or {{subject}} (one session file each), got {}: a session file holds "
                            "every class and repetition".format(", ".join("{" + f + "}" for f in wrong)))
    missing = [f for f in fields if f not in files[0].fields]
    if missing:
        raise invalid_value("--out", "fields the file pattern has ({}), got {}".format(
            ", ".join("{" + f + "}" for f in files[0].fields) or "none", ", ".join("{" + f + "}" for f in missing)))
    by: Dict[str, List[MatchedFile]] = {}
    for f in files:
        by.setdefault(_FIELD.sub(lambda m, values=f.fields: values[m.group(1)], out), []).append(f)
    return list(by.items())
