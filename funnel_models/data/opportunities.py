"""One row per deal ("opportunities") -> canonical stage history, in DuckDB SQL.

A CRM opportunity export (Salesforce, HubSpot, Pipedrive, a spreadsheet) often holds one
row per deal: an id, a date column per milestone (created, engaged, proposal, ...), a
status (Won / Lost / Open) with a close date, an amount and attributes. The spec says
which column is which (see :mod:`funnel_models.data.spec`); this module turns each row
into the deal's stage history:

* every milestone date that is filled in gives a row ``(deal, stage, date)``;
* a won or lost status gives ``(deal, first won/lost code, close date)``; a date column
  on a won/lost code gives that code at that date;
* the deal's attributes and amount are repeated on its rows.

Problems are reported like the other readers' (file, column, rows, fix): a deal id that
appears twice, dates that do not parse, a won/lost deal without a close date, a status
value the spec does not list, a row with no date at all, a deal with more than one
outcome date.
"""
from __future__ import annotations

import datetime as _dt
import warnings

from ..errors import FunnelDataError, FunnelWarning
from .checks import ReadContext, check, check_timestamps, raise_problems, timestamp_sql
from .columns import find_column
from .messages import MAX_SHOWN, did_you_mean, listing, plural
from .sql import quote_ident, quote_literal

__all__ = ["layout_columns", "opportunity_select", "check_opportunities", "opportunity_history"]


def layout_columns(ctx: ReadContext) -> dict[str, str]:
    """Find the spec's milestone, status and close-date columns in the source.

    Returns
    -------
    dict
        Layout key -> user column: ``m:<code>`` for milestone dates, ``status``, ``closed_at``.

    Raises
    ------
    FunnelDataError
        Listing every layout column the source lacks, with the closest names.
    """
    spec = ctx.spec
    wanted = {f"m:{code}": col for code, col in spec.milestones.items()}
    if spec.status is not None:
        wanted["status"] = spec.status.column
    if spec.closed_at:
        wanted["closed_at"] = spec.closed_at
    found, missing = {}, []
    for key, col in wanted.items():
        hit = find_column(ctx.inp.columns, col)
        if hit is None:
            where = {"status": "status.column", "closed_at": "closed_at"}.get(key, f"date_column of {key[2:]}")
            missing.append(f"{col!r} ({where}){did_you_mean(col, ctx.inp.columns)}")
        else:
            found[key] = hit
    if missing:
        raise FunnelDataError(f"{ctx.inp.label}: the spec names column(s) the file does not have: "
                              f"{'; '.join(missing)}. Available columns: {ctx.inp.columns}. Fix: "
                              "correct those column names in the spec.")
    return found


def opportunity_select(ctx: ReadContext, layout: dict[str, str]) -> list[str]:
    """The select items of table ``t``: raw and parsed milestone dates (``d<i>_raw``,
    ``d<i>``), ``status_raw``, and ``closed_raw`` / ``closed`` (the close date of won and
    lost deals only)."""
    tz = ctx.spec.timezone
    out = []
    for i, code in enumerate(ctx.spec.milestones):
        col = layout[f"m:{code}"]
        ctx.cols[col] = col
        out += [f"{ctx.raw(col)} AS d{i}_raw", f"{timestamp_sql(ctx.raw(col), tz)} AS d{i}"]
    if "status" in layout:
        ctx.cols[layout["status"]] = layout["status"]
        out.append(f"{ctx.raw(layout['status'])} AS status_raw")
    if "closed_at" in layout and ctx.spec.status is not None:
        col = layout["closed_at"]
        ctx.cols[col] = col
        # only won and lost deals close; an open deal's (expected) close date is ignored
        closing = _values(ctx.spec.status.won + ctx.spec.status.lost)
        raw = f"CASE WHEN {ctx.raw(layout['status'])} IN ({closing}) THEN {ctx.raw(col)} END"
        out += [f"{raw} AS closed_raw", f"{timestamp_sql(raw, tz)} AS closed"]
    return out


def _values(values: tuple[str, ...]) -> str:
    return ", ".join(quote_literal(v) for v in values) or "NULL"


def _check_duplicate_deals(ctx: ReadContext) -> None:
    dup = ctx.con.execute(
        "SELECT lead_id, list(_row ORDER BY _row) FROM t WHERE lead_id IS NOT NULL GROUP BY lead_id "
        "HAVING count(*) > 1 ORDER BY min(_row)").fetchall()
    if dup:
        shown = listing([f"{lid!r} at rows {rows[:MAX_SHOWN]}" for lid, rows in dup])
        ctx.problems.append(
            f"{ctx.desc('lead_id')}: {plural(len(dup), 'deal id appears', 'deal ids appear')} more than "
            f"once -- {shown} ({ctx.inp.row_note}). A one-row-per-deal export holds each deal "
            "once. Fix: keep one row per deal (the latest), or read a stage-change export as stage "
            "history instead.")


