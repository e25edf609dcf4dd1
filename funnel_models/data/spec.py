"""The funnel spec: ordered open stages with status codes, won and lost codes.

A spec is read from YAML (through :func:`funnel_models.yamlio.read_yaml`: duplicate keys
and alias bombs are errors) or a dict::

    stages:
      - {code: NEW, name: New lead}
      - {code: QUAL, name: Qualified}
    won: [WON]
    lost: [LOST, DISQ]
    columns: {lead_id: opportunity, stage: deal_stage, entered_at: changed_on}
    attributes: [region, campaign]
    value: amount          # optional deal-value column
    stale_after: 12        # optional: an open lead unchanged for 12 months counts as lost
    timezone: UTC          # optional (default UTC): the zone every timestamp is kept in

One row per deal ("opportunities")
----------------------------------
A CRM export with one row per deal and a date column per milestone is described by
giving stages (and, optionally, outcomes) a ``date_column``, and saying how the outcome
is recorded: either a status column and a close date, ::

    stages:
      - {code: NEW, name: New, date_column: created_at}
      - {code: PROP, name: Proposal, date_column: proposal_at}
    won: [WON]
    lost: [LOST]
    status: {column: status, won: [Won], lost: [Lost], open: [Open]}   # open: optional
    closed_at: close_date

or a date column per outcome (``won: [{code: WON, date_column: won_date}]``). The readers
turn each row into canonical stage history (see :mod:`funnel_models.data.opportunities`).

Validation collects every problem and raises one :class:`~funnel_models.errors.SpecError`
listing them all.
"""
from __future__ import annotations

import warnings
import zoneinfo
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from ..errors import FunnelDataError, FunnelWarning, SpecError
from ..yamlio import read_yaml

__all__ = ["Stage", "StatusColumn", "FunnelSpec", "WON", "LOST", "ENTRY", "CANONICAL_COLUMNS",
           "MAX_STAGES", "DEFAULT_TIMEZONE"]

#: Canonical state names used by derived tables and models for the closing states.
WON = "WON"
LOST = "LOST"
#: Pseudo source stage of leads entering the funnel, in transition tables
#: (``ENTRY -> stage`` rows count new leads by the stage they are first seen in).
ENTRY = "ENTRY"
#: Canonical column names the column mapping may rename.
CANONICAL_COLUMNS = ("lead_id", "stage", "entered_at", "month", "count", "value")
#: Above this many open stages the spec warns: too many stages hide patterns.
MAX_STAGES = 10
#: The zone timestamps are kept in unless the spec says otherwise.
DEFAULT_TIMEZONE = "UTC"
_KEYS = {"stages", "won", "lost", "columns", "attributes", "value", "stale_after", "name",
         "timezone", "status", "closed_at"}


@dataclass(frozen=True)
class Stage:
    """One open stage of the funnel.

    Parameters
    ----------
    code : str
        Short status code as it appears in the data, e.g. ``"QUAL"``.
    name : str
        Human-readable name, e.g. ``"Qualified"``.
    date_column : str or None
        For one-row-per-deal exports: the column holding the date the deal entered
        this stage.
    """

    code: str
    name: str
    date_column: str | None = None


