"""A simulated patient who follows calibration cues: the source a calibration session reads from the simulator.

The patient rests until a cue is shown (:meth:`SimulatedPatient.cue`), then, after a reaction delay of 0.15-0.35 s,
moves towards the cued target with a minimum-jerk profile of about the cued ramp time (+-25 %), at 70-100 % of the
target with enslaved neighbours following (:mod:`firmware_bridge.nerve_simulator`), holds for the cued hold time,
releases, and rests again. The nerve signals come from :class:`~firmware_bridge.nerve_simulator.SignalSynthesizer`,
one glove sample (10 ms) at a time, so a cue changes the movement within one reaction time, as with a person.

What the patient's hand actually did is what a data glove on the mirroring hand measures: every :meth:`read` hands
those positions to ``on_glove`` (the simulated glove, :class:`~firmware_bridge.sim_glove.SimGlove`, streams them
over its own pseudo-terminal). Reads are paced in real time unless ``fast``.
"""

import collections
import time
from typing import Callable, Deque, Optional, Sequence, Tuple

import numpy as np

from .devices import Source
from .nerve_simulator import (
    ENSLAVE,
    SignalSynthesizer,
    SimulatorConfig,
    channel_names_for,
    make_patient,
    min_jerk_ramp,
)


class SimulatedPatient(Source):
    """Stream the nerve signals of the patient ``config.seed`` on ``config.day`` as they follow cues.

    Parameters
    ----------
    config : SimulatorConfig
        Patient, day, channels and rates (``minutes`` is not used: the patient streams until closed).
    fast : bool
        Skip the real-time pacing.
    on_glove : callable, optional
        Receives each read's glove positions, shape (m, 5) in 0..1 at ``config.glove_fs_hz``.
    """

    def __init__(self, config: SimulatorConfig, *, fast: bool = False,
                 on_glove: Optional[Callable[[np.ndarray], None]] = None) -> None:
        self.config = config
        self.fs_hz = config.fs_hz
        self.n_channels = config.n_channels
        self.channel_names = channel_names_for(config.n_channels)
        self.units = "uV"
        self.glove_fs_hz = config.glove_fs_hz
        self.fast = fast
        self.on_glove = on_glove
        self.rng = np.random.default_rng([config.seed, config.day, config.session, 7])
        self.synth = SignalSynthesizer(make_patient(config), config, self.rng)
        self._plan: Deque[np.ndarray] = collections.deque()  # planned positions, one glove sample each
        self._tremor_f = self.rng.uniform(8.0, 12.0, 5)
        self._tremor_phase = self.rng.uniform(0, 2 * np.pi, 5)
        self._t0: Optional[float] = None
        self.last_positions = np.zeros(5)

    def cue(self, target: Sequence[float], *, ramp_s: float, hold_s: float) -> None:
        """Show the patient a cue: move to ``target`` (5 values in 0..1) over ``ramp_s``, hold, release."""
        g = self.glove_fs_hz
        rng = self.rng
        vec = np.asarray(target, float) * rng.uniform(0.7, 1.0)
        vec = np.clip(vec + (vec @ ENSLAVE) * rng.uniform(0.7, 1.3, 5), 0.0, 1.0)
        react = int(rng.uniform(0.15, 0.35) * g)
        up = max(2, int(ramp_s * rng.uniform(0.75, 1.25) * g))
        down = max(2, int(ramp_s * rng.uniform(0.75, 1.25) * g))
        hold = max(1, int(hold_s * g) - (up - int(ramp_s * g)))
        prof = np.concatenate([np.zeros(react), min_jerk_ramp(up), np.ones(hold), 1.0 - min_jerk_ramp(down)])
        self._plan.clear()  # a new cue replaces whatever the patient was still doing
        self._plan.extend(prof[:, None] * vec[None, :])

    def _next_positions(self, m: int) -> np.ndarray:
        out = np.zeros((m, 5))
        for i in range(m):
            if self._plan:
                out[i] = self._plan.popleft()
        t = (self.synth.n_glove + np.arange(m))[:, None] / self.glove_fs_hz
        tremor = 0.004 * np.sin(2 * np.pi * self._tremor_f[None, :] * t + self._tremor_phase[None, :])
        return np.clip(out * (1 + 5 * tremor) + tremor + self.rng.normal(0, 0.005, out.shape), 0.0, 1.0)

    def read(self) -> Tuple[np.ndarray, float]:
        """Next 10 ms (one glove sample) of signals: ``(chunk (n, n_channels) float32, arrival time)``."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        pos = self._next_positions(1)
        chunk = self.synth.synthesize(pos)
        due = self._t0 + self.synth.n_samples / self.fs_hz  # when the chunk's last sample arrives in real time
        if not self.fast:
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.last_positions = pos[-1]
        if self.on_glove is not None:
            self.on_glove(pos.astype(np.float32))
        return chunk, time.monotonic() if self.fast else due

    def close(self) -> None:
        """Nothing to release."""
