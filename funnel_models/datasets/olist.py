"""The Olist example data set, read from files the user already has.

Nothing here downloads anything or ships data: pass the directory that holds the files,
or let :func:`olist_dir` find it (``$FUNNEL_OLIST_DIR``, else
``shared/datasets/olist-marketing-funnel`` next to the working directory or the source
checkout, looked for in every parent folder).

Two views of the same files:

* :func:`olist_stage_history` -- stage history in Olist's own column names (``MQL`` at
  the first contact, ``WON`` at the won date), read with :data:`OLIST_SPEC`;
* :func:`olist_opportunities` -- one row per lead (first contact date, won date, origin),
  read with :data:`OLIST_OPPORTUNITY_SPEC` by
  :func:`funnel_models.data.readers.read_opportunities`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["OLIST_SPEC", "OLIST_OPPORTUNITY_SPEC", "OLIST_LEADS_FILE", "OLIST_DEALS_FILE", "OLIST_DIR_NAME",
           "olist_dir", "olist_stage_history", "olist_opportunities"]

#: File names of the "Marketing Funnel by Olist" data set (Kaggle, CC BY-NC-SA 4.0).
OLIST_LEADS_FILE = "olist_marketing_qualified_leads_dataset.csv"
OLIST_DEALS_FILE = "olist_closed_deals_dataset.csv"
#: Where the files are looked for, relative to a parent folder (see :func:`olist_dir`).
OLIST_DIR_NAME = Path("shared") / "datasets" / "olist-marketing-funnel"

#: Funnel spec for :func:`olist_stage_history` output, in the raw Olist column names.
#: Only the first (MQL) and last (WON) stages carry dates; losses are never recorded: the
#: time-in-stage model learns when leads go cold (no ``stale_after`` needed).
OLIST_SPEC: dict[str, Any] = {
    "stages": [{"code": "MQL", "name": "Marketing qualified lead"}],
    "won": ["WON"],
    "lost": ["LOST"],
    "columns": {"lead_id": "mql_id", "stage": "status", "entered_at": "changed_on"},
    "attributes": ["origin"],
}

#: Funnel spec for :func:`olist_opportunities` (one row per lead, a date per milestone).
OLIST_OPPORTUNITY_SPEC: dict[str, Any] = {
    "stages": [{"code": "MQL", "name": "Marketing qualified lead", "date_column": "first_contact_date"}],
    "won": [{"code": "WON", "date_column": "won_date"}],
    "lost": ["LOST"],
    "columns": {"lead_id": "mql_id"},
    "attributes": ["origin"],
}


def olist_dir() -> Path:
    """The folder of the Olist files, resolved now (not at import time).

    ``$FUNNEL_OLIST_DIR`` if set; else the first existing ``shared/datasets/olist-marketing-funnel``
    under the working directory or any of its parents, then under the source checkout or
    any of its parents; else ``../shared/datasets/olist-marketing-funnel`` relative to the
    working directory (which does not exist: callers report it).

    Returns
    -------
    Path
    """
    env = os.environ.get("FUNNEL_OLIST_DIR")
    if env:
        return Path(env)
    cwd = Path.cwd()
    checkout = Path(__file__).resolve().parents[2]
    for base in (cwd, checkout):
        for folder in (base, *base.parents):
            candidate = folder / OLIST_DIR_NAME
            if (candidate / OLIST_LEADS_FILE).is_file():
                return candidate
    return cwd.parent / OLIST_DIR_NAME


def _files(directory: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    directory = Path(directory) if directory is not None else olist_dir()
    leads, deals = directory / OLIST_LEADS_FILE, directory / OLIST_DEALS_FILE
    for f in (leads, deals):
        if not f.is_file():
            raise FunnelDataError(f"{f}: file not found. Fix: pass the directory holding {OLIST_LEADS_FILE} "
                                  f"and {OLIST_DEALS_FILE} (Kaggle 'Marketing Funnel by Olist'), or set "
                                  "FUNNEL_OLIST_DIR to it.")
    return leads, deals


def _query(directory: str | os.PathLike[str] | None, select: str) -> pd.DataFrame:
    """Run ``select`` over the leads file as ``l`` and the closed deals as ``d`` (all text; a
    blank ``origin`` reads ``"unknown"``)."""
    leads, deals = _files(directory)
    sql = ("WITH l AS (SELECT * REPLACE (coalesce(NULLIF(trim(origin), ''), 'unknown') AS origin) "
           "FROM read_csv(?, all_varchar=true, header=true)), "
           "d AS (SELECT * FROM read_csv(?, all_varchar=true, header=true)) " + select)
    with duckdb.connect(":memory:") as con:
        return con.execute(sql, [str(leads), str(deals)]).df()


def olist_opportunities(directory: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per Olist lead: the leads file left-joined with the closed deals.

    Parameters
    ----------
    directory : path-like, optional
        Directory holding the two Olist files (default: :func:`olist_dir`).

    Returns
    -------
    pandas.DataFrame
        ``mql_id``, ``first_contact_date``, ``won_date`` (blank if never won), ``origin``
        (blank -> ``"unknown"``), ``landing_page_id``, ``business_segment``, ``lead_type``;
        all text, in the files' own formats; sorted by ``mql_id``. Deals whose lead is not
        in the leads file are left out.

    Raises
    ------
    FunnelDataError
        If a file is missing.
    """
    df = _query(directory, """
        SELECT l.mql_id, l.first_contact_date, d.won_date, l.origin, l.landing_page_id,
               d.business_segment, d.lead_type
        FROM l LEFT JOIN d USING (mql_id)
        ORDER BY l.mql_id""")
    return df.astype("str").where(df.notna(), None)


def olist_stage_history(directory: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Build the raw Olist stage history from the two Olist CSV files.

    Parameters
    ----------
    directory : path-like, optional
        Directory holding ``olist_marketing_qualified_leads_dataset.csv`` and
        ``olist_closed_deals_dataset.csv`` (default: :func:`olist_dir`).

    Returns
    -------
    pandas.DataFrame
        Olist's own column names (not canonical; read it with
        :func:`funnel_models.data.readers.read_history` and :data:`OLIST_SPEC`):
        ``mql_id``, ``status`` (``"MQL"`` at ``first_contact_date``, ``"WON"`` at
        ``won_date``), ``changed_on`` (datetime64[ns]), ``origin`` (blank -> ``"unknown"``),
        ``landing_page_id``; sorted by ``mql_id``, ``changed_on``. Deals whose lead is not
        in the leads file are left out.

    Raises
    ------
    FunnelDataError
        If a file is missing.
    """
    df = _query(directory, """
        SELECT mql_id, 'MQL' AS status, CAST(first_contact_date AS TIMESTAMP) AS changed_on, origin,
               landing_page_id
        FROM l
        UNION ALL
        SELECT d.mql_id, 'WON', CAST(d.won_date AS TIMESTAMP), l.origin, l.landing_page_id
        FROM d JOIN l USING (mql_id)
        ORDER BY mql_id, changed_on, status DESC""")
    for c in ("mql_id", "status", "origin", "landing_page_id"):
        df[c] = df[c].astype("str")
    df["changed_on"] = df["changed_on"].astype("datetime64[ns]")
    return df
