"""Recognise an export's shape and guess its funnel spec (the engine of ``funnel init``).

:func:`guess_spec` profiles the columns (:mod:`funnel_models.data.profile`), decides the
shape, the column roles (lead id, stage or status, dates, amount, attributes) and the
stage order (from the dates), and returns a :class:`Guess`: the spec as a dict, suggested
factors, and every assumption in words with how to change it, so nothing is guessed
silently.

Rules, in this order:

* an id that is unique per row and two or more milestone date columns (or no stage
  column) -> **opportunities** (one row per deal);
* a whole-number count column, a stage column and a month column, and no id -> **counts**;
* an id, a stage and a month column (``YYYY-MM`` or month-boundary dates), one row per
  id and month -> **snapshots**;
* an id, a stage and a date column -> **history**.

Stage order comes from the dates: for every pair of codes (or milestone columns), how
many leads reached one before the other, ranked by the share of such duels won (a
Copeland ranking). Codes named like a win (``won``, ``closed won``, ``signed``) become won
codes, codes named like a loss (``lost``, ``disqualified``, ``rejected``) lost codes.
Counts have no dates: their stages are ordered by volume, largest first.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import duckdb

from ..errors import FunnelDataError
from .checks import timestamp_sql
from .profile import (CLOSE_WORDS, COUNT_WORDS, ID_WORDS, LOST_WORDS, SKIP_DATE_WORDS, STAGE_WORDS,
                      VALUE_WORDS, WON_WORDS, ColumnProfile, Profile, profile_columns, value_sql)
from .sources import OpenedSource, opened
from .spec import ENTRY, LOST, WON

__all__ = ["Guess", "guess_spec", "code_from_column"]


@dataclass
class Guess:
    """The guessed shape and spec, and what was assumed.

    Attributes
    ----------
    shape : str
        ``history``, ``snapshots``, ``counts`` or ``opportunities``.
    spec : dict
        The spec, as :meth:`~funnel_models.data.spec.FunnelSpec.from_dict` takes it.
    factors : list of str
        Suggested segment factors (attributes with 2 to 12 values).
    assumptions : list of str
        Every guess, in words, with how to change it.
    profile : Profile
        The column profiles the guess was made from.
    """

    shape: str
    spec: dict[str, Any]
    factors: list[str]
    assumptions: list[str]
    profile: Profile


@dataclass
class _Ctx:
    con: duckdb.DuckDBPyConnection
    inp: OpenedSource
    prof: Profile
    assumptions: list[str]

    def v(self, col: str) -> str:
        return value_sql(self.inp, col)

    def ts(self, col: str) -> str:
        return timestamp_sql(self.v(col), "UTC")


def _pick(cols: Sequence[ColumnProfile], score: Callable[[ColumnProfile], float]) -> ColumnProfile | None:
    scored = [(score(c), -i, c) for i, c in enumerate(cols)]
    best = max((s for s in scored if s[0] > 0), key=lambda s: (s[0], s[1]), default=None)
    return best[2] if best else None


_STRONG_ID = re.compile(r"(^|[^a-z])(id|key)([^a-z]|$)|[a-z](Id|ID)$", re.I)


def _id_score(c: ColumnProfile, rows: int) -> float:
    if c.is_date or c.filled < 0.95 * rows or c.distinct < 2 or c.distinct <= 60 and c.top and \
            not ID_WORDS.search(c.name):
        return 0.0
    named = (2.0 if ID_WORDS.search(c.name) else 0.0) + (1.5 if _STRONG_ID.search(c.name) else 0.0)
    return named - (1.0 if re.search(r"name|title", c.name, re.I) else 0.0) + c.distinct / rows \
        + (0.5 if not c.is_number else 0.0)


def _stage_score(c: ColumnProfile) -> float:
    if not c.top or c.is_date or c.is_number or len(c.top) < 2:
        return 0.0
    closing = sum(1 for v in c.values if WON_WORDS.search(v) or LOST_WORDS.search(v))
    return (2.0 if STAGE_WORDS.search(c.name) else 0.0) + min(closing, 2) + 1.0 / len(c.top)


def _count_score(c: ColumnProfile) -> float:
    if not c.is_number or c.is_date or c.integers != c.filled:
        return 0.0
    return 2.0 if COUNT_WORDS.search(c.name) else 0.5


def _value_col(ctx: _Ctx, used: set[str]) -> str | None:
    col = _pick([c for c in ctx.prof.columns if c.name not in used],
                lambda c: 1.0 if c.is_number and VALUE_WORDS.search(c.name) else 0.0)
    if col is not None:
        ctx.assumptions.append(f"deal value: column {col.name!r} -- change or remove 'value' in the spec")
    return col.name if col else None


def _classify(codes: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """Split codes into (open, won, lost) by their names."""
    won = [c for c in codes if WON_WORDS.search(c) and not LOST_WORDS.search(c)]
    lost = [c for c in codes if LOST_WORDS.search(c) and c not in won]
    return [c for c in codes if c not in won and c not in lost], won, lost


def _copeland(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Order the items of ``table(u, s, t)`` by which comes first (min ``t``) within each ``u``."""
    duels = con.execute(
        f"WITH f AS (SELECT u, s, min(t) AS t FROM {table} WHERE t IS NOT NULL AND s IS NOT NULL GROUP BY 1, 2) "
        "SELECT a.s, b.s, count(*) FILTER (WHERE a.t < b.t), count(*) FILTER (WHERE a.t > b.t) "
        "FROM f a JOIN f b ON a.u = b.u AND a.s <> b.s GROUP BY 1, 2").fetchall()
    median = dict(con.execute(f"SELECT s, median(epoch(t)) FROM {table} WHERE t IS NOT NULL AND s IS NOT NULL "
                              "GROUP BY 1").fetchall())
    score = {s: 0.0 for s in median}
    for a, _, before, after in duels:
        if before + after:
            score[a] += (before - after) / (before + after)
    return sorted(score, key=lambda s: (-score[s], median[s], s))


