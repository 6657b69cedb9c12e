"""When a device's samples arrived, from its sample counter: a chunk read late from a backlog keeps its true age.

A device makes samples at its rate and they reach the host after a transport delay that is small and never negative.
When the host reads late (the process was frozen, starved of CPU, swapped out) the samples wait in the kernel's
buffer, and the time of the read says nothing about when they came. :class:`SampleClock` keeps the smallest offset
seen between a read's time and the sample count (``offset = t_read - n / fs_hz``: the least-delayed read) and lets it
rise by at most ``drift_ppm`` of the time passed, so it follows a device clock slower than the host's. A sample's
arrival is then ``offset + n / fs_hz``: never after its read, and a backlog of one second reads as one second old
however fast it drains.
"""

from typing import Optional

DRIFT_PPM = 500.0
"""How fast the offset may rise (parts per million of the time passed): ten times a cheap crystal's error."""


class SampleClock:
    """Arrival times of a sample stream, from when its samples were read.

    Parameters
    ----------
    fs_hz : float
        The device's nominal sample rate.
    drift_ppm : float
        The largest clock drift between device and host followed upwards (downwards it follows at once).
    """

    def __init__(self, fs_hz: float, *, drift_ppm: float = DRIFT_PPM) -> None:
        self.fs_hz = float(fs_hz)
        self.drift = float(drift_ppm) * 1e-6
        self.reset()

    def reset(self) -> None:
        """Forget the offset (the device's counter restarted): the next observation anchors the clock again."""
        self._offset: Optional[float] = None
        self._t_last = 0.0

    def observe(self, n_end: int, t_read: float) -> float:
        """Record that samples up to ``n_end`` (exclusive, counted from the stream's start) were read at ``t_read``.

        Parameters
        ----------
        n_end : int
            Samples the device had made by the end of what was read (gaps included).
        t_read : float
            ``time.monotonic()`` of the read that delivered them.

        Returns
        -------
        float
            The estimated arrival time of sample ``n_end - 1`` (monotonic seconds), never after ``t_read``.
        """
        offset = t_read - n_end / self.fs_hz
        if self._offset is None:
            self._offset = offset
        else:
            self._offset = min(offset, self._offset + self.drift * max(t_read - self._t_last, 0.0))
        self._t_last = t_read
        return self._offset + n_end / self.fs_hz


__all__ = ["DRIFT_PPM", "SampleClock"]
