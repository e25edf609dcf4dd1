"""``funnel ingest``: read a CSV/Parquet/DuckDB table and store it in the funnel store."""
from __future__ import annotations

import argparse
import warnings

from ..data.readers import INPUT_SHAPES, read_any
from ..data.spec import FunnelSpec
from ..data.store import Store
from ..errors import FunnelDataError, FunnelWarning
from . import Command, add_csv_options, add_store_option, add_wait_option

__all__ = ["COMMAND", "handler", "add_arguments", "parse_map"]

_EXAMPLE = """\
examples:
  funnel ingest crm_history.csv --spec funnel.yaml
  funnel ingest export.csv --spec funnel.yaml --map lead_id=opportunity,stage=deal_stage
  funnel ingest march.csv --spec funnel.yaml --shape snapshots --month 2024-03
  funnel ingest leads.csv --spec funnel.yaml --delimiter ';' --encoding latin-1
  funnel ingest warehouse.duckdb::stage_history --spec funnel.yaml --store data/funnel.duckdb
  funnel ingest deals.csv --spec deals.spec.yaml --wait 60     # one row per deal; wait for a busy store

Re-ingesting replaces instead of duplicating: snapshots and counts replace their months;
a history (or one-row-per-deal export) replaces the leads in the file (with --month: the
rows entered in that month). The whole ingest is one transaction. The store records the
spec at the first ingest and refuses a different funnel later.
Exit status: 0 ok; 2 bad input (the store is then unchanged); 3 the store is busy
(another process has it open; retry, or pass --wait SECONDS).
"""


def parse_map(items: list[str] | None) -> dict[str, str]:
    """Parse ``--map`` values like ``lead_id=opportunity,stage=deal_stage``.

    Parameters
    ----------
    items : list of str or None
        The ``--map`` arguments (the option may be repeated).

    Returns
    -------
    dict
        Canonical name -> your column name.

    Raises
    ------
    FunnelDataError
        If an item is not ``canonical=column``.
    """
    out: dict[str, str] = {}
    for item in items or []:
        for pair in item.split(","):
            if not pair.strip():
                continue
            key, sep, col = pair.partition("=")
            if not sep or not key.strip() or not col.strip():
                raise FunnelDataError(f"--map: {pair!r} is not canonical=column; write e.g. "
                                      "--map lead_id=opportunity,stage=deal_stage")
            out[key.strip()] = col.strip()
    return out


def handler(args: argparse.Namespace) -> int:
    """Run ``funnel ingest``; returns the exit status (FunnelError propagates to the CLI)."""
    spec = FunnelSpec.load(args.spec)
    mapping = parse_map(args.map)
    caught: list[warnings.WarningMessage] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FunnelWarning)
        shape, df = read_any(args.file, spec, shape=args.shape, mapping=mapping or None,
                             month=args.month, delimiter=args.delimiter, encoding=args.encoding)
    messages = [str(w.message) for w in caught if issubclass(w.category, FunnelWarning)]
    for w in caught:
        if not issubclass(w.category, FunnelWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    report = Store(args.store, wait=args.wait).ingest(df, shape, month=args.month, source=str(args.file),
                                                      spec=spec)
    report.warnings = messages
    print(report.summary())
    print(f"  store: {args.store}")
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the ``ingest`` arguments to its parser."""
    p.add_argument("file", metavar="FILE", help="CSV/Parquet file or DB.duckdb::TABLE")
    p.add_argument("--spec", required=True, metavar="SPEC.yaml", help="funnel spec (YAML)")
    add_store_option(p)
    p.add_argument("--month", metavar="YYYY-MM",
                   help="month of a snapshots/counts file without a month column; for a history, "
                   "replace only the rows entered in this month")
    p.add_argument("--shape", choices=INPUT_SHAPES, help="input shape (default: detected)")
    p.add_argument("--map", action="append", metavar="CANONICAL=COLUMN[,...]",
                   help="column mapping, e.g. lead_id=opportunity,stage=deal_stage (overrides the spec)")
    add_csv_options(p)
    add_wait_option(p)


COMMAND = Command(
    "ingest", help="read a stage history, snapshots, counts or one-row-per-deal file into the store",
    description="Validate FILE against the funnel spec and store it in a DuckDB file. "
    "FILE is a CSV or Parquet file, or DB.duckdb::TABLE. The shape (history: lead_id, stage, "
    "entered_at; snapshots: month, lead_id, stage; counts: month, stage, count; opportunities: "
    "one row per deal, when the spec gives the stages date columns) is detected from the spec "
    "and the columns after the mapping unless --shape is given. 'funnel init FILE' writes a spec.",
    epilog=_EXAMPLE, add_arguments=add_arguments, run=handler)
