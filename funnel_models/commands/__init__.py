"""Subcommands of the ``funnel`` CLI, one module each (see :mod:`funnel_models.cli`)."""
from __future__ import annotations

import argparse
import warnings
from typing import Callable


def with_library_warnings_silenced(run: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Call ``run(args)`` with the warnings of the libraries underneath silenced; data
    warnings (:class:`~funnel_models.errors.FunnelWarning`) still reach the terminal as notes."""
    from ..errors import FunnelWarning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("default", FunnelWarning)
        return run(args)


def add_wait_option(p: argparse.ArgumentParser) -> None:
    """Add ``--wait SECONDS`` (how long to wait for a store another process holds)."""
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a data store another process holds (default 0: exit 3 at once)")
