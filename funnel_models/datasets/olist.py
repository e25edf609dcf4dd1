"""Public example data sets, read from files the user already has.

Nothing here downloads anything or ships data: pass the directory that holds the files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["OLIST_SPEC", "OLIST_LEADS_FILE", "OLIST_DEALS_FILE", "olist_stage_history"]

#: File names of the "Marketing Funnel by Olist" data set (Kaggle, CC BY-NC-SA 4.0).
OLIST_LEADS_FILE = "olist_marketing_qualified_leads_dataset.csv"
OLIST_DEALS_FILE = "olist_closed_deals_dataset.csv"

#: Funnel spec for :func:`olist_stage_history` output, in the raw Olist column names.
#: Only the first (MQL) and last (WON) stages carry dates; losses are never recorded,
#: hence ``stale_after``.
OLIST_SPEC: dict[str, Any] = {
    "stages": [{"code": "MQL", "name": "Marketing qualified lead"}],
    "won": ["WON"],
    "lost": ["LOST"],
    "columns": {"lead_id": "mql_id", "stage": "status", "entered_at": "changed_on"},
    "attributes": ["origin"],
    "stale_after": 12,
}


def olist_stage_history(directory: str | os.PathLike[str]) -> pd.DataFrame:
    """Build the raw Olist stage history from the two Olist CSV files.

    Parameters
    ----------
    directory : path-like
        Directory holding ``olist_marketing_qualified_leads_dataset.csv`` and
        ``olist_closed_deals_dataset.csv``.

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
    directory = Path(directory)
    leads, deals = directory / OLIST_LEADS_FILE, directory / OLIST_DEALS_FILE
    for f in (leads, deals):
        if not f.is_file():
            raise FunnelDataError(f"{f}: file not found. Pass the directory holding {OLIST_LEADS_FILE} "
                                  f"and {OLIST_DEALS_FILE} (Kaggle 'Marketing Funnel by Olist').")
    sql = f"""
        WITH l AS (SELECT * FROM read_csv(?, all_varchar=true, header=true)),
             d AS (SELECT * FROM read_csv(?, all_varchar=true, header=true))
        SELECT mql_id, 'MQL' AS status, CAST(first_contact_date AS TIMESTAMP) AS changed_on,
               coalesce(NULLIF(trim(origin), ''), 'unknown') AS origin, landing_page_id
        FROM l
        UNION ALL
        SELECT d.mql_id, 'WON', CAST(d.won_date AS TIMESTAMP),
               coalesce(NULLIF(trim(l.origin), ''), 'unknown'), l.landing_page_id
        FROM d JOIN l USING (mql_id)
        ORDER BY mql_id, changed_on, status DESC
    """
    with duckdb.connect(":memory:") as con:
        df = con.execute(sql, [str(leads), str(deals)]).df()
    for c in ("mql_id", "status", "origin", "landing_page_id"):
        df[c] = df[c].astype("str")
    df["changed_on"] = df["changed_on"].astype("datetime64[ns]")
    return df
