"""Signal sources for the runtime: a blocking ``read()`` of the next chunk with its arrival time.

``sim`` streams the simulated patient and ``replay:FILE.h5`` a recorded session, both paced in real time (the loop
sleeps until each chunk is due, it never spins) or as fast as possible with ``fast=True``.
"""

import time
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.recording import Recording
from neurohand.decoder.session_file import read_recording
from neurohand.decoder.validation import invalid_value
from neurohand.firmware_bridge.devices import Source
from neurohand.firmware_bridge.interface_link import SourceFault, SourceStalled  # noqa: F401 - one for every source


class RecordingSource(Source):
    """Stream a recording in chunks of ``chunk_samples``; ``fast`` skips the real-time pacing.

    ``inject`` hooks let tests corrupt the stream: a callable ``(chunk_index, chunk) -> chunk or None`` where None
    simulates a stall of ``stall_s`` seconds.
    """

    def __init__(self, recording: Recording, *, chunk_samples: int, fast: bool = False, loop: bool = False,
                 inject=None, stall_s: float = 0.3) -> None:
        self.recording = recording
        self.fs_hz = recording.fs_hz
        self.n_channels = recording.n_channels
        self.channel_names = recording.channel_names
        self.units = recording.units
        self.chunk = int(chunk_samples)
        self.fast = fast
        self.real_time = not fast
        self.loop = loop
        self.inject = inject
        self.stall_s = stall_s
        self._pos = 0
        self._index = 0
        self._t0: Optional[float] = None
        self.finished = False

    def read(self) -> Tuple[np.ndarray, float]:
        """Block until the next chunk is due; return ``(chunk (n, n_channels) float32, arrival monotonic time)``.

        In real time a chunk arrives when its last sample is due (a chunk read late, after the process was frozen,
        keeps that time: it is old); as fast as possible, when it is read.

        Raises
        ------
        StopIteration
            At the end of the recording (unless looping).
        SourceStalled
            When an injected stall hides the data.
        """
        n = self.recording.n_samples
        if self._pos >= n:
            if not self.loop:
                self.finished = True
                raise StopIteration
            self._pos = 0
        if self._t0 is None:
            self._t0 = time.monotonic()
        a, b = self._pos, min(self._pos + self.chunk, n)
        due = self._t0 + (self._index * self.chunk + (b - a)) / self.fs_hz
        if not self.fast:
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        chunk = self.recording.signals[a:b]
        self._pos = b
        idx = self._index
        self._index += 1
        if self.inject is not None:
            chunk = self.inject(idx, chunk)
            if chunk is None:
                if not self.fast:
                    time.sleep(self.stall_s)
                raise SourceStalled("no samples for {:.0f} ms".format(self.stall_s * 1000))
        return np.asarray(chunk, np.float32), time.monotonic() if self.fast else due

    def close(self) -> None:
        """Nothing to release."""


SPEC_FORMS = {"sim": "sim", "replay": "replay:FILE.h5", "serial": "serial:PORT", "lsl": "lsl:NAME", "none": "none"}
"""Every device spec's form, by kind: what ``--source``, ``--hand`` and ``--labels`` accept is a subset."""


class DeviceSpec(NamedTuple):
    """A parsed device spec: ``kind`` (a key of :data:`SPEC_FORMS`) and ``target`` (file, port or name; '' if none)."""

    kind: str
    target: str


def parse_device_spec(name: str, spec: str, allowed: Sequence[str]) -> DeviceSpec:
    """Parse ``sim``, ``none``, ``replay:FILE.h5``, ``serial:PORT`` or ``lsl:NAME``, accepting only ``allowed`` kinds.

    Raises
    ------
    InvalidValueError
        ``Invalid value for '--source': allowed 'sim', 'serial:PORT', got 'usb0'``.
    """
    kind, sep, target = str(spec).partition(":")
    bare = kind in ("sim", "none")
    if kind not in allowed or (bare and sep) or (not bare and not target):
        raise invalid_value(name, "allowed {}, got {!r}".format(", ".join(repr(SPEC_FORMS[k]) for k in allowed), spec))
    return DeviceSpec(kind, target)


