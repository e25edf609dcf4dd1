"""``funnel status``: show which months, leads and stages the store holds."""
from __future__ import annotations

import argparse
from typing import Any

from ..data.store import Store
from ..errors import FunnelDataError
from . import Command, add_store_option, add_wait_option

__all__ = ["COMMAND", "handler", "add_arguments", "format_status"]

_EXAMPLE = """\
examples:
  funnel status
  funnel status --store data/funnel.duckdb
  funnel status --wait 30          # wait up to 30 s if another process has the store open

Stages are listed in funnel order (the spec recorded at ingest).
Exit status: 0 ok; 2 no store / not a store; 3 the store is busy (another process has it open).
"""


def _months(months: list[str]) -> str:
    if not months:
        return "-"
    if len(months) <= 6:
        return ", ".join(months)
    return f"{months[0]} .. {months[-1]} ({len(months)} months)"


def format_status(status: dict[str, Any]) -> str:
    """Render :meth:`funnel_models.data.store.Store.status` as text.

    Parameters
    ----------
    status : dict
        The output of ``Store.status()``.

    Returns
    -------
    str
    """
    lines = [f"store {status['path']}: {status['ingests']} ingest(s)"]
    spec = status.get("spec")
    if spec:
        codes = [s["code"] for s in spec["stages"]]
        lines.append(f"funnel: {' > '.join(codes)}; won {spec['won']}; lost {spec['lost']}"
                     + (f"; stale after {spec['stale_after']} months" if spec.get("stale_after") else ""))
    if not status["tables"]:
        lines.append("  (empty)")
    for shape, t in status["tables"].items():
        lines.append(f"{shape}: {t['rows']:,} rows"
                     + (f", {t['leads']:,} leads" if t.get("leads") is not None else ""))
        lines.append(f"  months: {_months(t['months'])}")
        lines.append("  stages: " + ", ".join(f"{k} {v:,}" for k, v in t["stages"].items()))
        if t["attributes"]:
            lines.append(f"  attributes: {', '.join(t['attributes'])}")
    return "\n".join(lines)


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel status``; returns the exit status."""
    store = Store(args.store, wait=args.wait)
    status = store.status()
    if not status["exists"]:
        raise FunnelDataError(f"no store at {args.store}. Fix: run 'funnel ingest FILE --spec "
                              f"SPEC.yaml --store {args.store}' first, or pass --store PATH.")
    print(format_status(status))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``status`` arguments to its parser."""
    add_store_option(p)
    add_wait_option(p)


COMMAND = Command(
    "status", help="show the months, leads and stages stored",
    description="Print, per stored table (history, snapshots, counts), the rows, leads, "
    "months, stages and attributes in the store.",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler)
