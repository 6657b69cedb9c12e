"""A Lab Streaming Layer inlet as a runtime source (pylsl, the ``lsl`` extra).

Amplifiers and EMG armbands commonly publish their samples as an LSL outlet; ``neurohand run --source lsl:NAME``
resolves the stream by name, and ``read()`` blocks in ``pull_chunk`` (with a timeout, never spinning) until samples
arrive.
"""

import time
from typing import Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError

from .devices import Source
from .interface_link import SourceStalled


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
        try:
            import pylsl
        except ImportError as e:
            raise ImportError("The LSL source needs pylsl: pip install 'neurohand[lsl]'") from e
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
        self._inlet = pylsl.StreamInlet(info, max_buflen=2, processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(timeout=resolve_timeout_s)

    def read(self) -> Tuple[np.ndarray, float]:
        """Block until samples arrive: ``(chunk (n, n_channels) float32, arrival time)``."""
        deadline = time.monotonic() + self.stall_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            data, _ = self._inlet.pull_chunk(timeout=max(remaining, 0.0))
            if data:
                return np.asarray(data, np.float32).reshape(-1, self.n_channels), time.monotonic()
            if remaining <= 0:
                raise SourceStalled("no samples from LSL stream {!r} for {:.0f} ms".format(
                    self.name, self.stall_timeout_s * 1000))

    def close(self) -> None:
        """Close the inlet."""
        self._inlet.close_stream()