@dataclass(frozen=True)
class StatusColumn:
    """How a one-row-per-deal export records the outcome in a status column.

    Parameters
    ----------
    column : str
        The status column, e.g. ``"Deal Stage"``.
    won, lost : tuple of str
        Its values meaning won / lost (the deal closes at ``closed_at`` with the spec's
        first won / lost code).
    open : tuple of str or None
        Its values meaning still open. When given, any other value is an error; when
        ``None``, every value that is not won or lost means open.
    """

    column: str
    won: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()
    open: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FunnelSpec:
    """Ordered open stages plus won and lost status codes.

    Parameters
    ----------
    stages : tuple of Stage
        Open stages in funnel order.
    won : tuple of str
        Status codes meaning the deal was won (at least one).
    lost : tuple of str
        Status codes meaning the deal was lost or disqualified.
    columns : dict
        Mapping from canonical column (``lead_id``, ``stage``, ``entered_at``, ``month``,
        ``count``, ``value``) to the user's column name.
    attributes : tuple of str
        Attribute columns kept for segmentation (canonical names, after mapping).
    value : str or None
        Canonical name of the deal-value column, if any (default ``"value"`` when present).
    stale_after : int or None
        Months without a stage change after which an open lead counts as lost. For CRM
        exports that never record losses.
    timezone : str
        The zone timestamps are kept in (an IANA name, default ``"UTC"``). Timestamps
        written with an offset (``Z``, ``+02:00``) are converted to it; timestamps
        without one are taken to be in it already.
    outcome_dates : dict
        One-row-per-deal exports: won/lost code -> the column holding its date.
    status : StatusColumn or None
        One-row-per-deal exports: the status column giving the outcome.
    closed_at : str or None
        One-row-per-deal exports: the close-date column (with ``status``).

    Examples
    --------
    >>> spec = FunnelSpec.from_dict({"stages": [{"code": "MQL", "name": "MQL"}],
    ...                              "won": ["WON"], "lost": ["LOST"]})
    >>> spec.codes
    ('MQL',)
    >>> spec.canonical("LOST")
    'LOST'
    """

    stages: tuple[Stage, ...]
    won: tuple[str, ...]
    lost: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    attributes: tuple[str, ...] = ()
    value: str | None = None
    stale_after: int | None = None
    timezone: str = DEFAULT_TIMEZONE
    outcome_dates: Mapping[str, str] = field(default_factory=dict)
    status: StatusColumn | None = None
    closed_at: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "FunnelSpec":
        """Build and validate a spec from a mapping (e.g. parsed YAML).

        Raises
        ------
        SpecError
            Listing every problem found at once.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: the spec must be a mapping with 'stages' and 'won', "
                            f"got {type(data).__name__}. Fix: write it as in the README, e.g. "
                            "stages: [{code: NEW, name: New lead}] and won: [WON].")
        problems: list[str] = []
        unknown = sorted(str(k) for k in set(data) - _KEYS)
        if unknown:
            problems.append(f"unknown key(s) {unknown}; allowed keys are {sorted(_KEYS)}")
        stages = _parse_stages(data.get("stages"), problems)
        won, won_dates = _parse_outcomes(data.get("won"), "won", problems)
        lost, lost_dates = _parse_outcomes(data.get("lost"), "lost", problems)
        if not won:
            problems.append("no won code: add e.g. won: [WON]")
        _check_codes([s.code for s in stages] + won + lost, problems)
        columns = _parse_columns(data, problems)
        attributes = _parse_attributes(data.get("attributes"), problems)
        stale = data.get("stale_after")
        if stale is not None and (not isinstance(stale, int) or isinstance(stale, bool) or stale < 1):
            problems.append(f"'stale_after' must be a whole number of months >= 1, got {stale!r}")
            stale = None
        value = data.get("value")
        if value is not None and not isinstance(value, str):
            problems.append(f"'value' must be a column name, got {value!r}")
            value = None
        tz = _parse_timezone(data.get("timezone", DEFAULT_TIMEZONE), problems)
        status = _parse_status(data.get("status"), problems)
        closed_at = data.get("closed_at")
        if closed_at is not None and not isinstance(closed_at, str):
            problems.append(f"'closed_at' must be a column name, got {closed_at!r}")
            closed_at = None
        outcome_dates = {**won_dates, **lost_dates}
        _check_layout(stages, outcome_dates, status, closed_at, lost, problems)
        if problems:
            raise SpecError(f"{source}: invalid funnel spec:\n  - " + "\n  - ".join(problems))
        spec = cls(stages=tuple(stages), won=tuple(won), lost=tuple(lost), columns=dict(columns),
                   attributes=tuple(attributes), value=value, stale_after=stale, timezone=tz,
                   outcome_dates=outcome_dates, status=status, closed_at=closed_at)
        if len(stages) > MAX_STAGES:
            warnings.warn(f"{source}: the funnel has {len(stages)} open stages; more than "
                          f"{MAX_STAGES} stages tend to hide patterns. Consider merging stages.",
                          FunnelWarning, stacklevel=2)
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FunnelSpec":
        """Read and validate a spec from a YAML file.

        Raises
        ------
        SpecError
            Missing file, a directory, not UTF-8 text, invalid YAML, duplicate keys, too
            many aliases, or an invalid spec (naming the file and the fix).
        """
        path = Path(path)
        if not path.exists():
            raise SpecError(f"{path}: spec file not found. Fix: pass the path of a YAML file with "
                            "'stages', 'won' and 'lost' (funnel init DATA writes one).")
        data = read_yaml(path, SpecError, what="funnel spec")
        return cls.from_dict(data, source=str(path))

    @classmethod
    def load(cls, spec: "FunnelSpec | Mapping[str, Any] | str | Path") -> "FunnelSpec":
        """Coerce a spec, a mapping or a YAML path into a :class:`FunnelSpec`."""
        if isinstance(spec, FunnelSpec):
            return spec
        if isinstance(spec, Mapping):
            return cls.from_dict(spec)
        return cls.from_yaml(spec)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, the inverse of :meth:`from_dict` (JSON/YAML serialisable)."""
        out: dict[str, Any] = {
            "stages": [{"code": s.code, "name": s.name,
                        **({"date_column": s.date_column} if s.date_column else {})}
                       for s in self.stages],
            "won": [_outcome_entry(c, self.outcome_dates) for c in self.won],
            "lost": [_outcome_entry(c, self.outcome_dates) for c in self.lost],
        }
        optional: dict[str, Any] = {
            "columns": dict(self.columns), "attributes": list(self.attributes), "value": self.value,
            "stale_after": self.stale_after, "closed_at": self.closed_at,
            "timezone": self.timezone if self.timezone != DEFAULT_TIMEZONE else None,
        }
        out.update({k: v for k, v in optional.items() if v})
        if self.status is not None:
            st = {"column": self.status.column, "won": list(self.status.won), "lost": list(self.status.lost)}
            if self.status.open is not None:
                st["open"] = list(self.status.open)
            out["status"] = st
        return out

    def with_columns(self, mapping: Mapping[str, str]) -> "FunnelSpec":
        """Return a copy whose column mapping is updated by ``mapping``."""
        cols = dict(self.columns)
        cols.update(mapping)
        d = self.to_dict()
        d["columns"] = cols
        return FunnelSpec.from_dict(d)

    def without_layout(self) -> "FunnelSpec":
        """The funnel alone: this spec without what describes a source file (the column
        mapping, milestone date columns, status column, close date). This is what a store
        records, since stored tables are canonical."""
        return replace(self, stages=tuple(Stage(s.code, s.name) for s in self.stages), columns={},
                       outcome_dates={}, status=None, closed_at=None,
                       value="value" if self.value else None)

    def funnel_key(self) -> dict[str, Any]:
        """What must agree between two specs for their data to be stored together: stage
        codes and names, won and lost codes, ``stale_after`` and ``timezone``."""
        return {"stages": [[s.code, s.name] for s in self.stages], "won": list(self.won),
                "lost": list(self.lost), "stale_after": self.stale_after, "timezone": self.timezone}

    # ------------------------------------------------------------------ queries
    @property
    def codes(self) -> tuple[str, ...]:
        """Open stage codes in funnel order."""
        return tuple(s.code for s in self.stages)

    @property
    def names(self) -> tuple[str, ...]:
        """Open stage names in funnel order."""
        return tuple(s.name for s in self.stages)

    @property
    def n_stages(self) -> int:
        """Number of open stages ``K``."""
        return len(self.stages)

    @property
    def states(self) -> tuple[str, ...]:
        """Model states: the open stage codes, then ``WON`` and ``LOST``."""
        return self.codes + (WON, LOST)

    @property
    def all_codes(self) -> tuple[str, ...]:
        """Every status code the data may contain, in funnel order."""
        return self.codes + self.won + self.lost

    @property
    def milestones(self) -> dict[str, str]:
        """One-row-per-deal layout: status code -> its date column (stages, then outcomes)."""
        out = {s.code: s.date_column for s in self.stages if s.date_column}
        out.update(self.outcome_dates)
        return out

    @property
    def is_opportunities(self) -> bool:
        """Whether the spec describes a one-row-per-deal export (milestone date columns)."""
        return bool(self.milestones) or self.status is not None

    def canonical(self, code: str) -> str:
        """Map a data status code to its model state (open code, ``WON`` or ``LOST``).

        Raises
        ------
        SpecError
            If ``code`` is not declared in the spec.
        """
        if code in self.codes:
            return code
        if code in self.won:
            return WON
        if code in self.lost:
            return LOST
        raise SpecError(f"unknown status code {code!r}; declared codes are {list(self.all_codes)}")

    def canonical_states(self, codes: pd.Series, *, where: str = "data") -> pd.Series:
        """Vectorised :meth:`canonical`: map a column of status codes to model states.

        Parameters
        ----------
        codes : Series of str
            Status codes as in the data.
        where : str
            How the error message names the table (e.g. ``"snapshots"``).

        Returns
        -------
        Series of str
            Same index: open codes kept, won codes -> ``WON``, lost codes -> ``LOST``.

        Raises
        ------
        FunnelDataError
            Listing every undeclared code found, with the fix.

        Examples
        --------
        >>> spec = FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "lost": ["L", "D"]})
        >>> spec.canonical_states(pd.Series(["A", "W", "D"])).tolist()
        ['A', 'WON', 'LOST']
        """
        table = self.code_table()
        out = codes.map(dict(zip(table["code"], table["state"])))
        bad = out.isna()
        if bad.any():
            unknown = sorted(set(codes[bad].astype(str)))
            raise FunnelDataError(f"{where}: column 'stage' has unknown status code(s) {unknown}; "
                                  f"declared codes are {list(self.all_codes)}. Fix: add them to the "
                                  "spec (stages, won or lost) or correct the data.")
        return out.astype("str")

    def code_table(self) -> pd.DataFrame:
        """Every status code with its model state, kind and funnel rank: the one mapping
        from data codes to states (readers load it into SQL, :meth:`canonical_states`
        maps columns with it).

        Returns
        -------
        DataFrame
            ``code``, ``state`` (open code, ``WON`` or ``LOST``), ``kind`` (``open``,
            ``won``, ``lost``), ``rank`` (open stages 0..K-1, won and lost K), in funnel order.

        Examples
        --------
        >>> FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "lost": ["L"]}).code_table().values.tolist()
        [['A', 'A', 'open', 0], ['W', 'WON', 'won', 1], ['L', 'LOST', 'lost', 1]]
        """
        k = self.n_stages
        rows = ([(c, c, "open", i) for i, c in enumerate(self.codes)] + [(c, WON, "won", k) for c in self.won]
                + [(c, LOST, "lost", k) for c in self.lost])
        return pd.DataFrame(rows, columns=["code", "state", "kind", "rank"])

    def rank(self) -> dict[str, int]:
        """Order of every status code: open stages 0..K-1, won K, lost K+1."""
        r = {c: i for i, c in enumerate(self.codes)}
        r.update({c: self.n_stages for c in self.won})
        r.update({c: self.n_stages + 1 for c in self.lost})
        return r

    def order_codes(self, codes: Iterable[str]) -> list[str]:
        """Status codes in funnel order (stages, won, lost); undeclared ones after, sorted.

        Examples
        --------
        >>> spec = FunnelSpec.from_dict({"stages": ["NEW", "QUAL"], "won": ["WON"]})
        >>> spec.order_codes(["WON", "QUAL", "X", "NEW"])
        ['NEW', 'QUAL', 'WON', 'X']
        """
        rank = {c: i for i, c in enumerate(self.all_codes)}
        return sorted(codes, key=lambda c: (rank.get(c, len(rank)), str(c)))

    def name_of(self, code: str) -> str:
        """Readable name of a stage code (the code itself for closing states)."""
        for s in self.stages:
            if s.code == code:
                return s.name
        return {WON: "Won", LOST: "Lost"}.get(code, code)


