"""The two device interfaces the runtime is written against: a :class:`Source` of samples, a :class:`Sink` of commands.

Every source (a recording, the simulated patient, a neural interface on a serial port, a Lab Streaming Layer inlet)
and every sink (a hand on a serial port, the keyboard, none) is one of these, opened through one factory
(``deploy.sources.open_source`` for sources); the runtime reads nothing else of them.
"""

import abc
from typing import List, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.postprocess import SAFE_POSTURE

__all__ = ["Sink", "Source", "first_error"]


class Source(abc.ABC):
    """A stream of raw samples at a fixed rate.

    Contract: ``read()`` blocks until the next chunk and returns it with the ``time.monotonic()`` at which its last
    sample arrived: for a device, when it reached the host (from the device's sample counter, not the time of the
    read: samples read late from a backlog keep their age); for a recording played in real time, when it was due.
    The runtime counts every frame's age and latency from then and drops frames older than its bound. It raises
    ``StopIteration`` at the end of a finite source, :class:`firmware_bridge.interface_link.SourceStalled` when no
    samples came for longer than the source allows, and :class:`firmware_bridge.interface_link.SourceFault` (with its
    ``kind``) for a fault the source detected (malformed frames, a device that went away). After a stall or fault
    the next ``read()`` may succeed again. ``close()`` releases the device; it may be called more than once.

    Attributes
    ----------
    fs_hz : float
        Sample rate.
    n_channels : int
    full_scale : float or None
        The magnitude at which a sample is saturated, in signal units, where the device announces it (an interface's
        HELLO); None when unknown.
    channel_names : list of str or None
    units : str
        The signals' units, for displays.
    dropped_samples : int
        Samples the source knows it lost (gaps in an interface's sample counter).
    real_time : bool
        Whether the samples come in real time (a device, a paced replay). False for a replay as fast as possible:
        its frames have no age, and nothing paced that way may drive a hand.
    """

    fs_hz: float
    n_channels: int
    full_scale: Optional[float] = None
    channel_names: Optional[Sequence[str]] = None
    units: str = "signal units"
    dropped_samples: int = 0
    real_time: bool = True

    @abc.abstractmethod
    def read(self) -> Tuple[np.ndarray, float]:
        """Return the next chunk (n_samples, n_channels) and the monotonic time its last sample arrived."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device."""


class Sink(abc.ABC):
    """Where finger commands go: a hand, the keyboard, several of them, or nowhere.

    Contract: ``write(command, probabilities)`` sends one command (5,) in 0..1 on the wire's grid and returns False
    when it could not (the runtime then treats the link as faulted: safe posture, logged); ``safe()`` puts the
    device in its safe posture and returns False when it could not reach it; ``close()`` sends the safe posture
    (releases every key) and releases the device. ``start_posture()`` is where commands start from: where the
    device reports it is, or its safe posture.

    Attributes
    ----------
    name : str
    safe_posture : tuple of 5 float
        Where the device goes on a fault.
    """

    name = "sink"
    safe_posture: Tuple[float, ...] = SAFE_POSTURE

    def start_posture(self) -> Tuple[float, ...]:
        """Return where the commands start from (default: the safe posture)."""
        return self.safe_posture

    @abc.abstractmethod
    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Send a command (5,) in 0..1; False when it could not be sent."""

    @abc.abstractmethod
    def safe(self) -> bool:
        """Go to the safe posture; False when the device could not be reached."""

    @abc.abstractmethod
    def close(self) -> None:
        """Safe posture, then release the device."""

    def link_error(self) -> Optional[str]:
        """Return why the last write failed, for the fault's message (None: no link to describe)."""
        return None


def first_error(sinks: List[Sink]) -> Optional[str]:
    """Return the first link error among ``sinks`` (None when none has one)."""
    for s in sinks:
        e = s.link_error()
        if e is not None:
            return e
    return None