def _closing_codes(ctx: _Ctx, order: list[str]) -> tuple[list[str], list[str], list[str]]:
    open_, won, lost = _classify(order)
    if not open_:
        raise FunnelDataError(f"{ctx.prof.label}: every code looks like an outcome ({order}); a funnel "
                              "needs at least one open stage. Fix: write the spec by hand (README, "
                              "'Input formats').")
    if not won:
        won = [open_.pop()] if len(open_) > 1 else []
        ctx.assumptions.append(
            f"no code is named like a win; assumed {won[0]!r}, the last in the order, means won -- CHECK "
            "'won' in the spec" if won else "no code is named like a win, so no win will be counted -- "
            "add your won code to 'won' in the spec")
    ctx.assumptions.append(f"stage order {' > '.join(open_)} (from the dates) -- CHECK 'stages' in the spec")
    ctx.assumptions.append(f"won: {won or [WON]}; lost: {lost or [LOST]} (from the names) -- CHECK 'won' and 'lost'")
    if not lost:
        ctx.assumptions.append("no code is named like a loss: if your CRM never records losses, uncomment "
                               "stale_after in the spec so leads unchanged for that many months count as lost")
    return open_, won or [WON], lost or [LOST]


def _attributes(ctx: _Ctx, used: set[str]) -> tuple[list[str], list[str]]:
    attrs, ignored = [], []
    for c in ctx.prof.columns:
        if c.name in used:
            continue
        if c.top and 2 <= len(c.top) <= 50 and not c.is_date and not c.is_number and \
                c.filled >= 0.95 * ctx.prof.rows:
            attrs.append(c.name)
        else:
            why = ("dates" if c.is_date else "numbers" if c.is_number else "empty" if not c.filled else
                   "one value" if c.distinct < 2 else f"{c.distinct:,} distinct values" if c.distinct > 50
                   else f"blank in {1 - c.filled / ctx.prof.rows:.0%} of rows")
            ignored.append(f"{c.name!r} ({why})")
    factors = sorted((a for a in attrs if len(ctx.prof.get(a).top) <= 12),
                     key=lambda a: len(ctx.prof.get(a).top))[:2]
    if attrs:
        levels = ", ".join(f"{a} ({len(ctx.prof.get(a).top)} values)" for a in attrs)
        ctx.assumptions.append(f"attributes: {levels}; factors: {factors or 'none'} -- edit 'attributes' in "
                               "the spec and 'factors' in the parameters")
    if ignored:
        ctx.assumptions.append(f"not used: {', '.join(ignored)} -- list a column under 'attributes' to keep it")
    return attrs, factors