# ---------------------------------------------------------------------- parsing helpers
def _outcome_entry(code: str, dates: Mapping[str, str]) -> Any:
    return {"code": code, "date_column": dates[code]} if code in dates else code


def _parse_stages(raw: Any, problems: list[str]) -> list[Stage]:
    if not raw:
        problems.append("'stages' is empty: declare at least one open stage, "
                        "e.g. stages: [{code: NEW, name: New lead}]")
        return []
    if not isinstance(raw, list):
        problems.append("'stages' must be a list of {code, name} entries")
        return []
    stages = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"code": item, "name": item}
        if not isinstance(item, Mapping) or "code" not in item:
            problems.append(f"stages[{i}] must be a mapping with 'code' and 'name', got {item!r}")
            continue
        extra = sorted(str(k) for k in set(item) - {"code", "name", "date_column"})
        if extra:
            problems.append(f"stages[{i}]: unknown key(s) {extra}; a stage has code, name and "
                            "(for one row per deal) date_column")
        code = item["code"]
        if not isinstance(code, str) or not code.strip():
            problems.append(f"stages[{i}].code must be a non-empty string, got {code!r} "
                            f"(quote it in YAML: code: '{code}')")
            continue
        date_col = item.get("date_column")
        if date_col is not None and (not isinstance(date_col, str) or not date_col.strip()):
            problems.append(f"stages[{i}].date_column must be a column name, got {date_col!r}")
            date_col = None
        stages.append(Stage(code=code.strip(), name=str(item.get("name", code)), date_column=date_col))
    return stages


