"""The ``neurohand`` command: a thin dispatcher over subcommands that live in their own packages.

Each package exposes ``register(subparsers)`` in its ``cli`` module; handlers import their heavy
dependencies only when run, so ``neurohand run`` on the device never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from neurohand import __version__

# Modules whose ``register(subparsers)`` adds subcommands, in help order.
COMMAND_MODULES = (
    "neurohand.deploy.demo",
    "neurohand.firmware_bridge.cli",
    "neurohand.calibration.cli",
    "neurohand.training.cli",
    "neurohand.training.export",
    "neurohand.deploy.runtime",
    "neurohand.deploy.bench",
)


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
    from neurohand.firmware_bridge.interface_link import SourceStalled  # a device that never answered

    try:
        rc = args.func(args)
    except (ValueError, OSError, KeyError, SourceStalled) as e:  # OSError: files, and serial ports that won't open
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print("neurohand {}: error: {}".format(args.command, msg), file=sys.stderr)
        return 2
    except ImportError as e:
        print("neurohand {}: error: {} is not installed; this command needs the clinic extras: "
              "pip install 'neurohand[train]'".format(args.command, getattr(e, "name", None) or e), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurohand {}: interrupted".format(args.command), file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
