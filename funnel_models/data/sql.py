"""Quoting names and values for DuckDB SQL: the one place that does it.

Every SQL text the toolkit builds from a user's column name, file path or value goes
through :func:`quote_ident` (identifiers) or :func:`quote_literal` (values), so a column
called ``my "odd" column`` or a path holding ``'`` cannot break out of the statement.
Prefer bound parameters (``?``) where DuckDB allows them; these are for the places it
does not (``read_csv`` arguments, ``CREATE VIEW`` bodies, column lists).

Examples
--------
>>> quote_ident('my "odd" column')
'"my ""odd"" column"'
>>> quote_literal("O'Brien")
"'O''Brien'"
>>> quote_literal(3), quote_literal(None), quote_literal(True)
('3', 'NULL', 'TRUE')
"""
from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["quote_ident", "quote_literal"]


def quote_ident(name: Any) -> str:
    """Quote an SQL identifier (a column, table or schema name).

    Parameters
    ----------
    name : object
        The name; converted with ``str``.

    Returns
    -------
    str
        The name in double quotes, inner double quotes doubled.
    """
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: Any) -> str:
    """Render a Python scalar as an SQL literal.

    Parameters
    ----------
    value : None, bool, int, float, datetime, date or str
        ``None`` becomes ``NULL``; booleans ``TRUE``/``FALSE``; numbers are written as
        numbers; timestamps as ``TIMESTAMP '...'`` (time-zone aware ones converted to
        UTC first); dates as ``DATE '...'``; anything else as a string literal.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        For a float that is NaN or infinite (SQL has no literal for it).
    """
    if value is None:
        return "NULL"
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            raise ValueError(f"{value!r} is not a finite number; SQL has no literal for it")
        return repr(float(value))
    if isinstance(value, (pd.Timestamp, _dt.datetime)):
        ts = pd.Timestamp(value)
        if ts.tz is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return f"TIMESTAMP '{ts.isoformat(sep=' ')}'"
    if isinstance(value, _dt.date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"