SOURCE_KINDS = ("sim", "replay", "serial", "lsl")


def source_for(spec: Optional[str], *, fs_hz: float, n_channels: int, model: str = "the model") -> str:
    """Return the source spec to open: ``spec``, or ``sim`` when none was given and the simulator fits the model.

    Raises
    ------
    InvalidValueError
        The simulator's rate or channel count differs from the model's (given as ``sim`` or by default): one line
        naming the sources that can deliver it.
    """
    if spec is not None and parse_device_spec("--source", spec, SOURCE_KINDS).kind != "sim":
        return spec
    from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig

    sim = SimulatorConfig()
    if abs(sim.fs_hz - float(fs_hz)) <= 1e-6 * sim.fs_hz and sim.n_channels == int(n_channels):
        return "sim"
    raise InvalidValueError("{} expects {:g} Hz, {} channels, but the simulator delivers {:g} Hz, {} channels: {}"
                            "give --source replay:SESSION.h5 (a recorded session at the model's rate), serial:PORT "
                            "(a neural interface) or lsl:NAME (a Lab Streaming Layer stream)".format(
                                model, float(fs_hz), int(n_channels), sim.fs_hz, sim.n_channels,
                                "" if spec is not None else "--source is required; "))


def open_source(spec: str, *, chunk_samples: int = 1, fast: bool = False, minutes: float = 2.0, seed: int = 0,
                patient=None, stall_timeout_s: Optional[float] = None, allowed: Sequence[str] = SOURCE_KINDS,
                recording: Optional[Recording] = None, loop: bool = False):
    """Open a source: the one factory for the runtime, calibration, the soak, the demo and the benchmarks.

    Parameters
    ----------
    spec : str
        ``sim``, ``replay:FILE.h5``, ``serial:PORT`` (a neural interface) or ``lsl:NAME``.
    chunk_samples : int
        Samples per read of a recording or the looped simulator: one hop of the bundle (``Bundle.hop_samples``).
    fast : bool
        Replay as fast as possible instead of in real time.
    minutes, seed : float, int
        The looped simulated recording of ``sim``.
    patient : SimulatorConfig, optional
        With ``sim``: a live simulated patient following the cues instead (calibration:
        :class:`firmware_bridge.sim_patient.SimulatedPatient`).
    stall_timeout_s : float, optional
        A serial interface's stall timeout (default: the link's own).
    allowed : sequence of str
        The kinds this caller accepts; another is refused naming them.
    recording : Recording, optional
        With ``replay:NAME``: replay this recording, already in memory (the demo's held-out repetition), instead of
        reading the file; NAME only names it.
    loop : bool
        Replay the recording again from its start at its end.
    """
    kind, target = parse_device_spec("--source", spec, allowed)
    if kind == "sim" and patient is not None:
        from neurohand.firmware_bridge.sim_patient import SimulatedPatient

        return SimulatedPatient(patient, fast=fast)
    if kind == "sim":
        from neurohand.firmware_bridge.nerve_simulator import SimulatorConfig, simulate_recording

        rec = simulate_recording(SimulatorConfig(minutes=minutes, seed=seed))
        return RecordingSource(rec, chunk_samples=chunk_samples, fast=fast, loop=True)
    if kind == "lsl":
        from neurohand.firmware_bridge.lsl_source import LslSource

        return LslSource(target)
    if kind == "serial":
        from neurohand.firmware_bridge.interface_link import InterfaceSource

        return InterfaceSource(target) if stall_timeout_s is None else InterfaceSource(
            target, stall_timeout_s=stall_timeout_s)
    rec = recording if recording is not None else read_recording(target)
    return RecordingSource(rec, chunk_samples=chunk_samples, fast=fast, loop=loop)
