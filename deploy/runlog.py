"""What the runtime keeps in bounded memory and writes as it goes: latency statistics and the ``--log`` file.

:class:`LatencyHistogram` holds a fixed, log-spaced histogram (percentiles to within 1 %, whatever the run's length).
:class:`JsonLog` appends JSON lines to ``--log`` (never overwriting it), flushed to the operating system at least
once a second (a SIGKILL loses at most the last second), and rotates the file by size (``run.jsonl`` ->
``run.jsonl.1`` -> ... ``run.jsonl.N``, the oldest dropped). A log that cannot be written (a full disk, a file size
limit, a removed folder) never stops the hand: the failure is reported once, the lines are counted as dropped, and the
file is tried again every few seconds.
"""

import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Optional

import numpy as np


class LatencyHistogram:
    """Latencies in ms in a fixed histogram: 1 us .. 100 s, 1 % wide bins, plus the exact maximum and count."""

    LO_MS, HI_MS, STEP = 1e-3, 1e5, 0.01

    def __init__(self) -> None:
        self.n_bins = int(math.ceil(math.log(self.HI_MS / self.LO_MS) / math.log1p(self.STEP))) + 2
        self.counts = np.zeros(self.n_bins, np.int64)
        self.count = 0
        self.max = 0.0
        self.total = 0.0

    def add(self, ms: float) -> None:
        """Count one latency."""
        ms = float(ms)
        if ms <= self.LO_MS:
            i = 0
        else:
            i = min(self.n_bins - 1, 1 + int(math.log(ms / self.LO_MS) / math.log1p(self.STEP)))
        self.counts[i] += 1
        self.count += 1
        self.total += ms
        self.max = max(self.max, ms)

    def percentile(self, q: float) -> float:
        """Return the ``q``-th percentile (upper edge of its bin, at most the maximum); 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, int(math.ceil(q / 100.0 * self.count)))
        i = int(np.searchsorted(np.cumsum(self.counts), rank))
        return min(self.max, self.LO_MS * (1 + self.STEP) ** i)

    def __len__(self) -> int:
        return self.count


class JsonLog:
    """Append-only JSON lines with periodic flushes and size rotation.

    Parameters
    ----------
    path : str
    max_bytes : int, optional
        Rotate once the file reaches this size (None: never).
    backups : int
        Rotated files kept.
    flush_s : float
        Longest time a written line stays in the process's buffer.
    report : callable, optional
        Told, once per failure and once on recovery, what happened (default: a line on stderr, the journal under
        systemd).
    retry_s : float
        After a failure, how often the file is tried again.

    Attributes
    ----------
    lines : int
        Lines written (flushed to the operating system, or in the buffer).
    dropped_lines : int
        Lines lost to write failures.
    failure : str or None
        The last failure, while the log is not being written.
    """

    def __init__(self, path: str, *, max_bytes: Optional[int] = None, backups: int = 5, flush_s: float = 0.5,
                 report: Optional[Callable[[str], None]] = None, retry_s: float = 5.0) -> None:
        self.path, self.max_bytes, self.backups, self.flush_s = path, max_bytes, backups, flush_s
        self.report = report or (lambda m: print(m, file=sys.stderr, flush=True))
        self.retry_s = retry_s
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._f = open(path, "a")  # a log that cannot be opened at start is an error (exit 2) before the hand moves
        self._last_flush = time.monotonic()
        self._buffered = 0  # lines written since the last successful flush (lost if it fails)
        self._failed_at = 0.0
        self.lines = 0
        self.rotations = 0
        self.dropped_lines = 0
        self.failure: Optional[str] = None

    def write(self, record: Dict[str, Any]) -> None:
        """Append one record as a line (counted as dropped while the log cannot be written)."""
        if self._f is None and not self._reopen():
            self.dropped_lines += 1
            return
        try:
            self._f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full buffer flushed itself and failed: its lines and this one are lost
            self._fail(e, self._buffered + 1)
            return
        self.lines += 1
        self._buffered += 1
        self.tick()

    def tick(self) -> None:
        """Flush when due and rotate when full; call at least every ``flush_s`` (the loop calls it each chunk)."""
        now = time.monotonic()
        if self._f is None or now - self._last_flush < self.flush_s:
            return
        self._last_flush = now
        try:
            self._f.flush()
            self._buffered = 0
            if self.max_bytes is not None and self._f.tell() >= self.max_bytes:
                self._rotate()
        except OSError as e:
            self._fail(e, self._buffered)

    def _fail(self, error: OSError, lost: int) -> None:
        """Stop writing: count the lines lost, report once, try again in ``retry_s``."""
        self.dropped_lines += lost
        self.lines -= min(lost, self.lines)
        self._buffered = 0
        f, self._f = self._f, None
        try:
            f.close()
        except (OSError, AttributeError):
            pass  # the buffer that could not be written is what was just counted as dropped
        self._failed_at = time.monotonic()
        if self.failure is None:
            self.failure = "{}: {}".format(type(error).__name__, error)
            self.report("the log {} cannot be written ({}); decoding and the hand go on, the lines are counted as "
                        "dropped and the file is tried again every {:g} s".format(self.path, self.failure,
                                                                                  self.retry_s))

    def _reopen(self) -> bool:
        if time.monotonic() - self._failed_at < self.retry_s:
            return False
        try:
            self._f = open(self.path, "a")
            self._f.write(json.dumps({"event": "log_resumed", "dropped_lines": self.dropped_lines,
                                      "wall_time": time.time()}) + "\n")
            self._f.flush()
        except OSError:
            if self._f is not None:
                try:
                    self._f.close()
                except OSError:
                    pass
            self._f = None
            self._failed_at = time.monotonic()
            return False
        self.report("the log {} is written again ({} lines were dropped)".format(self.path, self.dropped_lines))
        self.failure = None
        return True

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.backups - 1, 0, -1):
            src = "{}.{}".format(self.path, i)
            if os.path.exists(src):
                os.replace(src, "{}.{}".format(self.path, i + 1))
        if self.backups > 0:
            os.replace(self.path, self.path + ".1")
        else:
            os.remove(self.path)
        self._f = open(self.path, "a")
        self.rotations += 1

    def close(self) -> None:
        """Flush and close (a failure is reported and counted, never raised)."""
        if self._f is None or self._f.closed:
            return
        try:
            self._f.flush()
            self._f.close()
        except OSError as e:
            self._fail(e, self._buffered)
