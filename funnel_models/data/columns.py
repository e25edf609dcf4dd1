"""Which of the user's columns play which canonical role, and which input shape that makes.

``spec.columns`` maps canonical names (``lead_id``, ``stage``, ``entered_at``, ``month``,
``count``, ``value`` or an attribute name) to the user's column names; a ``mapping``
argument (CLI ``--map``) updates it. An unmapped canonical column is looked up under its
own name, and if that is absent, case-insensitively.

Examples
--------
>>> from funnel_models.data.spec import FunnelSpec
>>> spec = FunnelSpec.from_dict({"stages": ["NEW"], "won": ["WON"]})
>>> detect_shape(["opportunity", "stage", "changed_on"], spec,
...              {"lead_id": "opportunity", "entered_at": "changed_on"})
'history'
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from ..errors import FunnelDataError
from .messages import did_you_mean
from .spec import CANONICAL_COLUMNS, FunnelSpec

__all__ = ["Shape", "InputShape", "SHAPES", "INPUT_SHAPES", "NEEDS", "resolve_mapping", "find_column",
           "locate_column", "missing_mapped", "select_columns", "detect_shape"]

Shape = Literal["history", "snapshots", "counts"]
InputShape = Literal["history", "snapshots", "counts", "opportunities"]
#: The canonical (stored) shapes.
SHAPES: tuple[str, ...] = ("history", "snapshots", "counts")
#: The shapes a file may have: the canonical ones, and one row per deal (read as history).
INPUT_SHAPES: tuple[str, ...] = SHAPES + ("opportunities",)
#: Canonical columns each canonical shape needs.
NEEDS: dict[str, tuple[str, ...]] = {
    "history": ("lead_id", "stage", "entered_at"),
    "snapshots": ("month", "lead_id", "stage"),
    "counts": ("month", "stage", "count"),
}


def resolve_mapping(spec: FunnelSpec, mapping: Mapping[str, str] | None = None) -> dict[str, str]:
    """Merge ``spec.columns`` with ``mapping`` and check the keys.

    Parameters
    ----------
    spec : FunnelSpec
        The funnel spec.
    mapping : mapping of str to str, optional
        Canonical name (``lead_id``, ``stage``, ``entered_at``, ``month``, ``count``,
        ``value`` or an attribute) -> the user's column name. Overrides ``spec.columns``.

    Returns
    -------
    dict
        The explicit mapping (canonical -> user column).

    Raises
    ------
    FunnelDataError
        If a key is not a canonical column or attribute, or a value is not a string.
    """
    out = dict(spec.columns)
    if spec.value and "value" not in out:
        out["value"] = spec.value
    if mapping:
        allowed = list(CANONICAL_COLUMNS) + list(spec.attributes)
        for key, col in mapping.items():
            if key not in allowed:
                raise FunnelDataError(
                    f"column mapping: unknown key {key!r}.{did_you_mean(key, allowed)} The keys are the "
                    f"canonical columns {list(CANONICAL_COLUMNS)} or an attribute "
                    f"{list(spec.attributes)}; the values are your column names, e.g. "
                    "lead_id=opportunity (CLI: --map lead_id=opportunity).")
            if not isinstance(col, str) or not col.strip():
                raise FunnelDataError(f"column mapping: {key} must map to a column name, got {col!r}. "
                                      "Fix: write --map KEY=COLUMN.")
            out[key] = col.strip()
    return out


def find_column(columns: Sequence[str], name: str) -> str | None:
    """``name`` if it is a column, else the one column equal to it ignoring case and
    surrounding blanks, else None."""
    if name in columns:
        return name
    folded = [c for c in columns if c.strip().casefold() == name.strip().casefold()]
    return folded[0] if len(folded) == 1 else None


def locate_column(columns: Sequence[str], explicit: Mapping[str, str], canon: str) -> tuple[str | None, bool]:
    """Where canonical column ``canon`` is: ``(user column or None, whether the mapping
    named it explicitly)``."""
    if canon in explicit:
        return find_column(columns, explicit[canon]), True
    return find_column(columns, canon), False


def missing_mapped(label: str, canon: str, wanted: str, columns: Sequence[str], where: str) -> FunnelDataError:
    """The error for a mapping that names a column the source does not have.

    Parameters
    ----------
    label : str
        The source, as messages name it.
    canon : str
        The canonical column (or layout key) being mapped.
    wanted : str
        The column the mapping names.
    columns : sequence of str
        The source's columns.
    where : str
        Where the mapping came from (``"spec 'columns'"``, ``"mapping argument / --map"``).
    """
    return FunnelDataError(
        f"{label}: the column mapping ({where}) maps {canon} to column {wanted!r}, which does not "
        f"exist.{did_you_mean(wanted, columns)} Available columns: {list(columns)}. Fix: correct the "
        f"mapping, e.g. --map {canon}=<one of those columns>.")


def select_columns(label: str, columns: Sequence[str], spec: FunnelSpec, mapping: Mapping[str, str] | None,
                   required: Sequence[str], optional: Sequence[str]) -> dict[str, str]:
    """Find the user's column of every required, optional and attribute column.

    Returns
    -------
    dict
        Canonical name -> user column, for those present.

    Raises
    ------
    FunnelDataError
        A required column or attribute is missing, or the mapping names an absent column;
        the message lists the available columns, the closest match and the fix.
    """
    explicit = resolve_mapping(spec, mapping)
    out: dict[str, str] = {}
    missing: list[str] = []
    for canon in list(required) + list(optional) + list(spec.attributes):
        col, was_explicit = locate_column(columns, explicit, canon)
        if col is not None:
            out[canon] = col
        elif was_explicit:
            where = "mapping argument / --map" if mapping and canon in mapping else "spec 'columns'"
            if canon == "value" and spec.value and not (mapping and "value" in mapping) \
                    and "value" not in spec.columns:
                where = "spec 'value'"
            raise missing_mapped(label, canon, explicit[canon], columns, where)
        elif canon in required or canon in spec.attributes:
            missing.append(canon)
    if missing:
        parts = []
        for m in missing:
            near = did_you_mean(m, columns)
            kind = "attribute " if m in spec.attributes and m not in required else ""
            parts.append(f"{kind}{m!r}" + (f" ({near.strip()})" if near else ""))
        fix = ("map them to your column names in the spec's 'columns' or with --map "
               + ",".join(f"{m}=<column>" for m in missing))
        if any(m in spec.attributes for m in missing):
            fix += ", or remove missing attributes from the spec's 'attributes'"
        raise FunnelDataError(f"{label}: missing column(s) {', '.join(parts)}. Available columns: "
                              f"{list(columns)}. Fix: {fix}.")
    return out


def _fits(have: set[str], month_given: bool) -> bool:
    month_ok = "month" in have or month_given
    return bool(({"count", "stage"} <= have and month_ok) or {"lead_id", "stage", "entered_at"} <= have
                or ({"lead_id", "stage"} <= have and month_ok))


def _present(cols: list[str], explicit: Mapping[str, str], mapping: Mapping[str, str] | None,
             label: str) -> dict[str, str]:
    present: dict[str, str] = {}
    for canon in ("lead_id", "stage", "entered_at", "month", "count"):
        col, was_explicit = locate_column(cols, explicit, canon)
        if col is not None:
            present[canon] = col
        elif was_explicit and mapping and canon in mapping:
            raise missing_mapped(label, canon, explicit[canon], cols, "mapping argument / --map")
    return present


def _shape_error(label: str, cols: list[str], present: Mapping[str, str], explicit: Mapping[str, str],
                 month_given: bool) -> FunnelDataError:
    lines = []
    for shape, needs in NEEDS.items():
        miss = [n for n in needs if n not in present and not (n == "month" and month_given)]
        hints = []
        for n in miss:
            wanted = explicit.get(n, n)
            near = difflib.get_close_matches(wanted, cols, n=1, cutoff=0.5)
            hints.append(f"{n}" + (f" (mapped to {wanted!r})" if n in explicit else "")
                         + (f" -- closest column {near[0]!r}" if near else ""))
        lines.append(f"{shape} needs {list(needs)}, missing: {', '.join(hints)}")
    return FunnelDataError(
        f"{label}: cannot tell the input shape from its columns {cols}:\n  - " + "\n  - ".join(lines)
        + "\nFix: rename the columns, or map them in the spec's 'columns' or with "
          "--map lead_id=<col>,stage=<col>,entered_at=<col> (snapshots and counts may use "
          "--month YYYY-MM instead of a month column); 'funnel init FILE' writes a spec that fits "
          "the file.")


def detect_shape(columns: Sequence[str], spec: FunnelSpec | Mapping[str, Any] | str | Path,
                 mapping: Mapping[str, str] | None = None, *, month_given: bool = False,
                 source: str | None = None) -> InputShape:
    """Tell the input shape from its column names, after the column mapping.

    Rules, in order: a spec with milestone date columns means **opportunities** (one row
    per deal); a ``count`` column means **counts**; an ``entered_at`` column (with
    ``lead_id`` and ``stage``) means **history**; ``lead_id`` + ``stage`` + ``month``
    (or ``month_given``) means **snapshots**.

    Parameters
    ----------
    columns : sequence of str
        The user's column names.
    spec : FunnelSpec, mapping or path
        The funnel spec (its ``columns`` mapping is applied).
    mapping : mapping, optional
        Extra column mapping, overriding ``spec.columns``.
    month_given : bool
        A month is supplied separately (e.g. ``--month``), so snapshots and counts need
        no ``month`` column.
    source : str, optional
        Name of the source for the error message.

    Returns
    -------
    {"history", "snapshots", "counts", "opportunities"}

    Raises
    ------
    FunnelDataError
        If no shape fits, naming the missing columns and the closest existing ones.
    """
    spec = FunnelSpec.load(spec)
    if spec.is_opportunities:
        return "opportunities"
    cols = [str(c) for c in columns]
    explicit = resolve_mapping(spec, mapping)
    label = source or "input"
    present = _present(cols, explicit, mapping, label)
    mapped_missing = [c for c in ("lead_id", "stage", "entered_at", "month", "count")
                      if c in explicit and c not in present]
    if present and not _fits(set(present), month_given) and mapped_missing \
            and _fits(set(present) | set(mapped_missing), month_given):
        # the explicit mapping to absent columns is what keeps the shape from fitting
        raise missing_mapped(label, mapped_missing[0], explicit[mapped_missing[0]], cols, "spec 'columns'")
    has_month = "month" in present or month_given
    if "count" in present and "stage" in present and has_month:
        return "counts"
    if all(c in present for c in ("lead_id", "stage", "entered_at")):
        return "history"
    if "lead_id" in present and "stage" in present and has_month:
        return "snapshots"
    raise _shape_error(label, cols, present, explicit, month_given)
