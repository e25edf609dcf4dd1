"""Contracts of the canonical tables, as pandera schemas.

These are the internal contracts between modules (what a reader returns, what the store
writes and reads back, what ``derive`` produces). The friendly, row-level validation of
a user's file happens earlier, in SQL (:mod:`funnel_models.data.checks`); a contract
failing here means a bug or a hand-built frame, and :func:`validate` reports it as a
:class:`~funnel_models.errors.FunnelDataError` naming the table, the column and the
first failing values.

=================  ==============================================================
schema             columns
=================  ==============================================================
``HISTORY``        ``lead_id`` str, ``stage`` str, ``entered_at`` datetime64, optional
                   ``value`` float; unique (lead_id, stage, entered_at)
``SNAPSHOTS``      ``month`` (first of month), ``lead_id``, ``stage``, optional
                   ``value``; unique (lead_id, month)
``COUNTS``         ``month``, ``stage``, ``count`` int64 >= 0
``TRANSITIONS``    ``month``, ``from_stage``, ``to_stage``, ``age`` int64 >= 0 (months
                   already spent in ``from_stage``), ``n`` int64 >= 1
``PIPELINE``       ``lead_id`` (unique), ``stage``, ``entered_at`` (NaT when only
                   monthly snapshots were known), ``age_days`` float, ``age_months``
                   int64 >= 0
=================  ==============================================================

Attribute columns are strings (missing values allowed). The ``*_schema`` functions add
what a spec knows: the declared status codes and the attribute columns.

Examples
--------
>>> import pandas as pd
>>> h = pd.DataFrame({"lead_id": ["a"], "stage": ["NEW"],
...                   "entered_at": pd.to_datetime(["2024-01-03"])})
>>> validate(h, HISTORY, "history").shape
(1, 3)
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

from ..errors import FunnelDataError
from .dates import month_start
from .spec import ENTRY, FunnelSpec

__all__ = ["HISTORY", "SNAPSHOTS", "COUNTS", "TRANSITIONS", "PIPELINE", "SCHEMAS", "history_schema",
           "snapshots_schema", "counts_schema", "transitions_schema", "pipeline_schema",
           "schema_for", "validate", "canonical_dtypes", "coerce_table"]


def _unique(*keys: str) -> pa.Check:
    def ok(df: pd.DataFrame) -> bool:
        cols = [k for k in keys if k in df.columns]
        return not bool(df.duplicated(cols).any())
    return pa.Check(ok, element_wise=False, error=f"rows repeat the key {list(keys)}")


_FIRST_OF_MONTH = pa.Check(lambda s: (s.dt.day == 1) & (s.dt.normalize() == s), element_wise=False,
                           error="month values must be midnight on the first day of a month")
_NAIVE = pa.Check(lambda s: getattr(s.dt, "tz", None) is None, element_wise=False,
                  error="time stamps must be naive (converted to the spec's time zone)")


def _attrs(attributes: Sequence[str]) -> dict[str, pa.Column]:
    return {a: pa.Column(str, nullable=True) for a in attributes}


def _codes(spec: FunnelSpec | None, extra: Sequence[str] = ()) -> list[pa.Check]:
    return [pa.Check.isin(list(spec.all_codes) + list(extra))] if spec is not None else []


def history_schema(spec: FunnelSpec | None = None, attributes: Sequence[str] = ()) -> pa.DataFrameSchema:
    """Stage history; with a spec, ``stage`` must hold its declared codes."""
    return pa.DataFrameSchema({
        "lead_id": pa.Column(str),
        "stage": pa.Column(str, checks=_codes(spec)),
        "entered_at": pa.Column("datetime64[ns]", checks=_NAIVE),
        "value": pa.Column(float, nullable=True, required=False),
        **_attrs(attributes),
    }, checks=_unique("lead_id", "stage", "entered_at"), strict=False, name="stage history")


def snapshots_schema(spec: FunnelSpec | None = None, attributes: Sequence[str] = ()) -> pa.DataFrameSchema:
    """Monthly snapshots; with a spec, ``stage`` must hold its declared codes."""
    return pa.DataFrameSchema({
        "month": pa.Column("datetime64[ns]", checks=[_NAIVE, _FIRST_OF_MONTH]),
        "lead_id": pa.Column(str),
        "stage": pa.Column(str, checks=_codes(spec)),
        "value": pa.Column(float, nullable=True, required=False),
        **_attrs(attributes),
    }, checks=_unique("lead_id", "month"), strict=False, name="snapshots")


def counts_schema(spec: FunnelSpec | None = None, attributes: Sequence[str] = ()) -> pa.DataFrameSchema:
    """Aggregate stage counts per month (and attributes)."""
    return pa.DataFrameSchema({
        "month": pa.Column("datetime64[ns]", checks=[_NAIVE, _FIRST_OF_MONTH]),
        "stage": pa.Column(str, checks=_codes(spec)),
        "count": pa.Column("int64", checks=pa.Check.ge(0)),
        **_attrs(attributes),
    }, checks=_unique("month", "stage", *attributes), strict=False, name="counts")


def transitions_schema(spec: FunnelSpec | None = None, by: Sequence[str] = ()) -> pa.DataFrameSchema:
    """Monthly transition counts, with ``age`` (months already spent in ``from_stage``)."""
    states = list(spec.states) if spec is not None else None
    return pa.DataFrameSchema({
        "month": pa.Column("datetime64[ns]", checks=[_NAIVE, _FIRST_OF_MONTH]),
        "from_stage": pa.Column(str, checks=[pa.Check.isin(states + [ENTRY])] if states else []),
        "to_stage": pa.Column(str, checks=[pa.Check.isin(states)] if states else []),
        "age": pa.Column("int64", checks=pa.Check.ge(0)),
        "n": pa.Column("int64", checks=pa.Check.ge(1)),
        **{b: pa.Column(nullable=True) for b in by},
    }, checks=_unique("month", "from_stage", "to_stage", "age", *by), strict=False, name="transitions")


def pipeline_schema(spec: FunnelSpec | None = None) -> pa.DataFrameSchema:
    """The open pipeline at a cut-off: one row per open lead."""
    return pa.DataFrameSchema({
        "lead_id": pa.Column(str, unique=True),
        "stage": pa.Column(str, checks=[pa.Check.isin(list(spec.codes))] if spec is not None else []),
        "entered_at": pa.Column("datetime64[ns]", nullable=True),
        "age_days": pa.Column(float, nullable=True),
        "age_months": pa.Column("int64", checks=pa.Check.ge(0)),
    }, strict=False, name="open pipeline")


HISTORY = history_schema()
SNAPSHOTS = snapshots_schema()
COUNTS = counts_schema()
TRANSITIONS = transitions_schema()
PIPELINE = pipeline_schema()
#: Shape name -> schema builder.
SCHEMAS = {"history": history_schema, "snapshots": snapshots_schema, "counts": counts_schema}


def schema_for(shape: str, spec: FunnelSpec | None = None, attributes: Sequence[str] = ()) -> pa.DataFrameSchema:
    """The schema of a stored shape (``history``, ``snapshots`` or ``counts``)."""
    return SCHEMAS[shape](spec, attributes)


def validate(frame: pd.DataFrame, schema: pa.DataFrameSchema, where: str) -> pd.DataFrame:
    """Check ``frame`` against ``schema``; return it unchanged.

    Parameters
    ----------
    frame : DataFrame
    schema : pandera.DataFrameSchema
    where : str
        How the message names the frame (e.g. ``"ingest of history"``).

    Raises
    ------
    FunnelDataError
        Naming the table, the column, the check and up to five failing values.
    """
    try:
        return schema.validate(frame, lazy=True)
    except (SchemaError, SchemaErrors) as exc:
        cases = getattr(exc, "failure_cases", None)
        lines = []
        if isinstance(cases, pd.DataFrame) and not cases.empty and "column" in cases.columns:
            for (col, chk), grp in cases.groupby(["column", "check"], dropna=False, sort=False):
                vals = [v for v in grp["failure_case"].head(5).tolist() if not isinstance(v, bool)]
                col_txt = "the table" if col is None or col == schema.name else f"column {col!r}"
                lines.append(f"{col_txt}: {chk}" + (f" (e.g. {vals})" if vals else ""))
        detail = "; ".join(lines) if lines else str(exc).splitlines()[0]
        raise FunnelDataError(f"{where}: the {schema.name} table breaks its contract: {detail}. Fix: "
                              "build it with funnel_models.data.readers (or derive), which produce "
                              "canonical tables.") from None


def canonical_dtypes(df: pd.DataFrame, str_cols: Sequence[str],
                     ts_cols: Sequence[str] = ("entered_at", "month")) -> pd.DataFrame:
    """Give a canonical table its dtypes in place: strings, ``datetime64[ns]`` times,
    float ``value`` and int64 ``count`` (columns that are absent are skipped).

    Returns
    -------
    DataFrame
        ``df`` itself.
    """
    for c in str_cols:
        if c in df.columns:
            df[c] = df[c].astype("str")
    for c in ts_cols:
        if c in df.columns:
            df[c] = df[c].astype("datetime64[ns]")
    if "value" in df.columns:
        df["value"] = df["value"].astype("float64")
    if "count" in df.columns:
        df["count"] = df["count"].astype("int64")
    return df


def coerce_table(df: pd.DataFrame, shape: str, attributes: Sequence[str]) -> pd.DataFrame:
    """Coerce a hand-built table of a stored shape to the canonical dtypes, in place:
    strings (missing values kept), naive ``datetime64[ns]``, months floored to their first
    day, int64 counts, float values.

    Raises
    ------
    FunnelDataError
        If the time column is not datetimes (or time-zone aware), or counts are not whole
        numbers.
    """
    for c in ["lead_id", "stage", *attributes]:
        if c in df.columns:
            df[c] = df[c].astype("str").where(df[c].notna(), None)
    time_col = "entered_at" if shape == "history" else "month"
    try:
        df[time_col] = pd.to_datetime(df[time_col]).astype("datetime64[ns]")
    except (ValueError, TypeError) as exc:
        raise FunnelDataError(f"ingest of {shape}: column {time_col!r} is not naive datetimes ({exc}). "
                              "Fix: read the file with funnel_models.data.readers.") from None
    if shape != "history":
        df["month"] = month_start(df["month"])
    if shape == "counts":
        cnt = pd.to_numeric(df["count"], errors="coerce")
        if cnt.isna().any() or (cnt != cnt.round()).any():
            raise FunnelDataError("ingest of counts: 'count' must hold whole numbers >= 0. Fix: read "
                                  "the file with funnel_models.data.readers to locate the rows.")
        df["count"] = cnt.astype("int64")
    if "value" in df.columns:
        df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    return df
