"""The ``neurohand`` command: a thin dispatcher over subcommands that live in their own packages.

Each package exposes ``register(subparsers)`` in its ``cli`` module; handlers import their heavy
dependencies only when run, so ``neurohand run`` on the device never imports torch. An expected failure (a
:class:`~neurohand.decoder.errors.NeurohandError`, or an ``OSError``) is one line on stderr and exit 2; anything else
is a bug and shows its traceback.

This module and every module in ``COMMAND_MODULES`` import on Python 3.6 without torch (the Jetson Nano's
JetPack 4.6): ``neurohand --help`` and ``neurohand run`` work there. The desktop commands (train, calibrate, export,
...) need Python 3.8+; on an older interpreter they stop with one line saying so.
"""

import argparse
import importlib
import os
import platform
import sys
from typing import List, Optional

from neurohand import __version__
from neurohand.decoder.errors import NeurohandError

# Modules whose ``register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = (
    "neurohand.deploy.demo",
    "neurohand.firmware_bridge.cli",
    "neurohand.training.data_cli",
    "neurohand.calibration.cli",
    "neurohand.training.cli",
    "neurohand.training.recal_cli",
    "neurohand.training.export",
    "neurohand.deploy.device_commands",
    "neurohand.deploy.runtime",
    "neurohand.deploy.bench",
)

# Modules of the optional extras (pyproject.toml), and the extra that installs each.
OPTIONAL_MODULES = {"torch": "train", "onnx": "train", "safetensors": "train", "sklearn": "train",
                    "matplotlib": "train", "pynput": "keys", "pylsl": "lsl"}


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser."""
    parser = argparse.ArgumentParser(
        prog="neurohand",
        description="Real-time neural decoder for a prosthetic hand.",
    )
    parser.add_argument("--version", action="version", version="neurohand " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``neurohand`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (NeurohandError, OSError) as e:  # expected: bad input, files, serial ports that won't open, no device
        print("neurohand {}: error: {}".format(args.command, e), file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = OPTIONAL_MODULES.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print("neurohand {}: error: {} is not installed; this command needs pip install 'neurohand[{}]'".format(
            args.command, e.name, extra), file=sys.stderr)
        return 2
    except SyntaxError as e:
        if sys.version_info >= (3, 8):
            raise
        # The device side runs on Python 3.6 (JetPack 4); training and calibration need 3.8+ and are imported
        # only by their handlers, so only their commands end up here.
        print("neurohand {}: error: this command needs Python 3.8 or later (the desktop side); this is Python {} "
              "({}: {})".format(args.command, platform.python_version(), os.path.basename(e.filename or "?"), e.msg),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurohand {}: interrupted".format(args.command), file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
