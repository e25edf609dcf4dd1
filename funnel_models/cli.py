"""The ``funnel`` command line.

Each subcommand lives in its own module under :mod:`funnel_models.commands` and exposes
``register(subparsers)``, which adds a parser whose ``func`` returns an exit status.

Exit status: 0 ok, 1 a report or run failed, 2 bad input (file, spec, parameters).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from .errors import FunnelError

__all__ = ["main", "build_parser"]

#: Subcommand modules, in the order ``funnel --help`` lists them.
COMMANDS = ("ingest", "status", "demo_data", "fit", "report", "dashboard", "backtest")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``funnel`` argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="funnel",
        description="Forecast and simulate sales and marketing funnels with Bayesian models.",
        epilog="Run 'funnel COMMAND --help' for the options of one command. "
        "Exit status: 0 ok, 1 run failed, 2 bad input.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name and exc.name.endswith(f"commands.{name}"):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``funnel`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except FunnelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
