"""A Lab Streaming Layer inlet as a runtime source (pylsl, the ``lsl`` extra).

Amplifiers and EMG armbands commonly publish their samples as an LSL outlet; ``neurohand run --source lsl:NAME``
resolves the stream by name, and ``read()`` blocks in ``pull_chunk`` (with a timeout, never spinning) until samples
arrive. Their arrival time comes from the stream's timestamps through a :class:`~.sample_clock.SampleClock` (the
sender's clock only sets the spacing, so an offset in its stamps does not matter): samples read late from the inlet's
buffer are known to be old.
"""

import time
from typing import Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError

from .devices import Source
from .interface_link import SourceStalled
from .sample_clock import SampleClock


class LslSource(Source):
    """Samples from the LSL stream called ``name``.

    Parameters
    ----------
    name : str
        The outlet's stream name.
    resolve_timeout_s : float
        How long to look for it on the network.
    stall_timeout_s : float
        No samples for this long raises :class:`SourceStalled`.
    """

    def __init__(self, name: str, *, resolve_timeout_s: float = 5.0, stall_timeout_s: float = 0.1) -> None:
        import pylsl  # a missing pylsl is ModuleNotFoundError: the command line names the extra that installs it
        streams = pylsl.resolve_byprop("name", name, timeout=resolve_timeout_s)
        if not streams:
            raise InvalidValueError("No LSL stream named {!r} found within {:g} s".format(name, resolve_timeout_s))
        info = streams[0]
        if info.nominal_srate() <= 0:
            raise InvalidValueError(
                "LSL stream {!r} has an irregular rate; a decoder needs a fixed sample rate".format(name))
        self.name = name
        self.fs_hz = float(info.nominal_srate())
        self.n_channels = int(info.channel_count())
        self.channel_names = None
        self.stall_timeout_s = stall_timeout_s
        self._clock = SampleClock(self.fs_hz)
        self._ts0 = None  # the first sample's timestamp: the clock counts samples from it
        self._last_stamp = 0.0
        self._inlet = pylsl.StreamInlet(info, max_buflen=2, processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(timeout=resolve_timeout_s)
        self._inlet.flush()  # what queued while the stream opened is old: decoding starts on what comes next

    def read(self) -> Tuple[np.ndarray, float]:
        """Block until samples arrive: ``(chunk (n, n_channels) float32, arrival time of its last sample)``.

        What is queued is taken at once; with nothing queued, the first sample to come is waited for (liblsl's
        ``pull_chunk`` with a timeout would wait for a full buffer or the whole timeout: 100 ms of added delay).
        """
        data, stamps = self._inlet.pull_chunk(timeout=0.0)
        if not data:
            sample, stamp = self._inlet.pull_sample(timeout=self.stall_timeout_s)
            if sample is None:
                raise SourceStalled("no samples from LSL stream {!r} for {:.0f} ms".format(
                    self.name, self.stall_timeout_s * 1000))
            more, more_stamps = self._inlet.pull_chunk(timeout=0.0)
            data, stamps = [sample] + list(more), [stamp] + list(more_stamps)
        return np.asarray(data, np.float32).reshape(-1, self.n_channels), self._arrival(stamps, len(data))

    def _arrival(self, stamps, n: int) -> float:
        """Arrival time of the last of ``n`` samples just pulled, stamped ``stamps`` (gaps show in the stamps)."""
        t_read = time.monotonic()
        last = float(stamps[-1])  # liblsl stamps every sample it hands out
        if self._ts0 is None or last < self._last_stamp - 1.0:  # the first samples, or the sender restarted
            self._clock.reset()
            self._ts0 = last - (n - 1) / self.fs_hz
        self._last_stamp = last
        return self._clock.observe((last - self._ts0) * self.fs_hz + 1, t_read)

    def close(self) -> None:
        """Close the inlet."""
        self._inlet.close_stream()
