"""Decoded output as a Lab Streaming Layer outlet (pylsl, the ``lsl`` extra): ``neurohand run --outlet lsl[:NAME]``.

Other programs (a game, an experiment's recorder, LabRecorder) read what the decoder does as they read an amplifier:
one stream of 5 + n_classes float32 channels at the frame rate, the commands sent (thumb..little, 0 open .. 1
flexed) and the probability of each class. A fault pushes the safe posture with the probabilities not a number
(nothing was decoded). The outlet only watches: it never fails a write, so it never faults the hand.
"""

import time
from typing import Optional, Sequence

import numpy as np

from neurohand.firmware_bridge.devices import Sink

FINGERS = ("thumb", "index", "middle", "ring", "little")
STREAM_TYPE = "Control"
CLOSE_GRACE_S = 0.2


class LslOutletSink(Sink):
    """Publish every command and the class probabilities as the LSL stream ``name``.

    Parameters
    ----------
    name : str
        The stream's name (``lsl:NAME`` in ``--outlet``; default ``neurohand``).
    class_names : sequence of str
        The bundle's classes: channels ``p_<class>`` after the five fingers.
    frame_rate_hz : float
        Nominal rate: one sample per decoded frame.
    source_id : str, optional
        LSL's unique id of the stream (default: ``neurohand-<name>``), so that a consumer reconnects after a
        restart.
    """

    name = "lsl-outlet"

    def __init__(self, name: str, *, class_names: Sequence[str], frame_rate_hz: float,
                 source_id: Optional[str] = None) -> None:
        import pylsl  # a missing pylsl is ModuleNotFoundError: the command line names the extra that installs it

        self.stream_name = name
        self.n_classes = len(class_names)
        info = pylsl.StreamInfo(name, STREAM_TYPE, 5 + self.n_classes, float(frame_rate_hz), "float32",
                                source_id or "neurohand-" + name)
        channels = info.desc().append_child("channels")
        for label, unit in [(f, "normalized") for f in FINGERS] + [("p_" + c, "probability") for c in class_names]:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", unit)
        info.desc().append_child_value("manufacturer", "neurohand")
        self._outlet = pylsl.StreamOutlet(info)
        self.pushed = 0

    def _push(self, command, probabilities) -> None:
        row = np.empty(5 + self.n_classes, np.float32)
        row[:5] = command
        row[5:] = np.nan if probabilities is None else probabilities
        self._outlet.push_sample(row.tolist())
        self.pushed += 1

    def write(self, command: np.ndarray, probabilities: Optional[np.ndarray] = None) -> bool:
        """Push one frame: the command and the class probabilities."""
        self._push(command, probabilities)
        return True

    def safe(self) -> bool:
        """Push the safe posture, no class."""
        self._push(self.safe_posture, None)
        return True

    def close(self) -> None:
        """Push the safe posture and close the outlet (after up to :data:`CLOSE_GRACE_S` for consumers to take it)."""
        if self._outlet is not None:
            self.safe()
            if self._outlet.have_consumers():  # liblsl sends in the background: dropping the outlet drops the tail
                time.sleep(CLOSE_GRACE_S)
            self._outlet = None
