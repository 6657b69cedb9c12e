"""Interrupted sessions: their resume command, the check that a resume matches, and discarding them.

The resume command repeats every option the session was started with; a resume must match the recording's source,
labels and mode; discarding moves a session aside, never deletes it.

A session being recorded has a marker ``SESSION.h5.inprogress`` beside it holding its resume command; the marker is
removed when the recording completes, so a marker left behind is an interrupted session (stopped, crashed, a source
fault). ``neurohand calibrate`` names each one with its resume command and its discard command.
"""

from __future__ import annotations

import os
import shlex
from typing import List, Tuple

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import invalid_value

from .model_store import ModelStore
from .options import CALIBRATE_ARGUMENTS, CalibrateOptions, value_at

MARKER = ".inprogress"
DISCARDED = "discarded"  # under the patient's sessions folder


def resume_command(opts: CalibrateOptions, path: str) -> str:
    """Return the command that resumes ``path`` with every option of ``opts`` not at its default.

    Built from :data:`calibration.options.CALIBRATE_ARGUMENTS`, the table the parser is built from, so every option
    is repeated (``--source`` and ``--labels`` always): parsing the result gives back ``opts`` with ``resume=path``.
    """
    words = ["neurohand", "calibrate"]
    for a in CALIBRATE_ARGUMENTS:
        if a.path == "resume":
            continue
        value = value_at(opts, a.path)
        if a.takes_value:
            if value == a.kwargs.get("default") and not a.kwargs.get("required") and not a.always:
                continue
            words += [a.flags[-1], str(value)]
        elif value != (a.kwargs["action"] == "store_false"):  # a flag given: its value differs from its default
            words.append(a.flags[-1])
    words += ["--resume", path]
    return " ".join(shlex.quote(w) for w in words)


def check_resume_matches(opts: CalibrateOptions, metadata: dict, path: str) -> None:
    """Refuse to resume ``path`` with another kind of source, other labels or another mode than it was recorded with.

    Another source of the same kind is accepted (``serial:/dev/ttyACM1`` for ``serial:/dev/ttyACM0``: a USB
    interface re-enumerated); the caller checks that it delivers the recording's rate and channels.

    Raises
    ------
    InvalidValueError
        Naming the options the recording was made with.
    """
    recorded = {"--source": metadata.get("source_spec"), "--labels": metadata.get("labels_spec"),
                "--recalibrate": metadata.get("mode")}
    asked = {"--source": opts.devices.source, "--labels": opts.devices.labels,
             "--recalibrate": "recalibration" if opts.recalibrate else "calibration"}
    labels_kind = metadata.get("labels")  # 'cue' or 'glove', in every session file
    if labels_kind and ("glove" if opts.devices.labels.startswith("glove:") else "cue") != labels_kind:
        recorded["--labels"] = recorded["--labels"] or labels_kind
        raise InvalidValueError("{} was recorded with {} labels (--labels {}); resume it with the same, not "
                                "--labels {}".format(path, labels_kind, recorded["--labels"], opts.devices.labels))
    was, now = (str(recorded["--source"]).partition(":")[0], str(asked["--source"]).partition(":")[0])
    if recorded["--source"] and was != now:
        raise InvalidValueError("{} was recorded with --source {}; resume it with a source of the same kind ({}:...), "
                                "not {}".format(path, recorded["--source"], was, asked["--source"]))
    for flag in ("--recalibrate",):
        if recorded[flag] and recorded[flag] != asked[flag]:
            raise InvalidValueError("{} was recorded with {} {}; resume it with the same, not {}".format(
                path, flag, recorded[flag], asked[flag]))


def write_marker(path: str, command: str) -> None:
    """Mark ``path`` as being recorded; the marker holds the command that resumes it."""
    with open(path + MARKER, "w") as f:
        f.write(command + "\n")


def marker_command(path: str) -> str:
    """Return the resume command stored in ``path``'s marker ('' for a marker from an older version)."""
    try:
        with open(path + MARKER) as f:
            first = f.readline().strip()
    except OSError:
        return ""
    return first if first.startswith("neurohand calibrate") else ""


def interrupted_sessions(store: ModelStore) -> List[str]:
    """Sessions whose recording was interrupted (stopped, crash, power loss, kill) and can be resumed."""
    d = store.sessions_dir()
    return sorted(os.path.join(d, f[: -len(MARKER)]) for f in os.listdir(d) if f.endswith(MARKER))


def discard_interrupted(store: ModelStore, which: str = "all") -> List[Tuple[str, str]]:
    """Move interrupted sessions (``which``: 'all' or one session file) into ``sessions/discarded/``.

    Nothing is deleted: the session file (and its marker, renamed ``.discarded``) is moved, so it no longer counts
    as interrupted. Returns ``(from, to)`` per session moved.
    """
    found = interrupted_sessions(store)
    chosen = found
    if which != "all":
        want = os.path.realpath(which) if os.path.sep in which else which
        chosen = [p for p in found if os.path.realpath(p) == want or os.path.basename(p) == want]
        if not chosen:
            raise invalid_value("--discard-interrupted", "allowed 'all' or one of the interrupted sessions ({}), "
                                "got {!r}".format(", ".join(found) or "none", which))
    dest = os.path.join(store.sessions_dir(), DISCARDED)
    os.makedirs(dest, exist_ok=True)
    moved = []
    for p in chosen:
        to, n = os.path.join(dest, os.path.basename(p)), 1
        while os.path.exists(to) or os.path.exists(to + ".discarded"):  # never overwrite an earlier discard
            n += 1
            to = os.path.join(dest, "{}-{}.h5".format(os.path.splitext(os.path.basename(p))[0], n))
        if os.path.exists(p):
            os.replace(p, to)
        os.replace(p + MARKER, to + ".discarded")
        moved.append((p, to))
    return moved
