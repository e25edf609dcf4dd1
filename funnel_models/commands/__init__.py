"""Subcommands of the ``funnel`` CLI, one module each (see :mod:`funnel_models.cli`).

Each module declares its subcommand as a :class:`Command` named ``COMMAND``: the name and
help texts, a function adding its own arguments, and the function it runs. The options
several commands share are written once here (``--wait``, ``--store``, the CSV options,
the parameter file, ``--quick``).
"""
from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Command", "with_library_warnings_silenced", "add_wait_option", "add_store_option", "add_csv_options",
           "add_parameter_file_argument", "add_quick_option", "quick_overrides"]


def with_library_warnings_silenced(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call ``run(args)`` with the warnings of the libraries underneath silenced; data
    warnings (:class:`~funnel_models.errors.FunnelWarning`) still reach the terminal as notes."""
    from ..errors import FunnelWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("default", FunnelWarning)
        return run(args)


@dataclass(frozen=True)
class Command:
    """One ``funnel`` subcommand.

    Attributes
    ----------
    name : str
        The word after ``funnel``.
    help : str
        One line in ``funnel --help``.
    description, epilog : str
        The text before and after the options in ``funnel NAME --help``.
    add_arguments : callable
        Adds the command's arguments to its parser.
    run : callable
        ``run(args)`` runs the command and returns the exit status.
    silence_library_warnings : bool
        Run with the warnings of the libraries underneath silenced
        (:func:`with_library_warnings_silenced`).
    raw_text : bool
        ``description`` and ``epilog`` are printed as written (True) or re-wrapped.
    """

    name: str
    help: str
    description: str
    epilog: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    silence_library_warnings: bool = False
    raw_text: bool = True

    def __call__(self, args: argparse.Namespace) -> int:
        """Run the command on parsed arguments; returns the exit status."""
        if self.silence_library_warnings:
            return with_library_warnings_silenced(self.run, args)
        return self.run(args)

    def register(self, subparsers: Any) -> argparse.ArgumentParser:
        """Add this subcommand's parser to ``subparsers``; its ``func`` runs the command."""
        p = subparsers.add_parser(
            self.name, help=self.help, description=self.description, epilog=self.epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter if self.raw_text else argparse.HelpFormatter)
        self.add_arguments(p)
        p.set_defaults(func=self)
        return p


def add_wait_option(p: argparse.ArgumentParser) -> None:
    """Add ``--wait SECONDS`` (how long to wait for a store another process holds)."""
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a data store another process holds (default 0: exit 3 at once)")


def add_store_option(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """Add ``--store PATH`` (the DuckDB store file, default ``funnel.duckdb``)."""
    from ..data.store import DEFAULT_STORE
    p.add_argument("--store", default=DEFAULT_STORE, metavar="PATH",
                   help=help or f"store file (default ./{DEFAULT_STORE})")


def add_csv_options(p: argparse.ArgumentParser) -> None:
    """Add ``--delimiter`` and ``--encoding`` (how to read a CSV file)."""
    p.add_argument("--delimiter", metavar="CHAR", help="CSV delimiter (default ','; '\\t' for tab)")
    p.add_argument("--encoding", metavar="NAME", help="CSV text encoding (default utf-8), e.g. latin-1")


def add_parameter_file_argument(p: argparse.ArgumentParser,
                                help: str = "parameter file (default default.yaml)") -> None:
    """Add the optional positional ``PARAMS.yaml`` (as ``args.params``)."""
    p.add_argument("params", nargs="?", metavar="PARAMS.yaml", help=help)


def add_quick_option(p: argparse.ArgumentParser) -> None:
    """Add ``--quick`` (the exact conjugate model instead of MCMC; see :func:`quick_overrides`)."""
    p.add_argument("--quick", action="store_true", help="quick mode: model: conjugate (exact, no MCMC)")


def quick_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The parameter overrides ``--quick`` asks for (none without it)."""
    return {"model": "conjugate"} if args.quick else {}