def _parse_outcomes(raw: Any, key: str, problems: list[str]) -> tuple[list[str], dict[str, str]]:
    """Won or lost codes: strings, or ``{code, date_column}`` mappings."""
    if raw is None:
        return [], {}
    if isinstance(raw, (str, Mapping)):
        raw = [raw]
    if not isinstance(raw, Iterable):
        problems.append(f"'{key}' must be a list of status codes, got {raw!r}")
        return [], {}
    codes, dates = [], {}
    for c in raw:
        if isinstance(c, Mapping):
            code, col = c.get("code"), c.get("date_column")
            if not isinstance(code, str) or not code.strip() or not isinstance(col, str) or not col.strip():
                problems.append(f"'{key}' entries written as mappings need code and date_column, "
                                f"e.g. {{code: {key.upper()}, date_column: {key}_date}}; got {dict(c)!r}")
                continue
            codes.append(code.strip())
            dates[code.strip()] = col
        elif not isinstance(c, str) or not c.strip():
            problems.append(f"'{key}' codes must be non-empty strings, got {c!r} "
                            f"(quote numbers in YAML: '{c}')")
        else:
            codes.append(c.strip())
    return codes, dates


def _check_codes(all_codes: list[str], problems: list[str]) -> None:
    dupes = sorted({c for c in all_codes if all_codes.count(c) > 1})
    if dupes:
        problems.append(f"duplicate status code(s) {dupes}: every code must be unique "
                        "across stages, won and lost")
    if ENTRY in all_codes:
        problems.append(f"status code {ENTRY!r} is reserved for leads entering the funnel in "
                        "transition tables; rename that stage")


