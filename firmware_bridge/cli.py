"""Subcommands of the firmware bridge: ``neurohand simulate``."""

import argparse
import os

from neurohand.decoder.validation import check_positive, invalid_value

from .protocol import FS_RANGE_HZ, MAX_CHANNELS

MAX_SIMULATED_VALUES = 10 ** 9  # channels x samples of one simulated file: 4 GB as float32, more than any session


def register(sub: "argparse._SubParsersAction") -> None:
    """Add this package's subcommands."""
    p = sub.add_parser(
        "simulate",
        help="simulate a patient's nerve recordings during a cued finger protocol",
        description="Write a simulated session (median/ulnar intrafascicular recordings, glove positions, "
        "labels, cues). With --days N > 1, writes one file per day: OUT_day1.h5 .. OUT_dayN.h5.",
    )
    p.add_argument("--out", required=True, help="session file to write (.h5)")
    p.add_argument("--minutes", type=float, default=5.0, help="length of each session (default 5)")
    p.add_argument("--channels", type=int, default=16, help="recording sites, half per nerve (default 16)")
    p.add_argument("--fs-hz", type=float, default=10000.0, help="sample rate (default 10000)")
    p.add_argument("--mains-hz", type=float, default=50.0, choices=[50.0, 60.0], help="mains frequency")
    p.add_argument("--days", type=int, default=1, help="consecutive days to simulate (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the patient (default 0)")
    p.set_defaults(func=_simulate)

    h = sub.add_parser("sim-hand", help="run a simulated hand on a pseudo-terminal (prints its port, then shows it)",
                       description="Open a pseudo-terminal, print its path, and behave like the hand's firmware: "
                       "protocol v1, speed-limited fingers, STATUS at 20 Hz, 200 ms watchdog to the safe posture. "
                       "On a terminal it then shows the fingers, its state and faults live; otherwise a line each "
                       "time the state or the faults change.")
    h.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    h.add_argument("--quiet", action="store_true", help="print only the port")
    h.set_defaults(func=_sim_hand)

    i = sub.add_parser("sim-interface", help="stream the simulator or a recording as SAMPLES on a pseudo-terminal",
                       description="Open a pseudo-terminal, print its path, send HELLO and then SAMPLES frames in "
                       "real time, like a neural interface on USB serial.")
    i.add_argument("--replay", default=None, help="session file to stream (default: the simulator)")
    i.add_argument("--minutes", type=float, default=2.0, help="simulated length before looping (default 2)")
    i.add_argument("--seed", type=int, default=0, help="seed of the simulated signal when no --replay is given")
    i.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    i.set_defaults(func=_sim_interface)


def day_paths(out: str, days: int) -> list:
    """Output file of each simulated day."""
    if days == 1:
        return [out]
    stem, ext = os.path.splitext(out)
    return ["{}_day{}{}".format(stem, d, ext or ".h5") for d in range(1, days + 1)]


def _simulate(args: argparse.Namespace) -> int:
    from neurohand.decoder.session_file import write_recording

    from .nerve_simulator import SimulatorConfig, simulate_recording

    if args.days < 1:
        raise invalid_value("--days", "expected an integer >= 1, got {}".format(args.days))
    check_simulation_size(args.minutes, args.channels, args.fs_hz)
    for day, path in enumerate(day_paths(args.out, args.days), start=1):
        cfg = SimulatorConfig(minutes=args.minutes, n_channels=args.channels, fs_hz=args.fs_hz,
                              mains_hz=args.mains_hz, day=day, seed=args.seed)
        rec = simulate_recording(cfg)
        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        write_recording(rec, path)
        print("wrote {}: {} channels x {:.1f} s at {:g} Hz, day {}, {} cues".format(
            path, rec.n_channels, rec.duration_s, rec.fs_hz, day, len(rec.cues)))
    return 0


def check_simulation_size(minutes: float, channels: int, fs_hz: float) -> None:
    """Refuse a simulated session that the protocol could not carry or that would not fit in memory, in one line."""
    check_positive("--minutes", minutes)
    if not 1 <= channels <= MAX_CHANNELS:
        raise invalid_value("--channels", "expected 1 to {}, got {}".format(MAX_CHANNELS, channels))
    if not FS_RANGE_HZ[0] <= check_positive("--fs-hz", fs_hz) <= FS_RANGE_HZ[1]:
        raise invalid_value("--fs-hz", "expected {:g} to {:g} Hz, got {:g}".format(FS_RANGE_HZ[0], FS_RANGE_HZ[1],
                                                                                  fs_hz))
    values = minutes * 60.0 * fs_hz * channels
    if values > MAX_SIMULATED_VALUES:
        raise invalid_value("--minutes", "{:g} min of {} channels at {:g} Hz is {:.3g} values; at most {:.0e} per "
                            "file (use --days for more sessions)".format(minutes, channels, fs_hz, values,
                                                                         MAX_SIMULATED_VALUES))


def _sim_hand(args: argparse.Namespace) -> int:
    from .sim_hand import main_sim_hand

    if args.seconds is not None:
        check_positive("--seconds", args.seconds)
    return main_sim_hand(args.seconds, view=not args.quiet)


def _sim_interface(args: argparse.Namespace) -> int:
    import time

    from neurohand.decoder.session_file import read_recording

    from .nerve_simulator import SimulatorConfig, simulate_recording
    from .sim_interface import SimInterface

    rec = read_recording(args.replay) if args.replay else simulate_recording(
        SimulatorConfig(minutes=args.minutes, seed=args.seed))
    iface = SimInterface(rec)
    print(iface.port, flush=True)
    iface.start()
    try:
        time.sleep(check_positive("--seconds", args.seconds) if args.seconds is not None else 1e9)
    except KeyboardInterrupt:
        pass
    finally:
        iface.stop()
    return 0