def _check_status(ctx: ReadContext, layout: dict[str, str], today: _dt.date) -> None:
    st = ctx.spec.status
    if st is None:
        return
    col = layout["status"]
    closing = st.won + st.lost
    check(ctx, col, "status_raw IS NULL", ("row has no status", "rows have no status"),
          f"fill in the status ({', '.join(closing)} or an open value)")
    if st.open is not None:
        check(ctx, col, f"status_raw NOT IN ({_values(closing + st.open)})",
              ("status value is not listed in the spec", "status values are not listed in the spec"),
              f"add the value to status.won, status.lost or status.open in the spec (listed: won "
              f"{list(st.won)}, lost {list(st.lost)}, open {list(st.open)}), or correct the data",
              show="status_raw")
    else:
        others = ctx.con.execute(f"SELECT DISTINCT status_raw FROM t WHERE status_raw NOT IN "
                                 f"({_values(closing)}) ORDER BY 1 LIMIT 21").fetchall()
        if others:
            vals = [r[0] for r in others[:20]]
            warnings.warn(f"{ctx.inp.label}: status values taken to mean 'open': {vals}"
                          f"{' ...' if len(others) > 20 else ''}. Fix: list them under status.open in the "
                          "spec (then any other value is an error), or add them to status.won/lost.",
                          FunnelWarning, stacklevel=5)
    closed = layout["closed_at"]
    check(ctx, closed, f"status_raw IN ({_values(closing)}) AND closed_raw IS NULL",
          ("won/lost deal has no close date", "won/lost deals have no close date"),
          f"fill in {closed!r} for every won or lost deal", show="status_raw")
    check_timestamps(ctx, closed, "closed_raw", "closed", today, required=False)


def check_opportunities(ctx: ReadContext, layout: dict[str, str], today: _dt.date) -> None:
    """Every check of a one-row-per-deal table ``t``; raises one error listing the problems."""
    spec = ctx.spec
    _check_duplicate_deals(ctx)
    for i, code in enumerate(spec.milestones):
        check_timestamps(ctx, layout[f"m:{code}"], f"d{i}_raw", f"d{i}", today, required=False)
    _check_status(ctx, layout, today)
    n_dates = len(spec.milestones)
    any_date = " OR ".join([f"d{i}_raw IS NOT NULL" for i in range(n_dates)])
    check(ctx, "lead_id", f"NOT ({any_date})", ("row has no date in any milestone column",
                                                "rows have no date in any milestone column"),
          f"fill in at least the first milestone date ({', '.join(spec.milestones.values())}), or "
          "drop those deals", show="lead_id")
    outcome_idx = [i for i, code in enumerate(spec.milestones) if code in spec.outcome_dates]
    if len(outcome_idx) > 1:
        n_set = " + ".join(f"CAST(d{i}_raw IS NOT NULL AS INTEGER)" for i in outcome_idx)
        cols = [spec.outcome_dates[c] for c in spec.outcome_dates]
        check(ctx, "lead_id", f"({n_set}) > 1", ("deal has more than one outcome date",
                                                 "deals have more than one outcome date"),
              f"a deal closes once: keep one of {cols} per deal", show="lead_id")
    raise_problems(ctx)


def opportunity_history(ctx: ReadContext, extra: list[str]) -> str:
    """Create the temporary table ``ht`` (``_row, lead_id, stage, entered_at`` + ``extra``
    columns) holding the stage history of table ``t``; return its name."""
    spec = ctx.spec
    keep = ", ".join(["_row", "lead_id"])
    tail = "".join(f", {quote_ident(c)}" for c in extra)
    parts = [f"SELECT {keep}, {quote_literal(code)} AS stage, d{i} AS entered_at{tail} FROM t "
             f"WHERE d{i} IS NOT NULL" for i, code in enumerate(spec.milestones)]
    st = spec.status
    if st is not None:
        for values, codes in ((st.won, spec.won), (st.lost, spec.lost)):
            if values and codes:
                parts.append(f"SELECT {keep}, {quote_literal(codes[0])}, closed{tail} FROM t WHERE "
                             f"status_raw IN ({_values(values)})")
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE ht AS " + " UNION ALL ".join(parts))
    return "ht"
