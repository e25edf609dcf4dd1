"""The ``funnel`` command line.

Each subcommand lives in its own module under :mod:`funnel_models.commands` and declares
itself as a :class:`~funnel_models.commands.Command` named ``COMMAND`` (name, help texts,
arguments, the function it runs); :func:`build_parser` adds one parser per command, whose
``func`` returns an exit status.

Exit status (each means one thing):

- 0 ok;
- 1 a report or run failed;
- 2 bad input (file, spec, parameters, arguments); nothing was written;
- 3 busy or temporary: the store is in use by another process (retry, or ``--wait SECONDS``).

Output to a closed pipe (``funnel status | head -2``) is dropped quietly: the command
finishes and its exit status stands.
"""
from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from typing import Any, Sequence, TextIO

from .errors import FunnelError, StoreBusyError

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_BUSY"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUSY = 0, 1, 2, 3

#: Subcommand modules, in the order ``funnel --help`` lists them.
COMMANDS = ("init", "ingest", "status", "demo_data", "fit", "report", "dashboard", "backtest")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``funnel`` argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="funnel",
        description="Forecast and simulate sales and marketing funnels with Bayesian models.",
        epilog="Run 'funnel COMMAND --help' for the options of one command. "
        "Exit status: 0 ok, 1 a run failed, 2 bad input (nothing was run or written), 3 busy or "
        "temporary: the data store is in use (retry, or --wait SECONDS).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:  # a command not built yet in this checkout
            if exc.name and exc.name.endswith(f"commands.{name}"):
                continue
            raise
        module.COMMAND.register(sub)
    return parser


class _PipeSafe(io.TextIOBase):
    """Wraps stdout: once the reader has closed the pipe, further output is dropped."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.closed_pipe = False

    def _drop(self) -> None:
        self.closed_pipe = True
        try:  # point the descriptor at /dev/null so the interpreter's final flush is quiet too
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def write(self, text: str) -> int:  # noqa: D102
        if not self.closed_pipe:
            try:
                self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:  # noqa: D102
        if not self.closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``funnel`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_OK
    stdout = sys.stdout
    sys.stdout = _PipeSafe(stdout)  # type: ignore[assignment]
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except StoreBusyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except FunnelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
