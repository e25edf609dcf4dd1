"""The funnel spec: ordered open stages with status codes, won and lost codes.

A spec is read from YAML or a dict::

    stages:
      - {code: NEW, name: New lead}
      - {code: QUAL, name: Qualified}
    won: [WON]
    lost: [LOST, DISQ]
    columns: {lead_id: opportunity, stage: deal_stage, entered_at: changed_on}
    attributes: [region, campaign]
    value: amount          # optional deal-value column
    stale_after: 12        # optional: an open lead unchanged for 12 months counts as lost

Validation collects every problem and raises one :class:`~funnel_models.errors.SpecError`
listing them all.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from ..errors import FunnelWarning, SpecError

__all__ = ["Stage", "FunnelSpec", "WON", "LOST", "ENTRY", "CANONICAL_COLUMNS", "MAX_STAGES"]

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


@dataclass(frozen=True)
class Stage:
    """One open stage of the funnel.

    Parameters
    ----------
    code : str
        Short status code as it appears in the data, e.g. ``"QUAL"``.
    name : str
        Human-readable name, e.g. ``"Qualified"``.
    """

    code: str
    name: str


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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> "FunnelSpec":
        """Build and validate a spec from a mapping (e.g. parsed YAML).

        Raises
        ------
        SpecError
            Listing every problem found at once.
        """
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: the spec must be a mapping with 'stages' and 'won', "
                            f"got {type(data).__name__}.")
        allowed = {"stages", "won", "lost", "columns", "attributes", "value", "stale_after", "name"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            problems.append(f"unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")

        raw_stages = data.get("stages")
        stages: list[Stage] = []
        if not raw_stages:
            problems.append("'stages' is empty: declare at least one open stage, "
                            "e.g. stages: [{code: NEW, name: New lead}]")
        elif not isinstance(raw_stages, list):
            problems.append("'stages' must be a list of {code, name} entries")
        else:
            for i, item in enumerate(raw_stages):
                if isinstance(item, str):
                    item = {"code": item, "name": item}
                if not isinstance(item, Mapping) or "code" not in item:
                    problems.append(f"stages[{i}] must be a mapping with 'code' and 'name', got {item!r}")
                    continue
                code = item["code"]
                if not isinstance(code, str) or not code.strip():
                    problems.append(f"stages[{i}].code must be a non-empty string, got {code!r} "
                                    f"(quote it in YAML: code: '{code}')")
                    continue
                name = item.get("name", code)
                stages.append(Stage(code=code.strip(), name=str(name)))

        won = _codes(data.get("won"), "won", problems)
        lost = _codes(data.get("lost"), "lost", problems)
        if not won:
            problems.append("no won code: add e.g. won: [WON]")

        all_codes = [s.code for s in stages] + list(won) + list(lost)
        dupes = sorted({c for c in all_codes if all_codes.count(c) > 1})
        if dupes:
            problems.append(f"duplicate status code(s) {dupes}: every code must be unique "
                            "across stages, won and lost")
        if ENTRY in all_codes:
            problems.append(f"status code {ENTRY!r} is reserved for leads entering the funnel in "
                            "transition tables; rename that stage")

        columns = data.get("columns") or {}
        if not isinstance(columns, Mapping):
            problems.append("'columns' must be a mapping like {lead_id: opportunity}")
            columns = {}
        else:
            bad = sorted(k for k in columns if k not in CANONICAL_COLUMNS and k not in (data.get("attributes") or []))
            if bad:
                problems.append(f"columns: unknown canonical column(s) {bad}; map one of "
                                f"{list(CANONICAL_COLUMNS)} (or an attribute) to your column name")
            for k, v in columns.items():
                if not isinstance(v, str):
                    problems.append(f"columns.{k} must be a column name string, got {v!r}")

        attributes = data.get("attributes") or []
        if isinstance(attributes, str):
            attributes = [attributes]
        if not all(isinstance(a, str) for a in attributes):
            problems.append(f"'attributes' must be a list of column names, got {attributes!r}")
            attributes = []

        stale = data.get("stale_after")
        if stale is not None and (not isinstance(stale, int) or isinstance(stale, bool) or stale < 1):
            problems.append(f"'stale_after' must be a whole number of months >= 1, got {stale!r}")
            stale = None

        value = data.get("value")
        if value is not None and not isinstance(value, str):
            problems.append(f"'value' must be a column name, got {value!r}")
            value = None

        if problems:
            raise SpecError(f"{source}: invalid funnel spec:\n  - " + "\n  - ".join(problems))
        spec = cls(stages=tuple(stages), won=tuple(won), lost=tuple(lost),
                   columns=dict(columns), attributes=tuple(attributes), value=value,
                   stale_after=stale)
        if len(stages) > MAX_STAGES:
            warnings.warn(f"{source}: the funnel has {len(stages)} open stages; more than "
                          f"{MAX_STAGES} stages tend to hide patterns. Consider merging stages.",
                          FunnelWarning, stacklevel=2)
        return spec

    @classmethod
    def from_yaml(cls, path: str | Path) -> "FunnelSpec":
        """Read and validate a spec from a YAML file."""
        path = Path(path)
        if not path.exists():
            raise SpecError(f"{path}: spec file not found. Pass the path of a YAML file with "
                            "'stages', 'won' and 'lost'.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: not valid YAML: {exc}") from exc
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
            "stages": [{"code": s.code, "name": s.name} for s in self.stages],
            "won": list(self.won),
            "lost": list(self.lost),
        }
        if self.columns:
            out["columns"] = dict(self.columns)
        if self.attributes:
            out["attributes"] = list(self.attributes)
        if self.value:
            out["value"] = self.value
        if self.stale_after:
            out["stale_after"] = self.stale_after
        return out

    def with_columns(self, mapping: Mapping[str, str]) -> "FunnelSpec":
        """Return a copy whose column mapping is updated by ``mapping``."""
        cols = dict(self.columns)
        cols.update(mapping)
        d = self.to_dict()
        d["columns"] = cols
        return FunnelSpec.from_dict(d)

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
        """Every status code the data may contain."""
        return self.codes + self.won + self.lost

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

    def rank(self) -> dict[str, int]:
        """Order of every status code: open stages 0..K-1, won K, lost K+1."""
        r = {c: i for i, c in enumerate(self.codes)}
        r.update({c: self.n_stages for c in self.won})
        r.update({c: self.n_stages + 1 for c in self.lost})
        return r

    def name_of(self, code: str) -> str:
        """Readable name of a stage code (the code itself for closing states)."""
        for s in self.stages:
            if s.code == code:
                return s.name
        return {WON: "Won", LOST: "Lost"}.get(code, code)


def _codes(raw: Any, key: str, problems: list[str]) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, Iterable):
        problems.append(f"'{key}' must be a list of status codes, got {raw!r}")
        return []
    out = []
    for c in raw:
        if not isinstance(c, str) or not c.strip():
            problems.append(f"'{key}' codes must be non-empty strings, got {c!r} "
                            f"(quote numbers in YAML: '{c}')")
        else:
            out.append(c.strip())
    return out
