"""Profile the columns of an opened source: what ``funnel init`` looks at.

For every column (over at most the first :data:`SAMPLE_ROWS` rows), in one DuckDB query:
how many values are filled, distinct, ISO dates, months, numbers, whole numbers, ``M/D/Y``
dates and times with a UTC offset; and the values with their counts when there are at
most 60 distinct ones. The word patterns tell roles and outcomes from names.

Examples
--------
>>> bool(WON_WORDS.search("Closed Won")), bool(LOST_WORDS.search("Closed Won"))
(True, False)
>>> bool(LOST_WORDS.search("disqualified")), bool(WON_WORDS.search("Wonderland"))
(True, False)
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb

from ..errors import FunnelDataError
from .checks import TZ_PATTERN, timestamp_sql
from .sources import OpenedSource, translate_read_error

__all__ = ["ColumnProfile", "Profile", "profile_columns", "value_sql", "SAMPLE_ROWS", "WON_WORDS",
           "LOST_WORDS", "ID_WORDS", "STAGE_WORDS", "VALUE_WORDS", "COUNT_WORDS", "CLOSE_WORDS",
           "SKIP_DATE_WORDS"]

#: Rows profiled (the first ones).
SAMPLE_ROWS = 500_000
#: Values or column names meaning a won deal.
WON_WORDS = re.compile(r"(^|[^a-z])(won|win|signed|success|converted|customer)([^a-z]|$)", re.I)
#: Values or column names meaning a lost deal.
LOST_WORDS = re.compile(r"(^|[^a-z])(lost|lose|disq\w*|reject\w*|dead|churn\w*|unqualified|cancel\w*|"
                        r"declined|no[ _-]?decision)([^a-z]|$)", re.I)
#: Column names of ids.
ID_WORDS = re.compile(r"(^|[^a-z])(id|key|lead|deal|opportunity|opp|record|account|mql|prospect)"
                      r"([^a-z]|$)", re.I)
#: Column names of a stage or status.
STAGE_WORDS = re.compile(r"stage|status|state|step|phase", re.I)
#: Column names of a deal value.
VALUE_WORDS = re.compile(r"amount|value|revenue|price|arr|mrr|acv|deal[ _]?size", re.I)
#: Column names of a count.
COUNT_WORDS = re.compile(r"^(n|num|number|leads|total|qty|quantity|volume)$|count", re.I)
#: Column names of a close date.
CLOSE_WORDS = re.compile(r"close|closed|decision", re.I)
#: Date columns that are not milestones (bookkeeping dates).
SKIP_DATE_WORDS = re.compile(r"modif|updat|last[ _]?activ|sync|import|birth|expir|creat\w*[ _]by", re.I)
_US_DATE = r"^\d{1,2}[/.]\d{1,2}[/.]\d{2,4}( .*)?$"


@dataclass
class ColumnProfile:
    """What one column holds.

    Attributes
    ----------
    name : str
    filled, distinct : int
        Non-blank values, distinct values.
    dates, months, numbers, integers, us_dates, offsets : int
        Values that are ISO dates/times, months (``YYYY-MM``, or dates on the first or
        last day of a month), numbers, whole numbers, ``M/D/Y`` dates, times with a UTC offset.
    top : list of (value, count)
        The values with their counts, most frequent first, when there are at most 60.
    """

    name: str
    filled: int
    distinct: int
    dates: int
    months: int
    numbers: int
    integers: int
    us_dates: int
    offsets: int
    top: list[tuple[str, int]] = field(default_factory=list)

    def share(self, n: int) -> float:
        """``n`` as a share of the filled values."""
        return n / self.filled if self.filled else 0.0

    @property
    def is_date(self) -> bool:
        """At least 95% of the filled values are dates or months, and they are not numbers."""
        return self.filled > 0 and self.share(max(self.dates, self.months)) >= 0.95 and not self.is_number

    @property
    def is_month(self) -> bool:
        """Every filled value is a month, and not every one is a plain date on the 1st."""
        return self.filled > 0 and self.months == self.filled

    @property
    def is_number(self) -> bool:
        """At least 95% of the filled values are numbers."""
        return self.filled > 0 and self.share(self.numbers) >= 0.95

    @property
    def values(self) -> list[str]:
        """The distinct values (when at most 60), most frequent first."""
        return [v for v, _ in self.top]


@dataclass
class Profile:
    """The source, its (profiled) row count and its column profiles."""

    label: str
    rows: int
    columns: list[ColumnProfile]

    def get(self, name: str) -> ColumnProfile:
        """The profile of column ``name``."""
        return next(c for c in self.columns if c.name == name)


def value_sql(inp: OpenedSource, column: str) -> str:
    """SQL for the trimmed text of ``column`` over ``src`` (NULL when blank)."""
    return f"NULLIF(trim({inp.internal[column]}), '')"


def _column_items(i: int, e: str) -> list[str]:
    ts = timestamp_sql(e, "UTC")
    month = (f"regexp_full_match({e}, '\\d{{4}}-\\d{{2}}') OR ({ts}) = date_trunc('month', {ts}) "
             f"OR ({ts}) = CAST(last_day({ts}) AS TIMESTAMP)")
    num = f"try_cast({e} AS DOUBLE)"
    return [f"count({e}) AS f{i}", f"count(DISTINCT {e}) AS d{i}", f"count({ts}) AS t{i}",
            f"count(*) FILTER (WHERE {month}) AS m{i}", f"count({num}) AS n{i}",
            f"count(*) FILTER (WHERE {num} = round({num})) AS i{i}",
            f"count(*) FILTER (WHERE regexp_matches({e}, '{_US_DATE}')) AS u{i}",
            f"count(*) FILTER (WHERE regexp_matches({e}, '{TZ_PATTERN}')) AS z{i}"]


def profile_columns(con: duckdb.DuckDBPyConnection, inp: OpenedSource) -> Profile:
    """Profile every column of the opened source ``src``.

    Raises
    ------
    FunnelDataError
        If the source cannot be read (as the readers report it) or has no rows.
    """
    items = [x for i, col in enumerate(inp.columns) for x in _column_items(i, value_sql(inp, col))]
    con.execute(f"CREATE OR REPLACE TEMP VIEW sample AS SELECT * FROM src LIMIT {SAMPLE_ROWS}")
    try:
        row = con.execute(f"SELECT count(*), {', '.join(items)} FROM sample").fetchall()[0]
    except duckdb.Error as exc:
        raise translate_read_error(exc, inp) from None
    if int(row[0]) == 0:
        raise FunnelDataError(f"{inp.label}: the file has a header but no data rows (columns: "
                              f"{inp.columns}). Fix: export the data again, with rows.")
    cols = []
    for i, name in enumerate(inp.columns):
        prof = ColumnProfile(name, *(int(v) for v in row[1 + 8 * i: 9 + 8 * i]))
        if 0 < prof.distinct <= 60:
            e = value_sql(inp, name)
            prof.top = [(str(v), int(c)) for v, c in con.execute(
                f"SELECT {e} AS v, count(*) AS c FROM sample WHERE {e} IS NOT NULL GROUP BY v "
                "ORDER BY c DESC, v").fetchall()]
        cols.append(prof)
    return Profile(inp.label, int(row[0]), cols)
