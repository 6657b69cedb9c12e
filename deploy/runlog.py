"""What the runtime keeps in bounded memory and writes as it goes: latency statistics and the ``--log`` file.

:class:`LatencyHistogram` holds a fixed, log-spaced histogram (percentiles to within 1 %, whatever the run's length).
:class:`JsonLog` appends JSON lines to ``--log`` (never overwriting it), flushed to the operating system at least
once a second (a SIGKILL loses at most the last second), and rotates the file by size (``run.jsonl`` ->
``run.jsonl.1`` -> ... ``run.jsonl.N``, the oldest dropped).
"""

import json
import math
import os
import time
from typing import Any, Dict, Optional

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
    """

    def __init__(self, path: str, *, max_bytes: Optional[int] = None, backups: int = 5, flush_s: float = 0.5) -> None:
        self.path, self.max_bytes, self.backups, self.flush_s = path, max_bytes, backups, flush_s
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        self._f = open(path, "a")
        self._last_flush = time.monotonic()
        self.lines = 0
        self.rotations = 0

    def write(self, record: Dict[str, Any]) -> None:
        """Append one record as a line."""
        self._f.write(json.dumps(record) + "\n")
        self.lines += 1
        self.tick()

    def tick(self) -> None:
        """Flush when due and rotate when full; call at least every ``flush_s`` (the loop calls it each chunk)."""
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self._f.flush()
            self._last_flush = now
            if self.max_bytes is not None and self._f.tell() >= self.max_bytes:
                self._rotate()

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
        """Flush and close."""
        if not self._f.closed:
            self._f.flush()
            self._f.close()
