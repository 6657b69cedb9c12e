"""What ``neurohand calibrate`` is asked to do: typed options in three parts, and the one table of its arguments.

:data:`CALIBRATE_ARGUMENTS` is the single owner of every option that shapes a session: the parser is built from it
(:func:`add_calibrate_arguments`), parsed arguments become :class:`CalibrateOptions` through it
(:func:`calibrate_options`), and a resume command repeats the options through it
(:func:`calibration.interrupted.resume_command`).
"""


import argparse
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from neurohand.decoder.errors import InvalidValueError
from neurohand.decoder.validation import check_option, invalid_value
from neurohand.decoder.vocabulary import SIGNAL_KINDS
from neurohand.deploy.sources import parse_device_spec

__all__ = ["CALIBRATE_ARGUMENTS", "Argument", "CalibrateOptions", "DeviceOptions", "SimulatorOptions",
           "TrainingOptions", "add_calibrate_arguments", "calibrate_options", "value_at"]


@dataclass(frozen=True)
class DeviceOptions:
    """Where the signals and the labels come from.

    Parameters
    ----------
    source : str
        ``sim`` (the simulated patient), ``serial:PORT`` (a neural interface) or ``lsl:NAME``.
    labels : str
        ``cue`` (the cued trajectory), ``glove:PORT`` (a data glove) or ``glove:sim`` (the simulated patient's).
    signal_kind : str
        What a serial or LSL source streams (:data:`decoder.vocabulary.SIGNAL_KINDS`).
    mains_hz : float
        Mains frequency, for the quality check (and the simulator's interference).
    """

    source: str = "sim"
    labels: str = "cue"
    signal_kind: str = "nerve"
    mains_hz: float = 50.0

    def __post_init__(self) -> None:
        parse_device_spec("--source", self.source, ("sim", "serial", "lsl"))
        if self.labels != "cue" and not self.labels.startswith("glove:"):
            raise invalid_value("--labels", "allowed 'cue', 'glove:PORT' or 'glove:sim', got {!r}".format(self.labels))
        if self.labels == "glove:sim" and self.source != "sim":
            raise InvalidValueError("'--labels glove:sim' is the simulated patient's glove; it needs '--source sim'")
        check_option("signal_kind", self.signal_kind, SIGNAL_KINDS)


@dataclass(frozen=True)
class SimulatorOptions:
    """The simulated patient of ``--source sim`` (:class:`firmware_bridge.nerve_simulator.SimulatorConfig`).

    Parameters
    ----------
    seed : int
        Which simulated patient.
    day, session : int
        Simulated day (2+ drift from day 1) and session of the day.
    channels : int
    fs_hz : float
    fast : bool
        Do not pace in real time.
    """

    seed: int = 0
    day: int = 1
    session: int = 1
    channels: int = 16
    fs_hz: float = 10000.0
    fast: bool = False


@dataclass(frozen=True)
class TrainingOptions:
    """How the model is trained, recalibrated or adapted from a base (None: ``neurohand train``'s defaults).

    Parameters
    ----------
    epochs, hidden, layers : int or None
    seed : int
    base : str or None
        A pre-trained base (``neurohand pretrain``) to adapt instead of training from scratch.
    """

    epochs: Optional[int] = None
    hidden: Optional[int] = None
    layers: Optional[int] = None
    seed: int = 0
    base: Optional[str] = None

    def __post_init__(self) -> None:
        if self.base is not None and (self.hidden is not None or self.layers is not None):
            raise InvalidValueError("Invalid value for '--base': the base sets the architecture; leave out "
                                    "--hidden and --layers")


@dataclass(frozen=True)
class CalibrateOptions:
    """What ``neurohand calibrate`` was asked to do (see ``neurohand calibrate --help``).

    The session's own options, and its devices, simulated patient and training as parts.
    """

    patient: str
    store: str
    cue_protocol: Optional[str] = None
    recalibrate: bool = False
    minutes: Optional[float] = None
    resume: Optional[str] = None
    yes: bool = False
    tui: bool = True
    accept_worse: bool = False
    devices: DeviceOptions = field(default_factory=DeviceOptions)
    simulator: SimulatorOptions = field(default_factory=SimulatorOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)

    def __post_init__(self) -> None:
        if self.training.base is not None and self.recalibrate:
            raise InvalidValueError("Invalid value for '--base': it adapts a pre-trained base to a new patient, "
                                    "--recalibrate adapts the patient's current model; use one of them")
        if self.minutes is not None and self.minutes <= 0:
            raise invalid_value("--minutes", "expected > 0, got {}".format(self.minutes))


@dataclass(frozen=True)
class Argument:
    """One ``calibrate`` option: where its value lives in :class:`CalibrateOptions` and how argparse reads it.

    ``path`` is the field's dotted path (``"devices.source"``); ``always`` options are repeated in a resume command
    even at their defaults (what the recording is made of).
    """

    path: str
    flags: Tuple[str, ...]
    kwargs: Dict[str, Any]
    always: bool = False

    @property
    def dest(self) -> str:
        """The argparse destination: the path with its dots as underscores."""
        return self.path.replace(".", "_")

    @property
    def takes_value(self) -> bool:
        """False for a flag (``store_true`` / ``store_false``)."""
        return not str(self.kwargs.get("action", "")).startswith("store_")