def _parse_columns(data: Mapping[str, Any], problems: list[str]) -> Mapping[str, str]:
    columns = data.get("columns") or {}
    if not isinstance(columns, Mapping):
        problems.append("'columns' must be a mapping like {lead_id: opportunity}")
        return {}
    attrs = data.get("attributes") or []
    bad = sorted(str(k) for k in columns if k not in CANONICAL_COLUMNS and k not in attrs)
    if bad:
        problems.append(f"columns: unknown canonical column(s) {bad}; map one of "
                        f"{list(CANONICAL_COLUMNS)} (or an attribute) to your column name")
    for k, v in columns.items():
        if not isinstance(v, str):
            problems.append(f"columns.{k} must be a column name string, got {v!r}")
    return columns


def _parse_attributes(raw: Any, problems: list[str]) -> list[str]:
    attributes = raw or []
    if isinstance(attributes, str):
        attributes = [attributes]
    if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
        problems.append(f"'attributes' must be a list of column names, got {attributes!r}")
        return []
    return attributes


def _parse_timezone(raw: Any, problems: list[str]) -> str:
    if not isinstance(raw, str) or not raw.strip():
        problems.append(f"'timezone' must be a zone name such as UTC or Europe/Paris, got {raw!r}")
        return DEFAULT_TIMEZONE
    name = raw.strip()
    if name.upper() == "UTC":
        return "UTC"
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.append(f"'timezone': unknown zone {name!r}; use an IANA name such as UTC, "
                        "Europe/Berlin or America/New_York")
        return DEFAULT_TIMEZONE
    return name