def _columns(mapping: dict[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in mapping.items() if v is not None and v != k}


def _finish(ctx: _Ctx, shape: str, spec: dict[str, Any], used: set[str], value: bool = True) -> Guess:
    if value:
        val = _value_col(ctx, used)
        if val is not None:
            spec["value"] = val
            used.add(val)
    attrs, factors = _attributes(ctx, used)
    if attrs:
        spec["attributes"] = attrs
    spec["timezone"] = "UTC"
    return Guess(shape, spec, factors, ctx.assumptions, ctx.prof)


def _lead_level(ctx: _Ctx, shape: str, id_col: ColumnProfile, stage_col: ColumnProfile, time_col: str,
                time_sql: str, used: set[str]) -> Guess:
    """History or snapshots: stage order from the times in ``time_sql`` (per lead)."""
    ctx.con.execute(f"CREATE OR REPLACE TEMP TABLE g AS SELECT {ctx.v(id_col.name)} AS u, "
                    f"{ctx.v(stage_col.name)} AS s, {time_sql} AS t FROM sample")
    open_, won, lost = _closing_codes(ctx, _copeland(ctx.con, "g"))
    role = "date" if shape == "history" else "month"
    ctx.assumptions.insert(0, f"lead id: column {id_col.name!r}; stage: column {stage_col.name!r} "
                              f"({len(stage_col.top)} codes); {role}: column {time_col!r}")
    canon = "entered_at" if shape == "history" else "month"
    spec = {"stages": [{"code": c, "name": c} for c in open_], "won": won, "lost": lost,
            "columns": _columns({"lead_id": id_col.name, "stage": stage_col.name, canon: time_col})}
    return _finish(ctx, shape, spec, {id_col.name, stage_col.name, time_col} | used)


def _history(ctx: _Ctx, id_col: ColumnProfile, stage_col: ColumnProfile, dates: list[ColumnProfile]) -> Guess:
    date = max(dates, key=lambda c: (not SKIP_DATE_WORDS.search(c.name), c.filled))
    return _lead_level(ctx, "history", id_col, stage_col, date.name, ctx.ts(date.name), {d.name for d in dates})


def _snapshots(ctx: _Ctx, id_col: ColumnProfile, stage_col: ColumnProfile, month: ColumnProfile) -> Guess:
    first = (f"coalesce(try_cast({ctx.v(month.name)} || '-01' AS TIMESTAMP), "
             f"date_trunc('month', {ctx.ts(month.name)}))")
    return _lead_level(ctx, "snapshots", id_col, stage_col, month.name, first, set())


def _counts(ctx: _Ctx, stage_col: ColumnProfile, count_col: ColumnProfile, month: ColumnProfile) -> Guess:
    totals = dict(ctx.con.execute(f"SELECT {ctx.v(stage_col.name)}, sum(try_cast({ctx.v(count_col.name)} AS DOUBLE)) "
                                  "FROM sample GROUP BY 1").fetchall())
    order = sorted((s for s in totals if s is not None), key=lambda s: (-(totals[s] or 0), s))
    ctx.assumptions.insert(0, f"aggregate counts: month {month.name!r}, stage {stage_col.name!r}, count "
                              f"{count_col.name!r}; with no dates per lead, stages are ordered by volume "
                              "(largest first) -- CHECK 'stages'. Lead-level data identifies rates far better")
    open_, won, lost = _closing_codes(ctx, order)
    spec = {"stages": [{"code": c, "name": c} for c in open_], "won": won, "lost": lost,
            "columns": _columns({"stage": stage_col.name, "count": count_col.name, "month": month.name})}
    return _finish(ctx, "counts", spec, {stage_col.name, count_col.name, month.name}, value=False)


def code_from_column(name: str) -> str:
    """A stage code from a milestone column name: ``"Date entered 'Qualified To Buy'"`` ->
    ``"QUALIFIED_TO_BUY"``, ``"proposal_sent_at"`` -> ``"PROPOSAL_SENT"``.

    Examples
    --------
    >>> code_from_column("Date entered 'Qualified To Buy' (Sales Pipeline)")
    'QUALIFIED_TO_BUY'
    >>> code_from_column("first_contact_date")
    'FIRST_CONTACT'
    """
    s = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", re.sub(r"\(.*?\)", " ", name))
    s = re.sub(r"(?i)\b(date|time|timestamp|dt|day)\b[ _]*(entered|of)?|_(at|on|date|dt|time)$", " ", s)
    s = re.sub(r"(?i)^(entered|became)\b|\b(at|on)$", " ", s.strip(" _"))
    code = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").upper()
    return code or re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "STAGE"


def _milestone_order(ctx: _Ctx, id_col: ColumnProfile, cols: list[str]) -> list[str]:
    parts = [f"SELECT {ctx.v(id_col.name)} AS u, {i} AS s, {ctx.ts(c)} AS t FROM sample" for i, c in enumerate(cols)]
    ctx.con.execute("CREATE OR REPLACE TEMP TABLE g AS " + " UNION ALL ".join(parts))
    return [cols[i] for i in _copeland(ctx.con, "g")]


def _milestones(cols: list[str]) -> list[dict[str, str]]:
    stages, seen = [], {WON, LOST, ENTRY}
    for i, col in enumerate(cols):
        code = code_from_column(col)
        while code in seen:
            code = f"{code}_{i + 1}"
        seen.add(code)
        stages.append({"code": code, "name": code.replace("_", " ").capitalize(), "date_column": col})
    return stages


def _outcome(ctx: _Ctx, spec: dict[str, Any], status: ColumnProfile | None, won_dates: list[str],
             lost_dates: list[str], closes: list[str]) -> set[str]:
    """Decide how the outcome is recorded; fill spec's won/lost/status/closed_at; return used columns."""
    values = status.values if status is not None else []
    _, won_v, lost_v = _classify(values)
    if status is not None and closes and (won_v or lost_v):
        open_v = [v for v in values if v not in won_v and v not in lost_v]
        spec.update(won=[WON], lost=[LOST], closed_at=closes[0],
                    status={"column": status.name, "won": won_v, "lost": lost_v, "open": open_v})
        ctx.assumptions.append(f"outcome: column {status.name!r} (won {won_v}, lost {lost_v}, open {open_v}) "
                               f"closing at {closes[0]!r} -- CHECK 'status' and 'closed_at' in the spec")
        return {status.name, closes[0]}
    spec["won"] = [{"code": WON, "date_column": won_dates[0]}] if won_dates else [WON]
    spec["lost"] = [{"code": LOST, "date_column": lost_dates[0]}] if lost_dates else [LOST]
    used = set(won_dates[:1] + lost_dates[:1])
    said = [f"won at {won_dates[0]!r}"] if won_dates else []
    said += [f"lost at {lost_dates[0]!r}"] if lost_dates else []
    ctx.assumptions.append(f"outcome: {', '.join(said) or 'no outcome column found: no deal will close'}"
                           " (from the column names) -- CHECK 'won' and 'lost' in the spec")
    if closes:
        ctx.assumptions.append(f"not used: {closes[0]!r}, a close date without a status column saying won or "
                               "lost -- add status: {column: ..., won: [...], lost: [...]} and closed_at to use it")
    if not lost_dates:
        ctx.assumptions.append("no loss is recorded: if deals are never marked lost, uncomment stale_after in "
                               "the spec so deals unchanged for that many months count as lost")
    return used


def _opportunities(ctx: _Ctx, id_col: ColumnProfile, stage_col: ColumnProfile | None,
                   dates: list[ColumnProfile]) -> Guess:
    names = [d.name for d in dates if not SKIP_DATE_WORDS.search(d.name)]
    skipped = [d.name for d in dates if d.name not in names]
    won_dates = [n for n in names if WON_WORDS.search(n) and not LOST_WORDS.search(n)]
    lost_dates = [n for n in names if LOST_WORDS.search(n) and n not in won_dates]
    closes = [n for n in names if CLOSE_WORDS.search(n) and n not in won_dates + lost_dates]
    milestones = [n for n in names if n not in won_dates + lost_dates + closes]
    if not milestones:
        raise FunnelDataError(f"{ctx.prof.label}: one row per deal, but no milestone date column (only "
                              f"{names or 'no dates'}). Fix: export the date each deal entered each stage "
                              "(e.g. created_at), or write the spec by hand (README, 'Input formats').")
    order = _milestone_order(ctx, id_col, milestones)
    spec: dict[str, Any] = {"stages": _milestones(order), "columns": _columns({"lead_id": id_col.name})}
    ctx.assumptions.insert(0, f"one row per deal: id {id_col.name!r}; milestones in the order of their "
                              f"dates: {' > '.join(order)} -- CHECK 'stages' (code, name, date_column)")
    used = _outcome(ctx, spec, stage_col, won_dates, lost_dates, closes)
    if skipped:
        ctx.assumptions.append(f"not used as milestones: {skipped} (bookkeeping dates)")
    spec = {k: spec[k] for k in ("stages", "won", "lost", "status", "closed_at", "columns") if k in spec}
    return _finish(ctx, "opportunities", spec, {id_col.name, *names, *skipped} | used)


def _is_snapshot(ctx: _Ctx, id_col: ColumnProfile, month: ColumnProfile) -> bool:
    """One row per id and month."""
    return bool(ctx.con.execute(f"SELECT count(*) = count(DISTINCT ({ctx.v(id_col.name)}, {ctx.v(month.name)})) "
                                "FROM sample").fetchall()[0][0])


def _notes(ctx: _Ctx) -> None:
    for c in ctx.prof.columns:
        if c.us_dates and c.share(c.us_dates) > 0.5:
            ctx.assumptions.append(f"column {c.name!r} holds dates written like {c.top[0][0] if c.top else 'M/D/Y'!r}"
                                   ", not ISO 8601, so it is not used as a date. Fix: export dates as YYYY-MM-DD")
        if c.offsets:
            ctx.assumptions.append(f"column {c.name!r} has {c.offsets:,} time stamps with a UTC offset; they are "
                                   "converted to the spec's timezone (UTC) -- set 'timezone' to your zone")


def _dispatch(ctx: _Ctx) -> Guess:
    prof = ctx.prof
    id_col = _pick(prof.columns, lambda c: _id_score(c, prof.rows))
    stage_col = _pick(prof.columns, _stage_score)
    dates = [c for c in prof.columns if c.is_date and c is not id_col]
    months = [c for c in dates if c.is_month]
    count_col = _pick(prof.columns, _count_score)
    milestone_dates = [d for d in dates if not SKIP_DATE_WORDS.search(d.name)]
    if id_col is not None and id_col.distinct == prof.rows and (len(milestone_dates) >= 2 or stage_col is None) \
            and milestone_dates:
        return _opportunities(ctx, id_col, stage_col, dates)
    if stage_col is not None and count_col is not None and months and (id_col is None or id_col is count_col):
        return _counts(ctx, stage_col, count_col, months[0])
    if id_col is not None and stage_col is not None and months and _is_snapshot(ctx, id_col, months[0]):
        return _snapshots(ctx, id_col, stage_col, months[0])
    if id_col is not None and stage_col is not None and dates:
        return _history(ctx, id_col, stage_col, dates)
    found = (f"lead id: {id_col.name if id_col else 'none'}; stage or status: "
             f"{stage_col.name if stage_col else 'none'}; ISO date columns: {[d.name for d in dates] or 'none'}; "
             f"count column: {count_col.name if count_col else 'none'}")
    raise FunnelDataError(
        f"{prof.label}: cannot recognise the shape of this export ({found}). funnel init understands "
        "stage history (lead id, stage, date), monthly snapshots (month, lead id, stage), counts "
        "(month, stage, count) and one row per deal (deal id, a date per milestone, status). Fix: "
        "export one of those shapes with ISO 8601 dates (YYYY-MM-DD), or write the spec by hand "
        "(README, 'Input formats').")


def guess_spec(source: Any, delimiter: str | None = None, encoding: str | None = None) -> Guess:
    """Recognise the shape of ``source`` and guess its spec.

    Parameters
    ----------
    source : path, ``"file.duckdb::table"`` or DataFrame
    delimiter, encoding : str, optional
        As for the readers.

    Returns
    -------
    Guess

    Raises
    ------
    FunnelDataError
        If the source cannot be read, or no shape fits (naming what was found and the fix).

    Examples
    --------
    >>> import pandas as pd
    >>> raw = pd.DataFrame({"deal_id": ["a", "a", "b", "b", "c"],
    ...                     "stage": ["New", "Closed Won", "New", "Closed Lost", "New"],
    ...                     "changed_at": ["2024-01-02", "2024-02-03", "2024-01-05", "2024-01-20",
    ...                                    "2024-02-01"]})
    >>> g = guess_spec(raw)
    >>> g.shape, g.spec["stages"], g.spec["won"], g.spec["lost"]
    ('history', [{'code': 'New', 'name': 'New'}], ['Closed Won'], ['Closed Lost'])
    """
    with opened(source, delimiter, encoding) as (con, inp):
        ctx = _Ctx(con, inp, profile_columns(con, inp), [])
        _notes(ctx)
        return _dispatch(ctx)
