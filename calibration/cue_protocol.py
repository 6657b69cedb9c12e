"""Cue protocols for calibration sessions: which movements, how often, how long, in what order.

A cue protocol is a TOML file (``calibration/cue_protocols/default.toml`` ships): ``repetitions``, ``hold_s``,
``rest_s``, ``ramp_s``, ``randomize`` and ``seed``, and a ``[movements]`` table mapping each movement name to its
five target finger positions. :meth:`CueProtocol.schedule` lays the trials out in time (each repetition is one pass
over the movements, shuffled with the seed when ``randomize``); :meth:`CueProtocol.trajectory` is the target the
patient is asked to follow, which serves as the label when no data glove is used.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Tuple

import numpy as np

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import check_int, check_positive, invalid_value
from neurohand.firmware_bridge.nerve_simulator import min_jerk

DEFAULT_CUE_PROTOCOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cue_protocols", "default.toml")


@dataclass(frozen=True)
class Trial:
    """One cued movement: the cue appears at ``start_s``; ramp, hold, ramp back, then rest."""

    index: int
    repetition: int
    movement: str
    label: int
    start_s: float
    ramp_s: float
    hold_s: float
    rest_s: float

    @property
    def end_s(self) -> float:
        """When the rest after this trial ends."""
        return self.start_s + 2 * self.ramp_s + self.hold_s + self.rest_s


@dataclass(frozen=True)
class CueProtocol:
    """A validated cue protocol; class labels are 1..n in movement order (0 = rest)."""

    movements: Tuple[Tuple[str, Tuple[float, ...]], ...]
    repetitions: int = 5
    hold_s: float = 2.0
    rest_s: float = 2.0
    ramp_s: float = 0.6
    randomize: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.movements:
            raise InvalidValueError("A cue_protocol needs at least one movement in [movements]")
        for name, tgt in self.movements:
            if len(tgt) != 5 or any(not 0.0 <= float(v) <= 1.0 for v in tgt):
                raise InvalidValueError(
                    "Movement {!r}: expected 5 target positions in 0..1 (thumb, index, middle, ring, "
                    "little), got {}".format(name, list(tgt)))
        check_int("repetitions", self.repetitions, minimum=1)
        check_positive("hold_s", self.hold_s)
        check_positive("rest_s", self.rest_s)
        check_positive("ramp_s", self.ramp_s)
        check_int("seed", self.seed, minimum=0)

    @property
    def class_names(self) -> Tuple[str, ...]:
        """``("rest", movement, ...)``."""
        return ("rest",) + tuple(m for m, _ in self.movements)

    @property
    def duration_s(self) -> float:
        """Length of the whole cue protocol."""
        trials = self.schedule()
        return trials[-1].end_s if trials else 0.0

    def target_of(self, movement: str) -> Tuple[float, ...]:
        """Return the five target positions of ``movement``."""
        for name, tgt in self.movements:
            if name == movement:
                return tgt
        raise invalid_value("movement", "allowed {}, got {!r}".format(
            ", ".join(repr(m) for m, _ in self.movements), movement))

    def to_json(self) -> str:
        """Return the cue protocol as JSON (stored in the session file: a resumed session uses exactly this one)."""
        import json

        d = asdict(self)
        d["movements"] = {name: list(tgt) for name, tgt in self.movements}
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "CueProtocol":
        """Inverse of :meth:`to_json`."""
        import json

        d = json.loads(text)
        d["movements"] = tuple((str(k), tuple(float(x) for x in v)) for k, v in d["movements"].items())
        return cls(**d)

    def with_repetitions(self, repetitions: int) -> "CueProtocol":
        """Return the same cue protocol with another number of repetitions."""
        return replace(self, repetitions=int(repetitions))

    def repetitions_for(self, minutes: float) -> int:
        """Most repetitions that fit in ``minutes`` (at least 2: one to adapt on, one to test)."""
        return max(2, self.repetitions_fitting(minutes))

    def repetitions_fitting(self, minutes: float) -> int:
        """Most repetitions that fit in ``minutes`` (0 when not even one does)."""
        one = self.with_repetitions(1).duration_s - self.rest_s
        return max(0, int((minutes * 60.0 - self.rest_s) // one))

    def minutes_for(self, repetitions: int) -> float:
        """Minutes that ``repetitions`` repetitions take."""
        return self.with_repetitions(repetitions).duration_s / 60.0

    def schedule(self) -> List[Trial]:
        """All trials in order, with their start times."""
        rng = np.random.default_rng(self.seed)
        out: List[Trial] = []
        t = self.rest_s  # start at rest
        for rep in range(1, self.repetitions + 1):
            order = rng.permutation(len(self.movements)) if self.randomize else np.arange(len(self.movements))
            for k in order:
                name = self.movements[k][0]
                out.append(Trial(len(out), rep, name, int(k) + 1, t, self.ramp_s, self.hold_s, self.rest_s))
                t = out[-1].end_s
        return out

    def trajectory(self, times_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Target positions, labels and repetitions at the given times (minimum-jerk ramps).

        Returns
        -------
        positions : np.ndarray, shape (n, 5) in 0..1
        labels : np.ndarray, shape (n,), int16 (0 = rest)
        repetitions : np.ndarray, shape (n,), int16
        """
        t = np.asarray(times_s, float)
        pos = np.zeros((len(t), 5))
        lab = np.zeros(len(t), np.int16)
        rep = np.zeros(len(t), np.int16)
        targets: Dict[str, np.ndarray] = {m: np.asarray(v, float) for m, v in self.movements}
        for tr in self.schedule():
            a = tr.start_s
            up_end, hold_end, down_end = a + tr.ramp_s, a + tr.ramp_s + tr.hold_s, a + 2 * tr.ramp_s + tr.hold_s
            m = (t >= a) & (t < tr.end_s)
            rep[m] = tr.repetition
            s = np.zeros(len(t))
            up = (t >= a) & (t < up_end)
            s[up] = min_jerk((t[up] - a) / tr.ramp_s)
            s[(t >= up_end) & (t < hold_end)] = 1.0
            down = (t >= hold_end) & (t < down_end)
            s[down] = 1.0 - min_jerk((t[down] - hold_end) / tr.ramp_s)
            active = (t >= a) & (t < down_end)
            pos[active] = s[active, None] * targets[tr.movement][None, :]
            lab[active] = tr.label
        return pos, lab, rep


def load_cue_protocol(path: str = DEFAULT_CUE_PROTOCOL) -> CueProtocol:
    """Read and validate a TOML cue protocol; errors name the field."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(path, "rb") as f:
        try:
            doc = tomllib.load(f)
        except Exception as e:
            raise InvalidValueError("{}: {}".format(path, e)) from None
    allowed = {"repetitions", "hold_s", "rest_s", "ramp_s", "randomize", "seed", "movements"}
    unknown = set(doc) - allowed
    if unknown:
        raise InvalidValueError("{}: unknown field(s) {}; allowed {}".format(path, sorted(unknown), sorted(allowed)))
    movements = tuple((str(k), tuple(float(x) for x in v)) for k, v in doc.get("movements", {}).items())
    kw = {k: doc[k] for k in allowed - {"movements"} if k in doc}
    return CueProtocol(movements=movements, **kw)