def _parse_status(raw: Any, problems: list[str]) -> StatusColumn | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("column"), str):
        problems.append("'status' must be a mapping like {column: status, won: [Won], lost: [Lost]}")
        return None
    extra = sorted(str(k) for k in set(raw) - {"column", "won", "lost", "open"})
    if extra:
        problems.append(f"status: unknown key(s) {extra}; use column, won, lost and open")

    def values(key: str) -> tuple[str, ...]:
        v = raw.get(key) or []
        v = [v] if isinstance(v, (str, int, float)) else v
        if not isinstance(v, list):
            problems.append(f"status.{key} must be a list of values of the status column, got {v!r}")
            return ()
        flags = [x for x in v if isinstance(x, bool) or x is None]
        if flags:
            problems.append(f"status.{key}: {flags} are not text (YAML reads yes/no/true/false/null "
                            "as flags); quote the values, e.g. won: ['Yes']")
        return tuple(str(x) for x in v if not isinstance(x, bool) and x is not None)

    st = StatusColumn(column=raw["column"], won=values("won"), lost=values("lost"),
                      open=values("open") if raw.get("open") is not None else None)
    if not st.won and not st.lost:
        problems.append("status: list the values meaning won and lost, e.g. "
                        "{column: status, won: [Won], lost: [Lost]}")
    both = sorted(set(st.won) & set(st.lost))
    if both:
        problems.append(f"status: value(s) {both} are listed as both won and lost")
    return st


def _check_layout(stages: list[Stage], outcome_dates: Mapping[str, str], status: StatusColumn | None,
                  closed_at: str | None, lost: list[str], problems: list[str]) -> None:
    """The one-row-per-deal keys must fit together."""
    if status is not None and status.lost and not lost:
        problems.append("status.lost lists values meaning lost, but the spec has no lost code: add "
                        "e.g. lost: [LOST]")
    dated = [s.date_column for s in stages if s.date_column]
    if (status is not None or closed_at or outcome_dates) and not dated:
        problems.append("status/closed_at/outcome date columns describe one row per deal; give "
                        "the stages their date columns too, e.g. {code: NEW, name: New, "
                        "date_column: created_at}")
    if status is not None and not closed_at:
        problems.append("status needs closed_at: the column with the date the deal was won or lost")
    if closed_at and status is None:
        problems.append("closed_at needs status: {column: ..., won: [...], lost: [...]} to tell "
                        "won from lost")
    if status is not None and outcome_dates:
        problems.append("use either a status column (status + closed_at) or date columns on the "
                        "won/lost codes, not both")
    cols = dated + list(outcome_dates.values()) + ([closed_at] if closed_at else [])
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        problems.append(f"date column(s) {dupes} are used for more than one milestone")
