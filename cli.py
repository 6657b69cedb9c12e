"""The ``neurohand`` command: the application layer's dispatcher over subcommands that live in their own layers.

Each command module exposes ``register(subparsers)``; :data:`COMMANDS` says which module holds each command, and a
command line naming one imports only that module: ``neurohand run``, ``doctor``, ``verify`` and ``keys`` on the
device import no training or calibration module (and never torch). ``neurohand --help`` imports every command
module. An expected failure (a :class:`~neurohand.decoder.errors.NeurohandError`, or an ``OSError``) is one line on
stderr and exit 2; anything else is a bug and shows its traceback.

This module and every command module import on Python 3.6 without torch (the Jetson Nano's JetPack 4.6):
``neurohand --help`` and ``neurohand run`` work there. The desktop commands (train, calibrate, export, ...) need
Python 3.8+; on an older interpreter they stop with one line saying so.
"""

import argparse
import importlib
import os
import platform
import re
import sys
from typing import List, Optional

from neurohand import __version__
from neurohand.decoder.errors import NeurohandError

# Modules whose ``register(subparsers)`` adds subcommands, in help order, and the commands each adds.
COMMANDS = (
    ("neurohand.demo", ("demo",)),
    ("neurohand.firmware_bridge.cli", ("simulate", "sim-hand", "sim-interface")),
    ("neurohand.training.data_cli", ("import", "inspect", "export-session")),
    ("neurohand.calibration.cli", ("calibrate", "models")),
    ("neurohand.training.cli", ("train", "pretrain", "evaluate")),
    ("neurohand.training.recal_cli", ("recalibrate",)),
    ("neurohand.training.export", ("export",)),
    ("neurohand.deploy.device_commands", ("build-engine", "verify", "doctor")),
    ("neurohand.deploy.signing_commands", ("keygen", "sign")),
    ("neurohand.deploy.service_command", ("service",)),
    ("neurohand.deploy.run_command", ("keys", "run")),
    ("neurohand.bench", ("bench",)),
)
COMMAND_MODULES = tuple(module for module, _ in COMMANDS)

# Modules of the optional extras (pyproject.toml), and the extra that installs each.
OPTIONAL_MODULES = {"torch": "train", "onnx": "train", "safetensors": "train", "sklearn": "train",
                    "matplotlib": "train", "pynput": "keys", "pylsl": "lsl", "pynwb": "nwb"}
DESKTOP_EXTRAS = ("train", "nwb")
"""Extras that need Python 3.8+ (torch, pynwb): on the device's Python a missing one names the desktop side."""


def module_of(command: str) -> Optional[str]:
    """Return the module that registers ``command`` (None for an unknown one)."""
    for module, names in COMMANDS:
        if command in names:
            return module
    return None


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """Build the argument parser: with ``argv`` naming a known command first, only that command's module is imported.

    Otherwise (no command, an option first, an unknown command) every command module registers its commands, for
    the full help or argparse's own error.
    """
    only = module_of(argv[0]) if argv else None  # the command comes first: the only options before it are -h, -V
    parser = argparse.ArgumentParser(
        prog="neurohand",
        description="Real-time neural decoder for a prosthetic hand.",
    )
    parser.add_argument("--version", action="version", version="neurohand " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in ([only] if only else COMMAND_MODULES):
        importlib.import_module(name).register(sub)
    return parser


def in_users_terms(message: str, parser: argparse.ArgumentParser, command: str) -> str:
    """Name settings as the command line spells them: ``'hop_ms'`` becomes ``'--hop-ms'`` where ``command`` has it."""
    options = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            options = {o for a in action.choices[command]._actions for o in a.option_strings}

    def option(m):
        flag = "--" + m.group(1).replace("_", "-")
        return "'{}'".format(flag) if flag in options else m.group(0)

    return re.sub(r"'([a-z][a-z0-9]*(?:_[a-z0-9]+)+)'", option, message)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``neurohand`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except (NeurohandError, OSError) as e:  # expected: bad input, files, serial ports that won't open, no device
        print("neurohand {}: error: {}".format(args.command, in_users_terms(str(e), parser, args.command)),
              file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = OPTIONAL_MODULES.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        if extra in DESKTOP_EXTRAS and sys.version_info < (3, 8):  # they do not install on the device's Python
            print("neurohand {}: error: this command needs the desktop side: Python 3.8 or later with pip install "
                  "'neurohand[{}]' ({} is missing; this is Python {}, the device's)".format(
                      args.command, extra, e.name, platform.python_version()), file=sys.stderr)
            return 2
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