CALIBRATE_ARGUMENTS = (
    Argument("patient", ("--patient",), dict(required=True, help="patient identifier (letters, digits, _ - .)")),
    Argument("store", ("--store",), dict(required=True, help="the model store folder (sessions and versions live "
                                                             "here)")),
    Argument("devices.source", ("--source",), dict(default="sim", help="sim (simulated patient), serial:PORT or "
                                                                       "lsl:NAME (default sim)"), always=True),
    Argument("devices.labels", ("--labels",), dict(default="cue", help="cue (the cued trajectory) or glove:PORT (a "
                                                                       "data glove on the mirroring hand; glove:sim "
                                                                       "with --source sim) (default cue)"),
             always=True),
    Argument("cue_protocol", ("--cue-protocol",), dict(default=None, help="cue protocol TOML (default: the shipped "
                                                                          "cue protocol)")),
    Argument("recalibrate", ("--recalibrate",), dict(action="store_true", help="adapt the current model instead of "
                                                                               "training anew")),
    Argument("training.base", ("--base",), dict(
        default=None, metavar="BASE", help="adapt a pre-trained base (neurohand pretrain) to this patient instead of "
        "training from scratch; the cue protocol shrinks to 3 repetitions (train, validate, test) unless --minutes "
        "says otherwise; the source must match the base's channels, rate and kind")),
    Argument("minutes", ("--minutes",), dict(type=float, default=None, help="record only as many repetitions as fit "
                                                                            "(recalibration: e.g. 2)")),
    Argument("resume", ("--resume",), dict(default=None, metavar="SESSION.h5", help="continue an interrupted "
                                                                                    "session")),
    Argument("yes", ("--yes",), dict(action="store_true", help="answer every question with its default: continue "
                                     "unless the quality verdict is bad; accept only a model that is ready (no worse "
                                     "than the best classic decoder or the current version, every finger and the "
                                     "class accuracy above the thresholds), otherwise reject and say why (exit 4); "
                                     "for scripted use")),
    Argument("accept_worse", ("--accept-worse",), dict(action="store_true", help="offer 'accept' as the default even "
                                                       "for a model that is not ready (rehearsals with tiny models); "
                                                       "the reason is kept in the version's notes")),
    Argument("tui", ("--no-tui",), dict(action="store_false", help="plain log lines instead of the live view")),
    Argument("simulator.fast", ("--fast",), dict(action="store_true", help="simulated patient only: do not pace in "
                                                                           "real time")),
    Argument("training.epochs", ("--epochs",), dict(type=int, default=None, help="training (or recalibration) "
                                                                                 "epochs")),
    Argument("training.hidden", ("--hidden",), dict(type=int, default=None, help="recurrent state size (default: "
                                                                                 "neurohand train's)")),
    Argument("training.layers", ("--layers",), dict(type=int, default=None, help="recurrent layers (default: "
                                                                                 "neurohand train's)")),
    Argument("training.seed", ("--seed",), dict(type=int, default=0, help="training seed")),
    Argument("devices.signal_kind", ("--signal-kind",), dict(default="nerve", choices=SIGNAL_KINDS,
                                                             help="what a serial or LSL source streams (default "
                                                                  "nerve)")),
    Argument("devices.mains_hz", ("--mains-hz",), dict(type=float, default=50.0, help="mains frequency for the "
                                                                                      "quality check")),
    Argument("simulator.seed", ("--sim-seed",), dict(type=int, default=0, help="simulated patient")),
    Argument("simulator.day", ("--sim-day",), dict(type=int, default=1, help="simulated day (2+ drift from day 1)")),
    Argument("simulator.channels", ("--sim-channels",), dict(type=int, default=16,
                                                             help="channels of the simulated patient (--source sim)")),
    Argument("simulator.fs_hz", ("--sim-fs-hz",), dict(type=float, default=10000.0,
                                                          help="sample rate of the simulated patient (--source sim)")),
)


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``neurohand calibrate`` that shape a session (a printed resume command repeats them)."""
    for a in CALIBRATE_ARGUMENTS:
        parser.add_argument(*a.flags, dest=a.dest, **a.kwargs)


def value_at(opts: CalibrateOptions, path: str) -> Any:
    """Return the value of ``opts`` at a dotted ``path`` (``"devices.source"``)."""
    v: Any = opts
    for name in path.split("."):
        v = getattr(v, name)
    return v


def calibrate_options(args: argparse.Namespace) -> CalibrateOptions:
    """Return the :class:`CalibrateOptions` of parsed ``calibrate`` arguments."""
    top: Dict[str, Any] = {}
    parts: Dict[str, Dict[str, Any]] = {"devices": {}, "simulator": {}, "training": {}}
    for a in CALIBRATE_ARGUMENTS:
        part, _, name = a.path.rpartition(".")
        (parts[part] if part else top)[name] = getattr(args, a.dest)
    return CalibrateOptions(**top, devices=DeviceOptions(**parts["devices"]),
                            simulator=SimulatorOptions(**parts["simulator"]),
                            training=TrainingOptions(**parts["training"]))
