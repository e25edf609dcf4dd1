"""The description of an event funnel: steps, order, window, exclusions, breakdown.

:class:`FunnelQuery` is a frozen dataclass holding everything :func:`funnel_models.events.funnel`
was asked for, validated once by :func:`build_query`. It knows nothing about engines or data
sources, so it can be pickled, compared and handed to any executor.

Validation follows PostHog's funnel rules (with the fix in the message): an exclusion may not
match the same events as a step it spans, unordered funnels only accept exclusions over the
whole funnel, optional steps are refused in unordered funnels and on step 0, and an optional
step may not be directly followed by an identical required step (the required step would take
every event and the optional one could never count).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["Step", "Exclusion", "FunnelQuery", "build_query", "parse_duration", "ORDERS",
           "ATTRIBUTIONS", "NONE_LABEL", "OTHER_LABEL"]

#: Accepted values of ``order``.
ORDERS = ("ordered", "strict", "unordered")
#: Accepted values of ``attribution`` (plus ``"step:N"``).
ATTRIBUTIONS = ("first_touch", "last_touch", "all", "step:N")
#: Label of a missing breakdown/property value.
NONE_LABEL = "(none)"
#: Label of the breakdown values beyond ``breakdown_limit``.
OTHER_LABEL = "Other"


@dataclass(frozen=True)
class Step:
    """One funnel step: an event name plus optional property filters.

    Parameters
    ----------
    event : str
        Event name, e.g. ``"pageview"``.
    where : dict, optional
        Property filters; a scalar means equality, a list/tuple/set means ``IN``, ``None``
        means the property is missing. Example: ``{"page": "/pricing"}``.
    name : str, optional
        Display name and stage code; defaults to the event name.

    Examples
    --------
    >>> Step("pageview", where={"page": "/pricing"}, name="Pricing").label
    'Pricing'
    """

    event: str
    where: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def label(self) -> str:
        """The step's display name."""
        return self.name if self.name else self.event

    def key(self) -> tuple:
        """Hashable identity of the matcher (event + filters), ignoring the name."""
        items = []
        for k, v in sorted(self.where.items()):
            if isinstance(v, (list, tuple, set, frozenset)):
                v = tuple(sorted(map(repr, v)))
            items.append((k, repr(v) if not isinstance(v, tuple) else v))
        return (self.event, tuple(items))

    def covers(self, other: "Step") -> bool:
        """True when every event matching ``other`` also matches this step.

        Same event name, and each of this step's filters appears identically in ``other``
        (PostHog's "equal or superset" rule).
        """
        mine, theirs = dict(self.key()[1]), dict(other.key()[1])
        return self.event == other.event and all(theirs.get(k) == v for k, v in mine.items())


@dataclass(frozen=True)
class Exclusion:
    """Attempts with ``step`` happening after funnel step ``start`` and before ``end`` are dropped."""

    step: Step
    start: int
    end: int


@dataclass(frozen=True)
class FunnelQuery:
    """A validated funnel definition (no data, no engine).

    Attributes
    ----------
    steps : tuple of Step
    names : tuple of str
        Unique display names (a repeated label gets ``" #2"``...).
    order : {"ordered", "strict", "unordered"}
    window : timedelta
    exclusions : tuple of Exclusion
    optional : tuple of int
        0-based optional step indices.
    breakdown : str or None
    attribution : str
        ``"first_touch"``, ``"last_touch"``, ``"all"`` or ``"step:N"``.
    breakdown_limit : int or None
        Keep this many breakdown values; the rest are reported as ``"Other"``.
    filters : tuple of (column, value)
    start, end : Timestamp or None
    properties : tuple of str
    user_col, time_col, event_col : str
    """

    steps: tuple[Step, ...]
    names: tuple[str, ...]
    order: str
    window: timedelta
    exclusions: tuple[Exclusion, ...] = ()
    optional: tuple[int, ...] = ()
    breakdown: str | None = None
    attribution: str = "first_touch"
    breakdown_limit: int | None = None
    filters: tuple[tuple[str, Any], ...] = ()
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    properties: tuple[str, ...] = ()
    user_col: str = "user_id"
    time_col: str = "timestamp"
    event_col: str = "event"

    @property
    def n(self) -> int:
        """Number of steps."""
        return len(self.steps)

    @property
    def window_us(self) -> int:
        """The conversion window in microseconds."""
        return self.window // timedelta(microseconds=1)

    @property
    def by_all(self) -> bool:
        """True when the funnel runs separately per breakdown value (``attribution="all"``)."""
        return self.breakdown is not None and self.attribution == "all"

    @property
    def attribution_step(self) -> int | None:
        """N of ``"step:N"`` attribution, else None."""
        return int(self.attribution[5:]) if self.attribution.startswith("step:") else None

    @property
    def required(self) -> list[int]:
        """Indices of the required steps."""
        return [k for k in range(self.n) if k not in self.optional]

    def columns(self) -> set[str]:
        """Property columns the query reads (besides user, time and event)."""
        cols = {k for k, _ in self.filters} | set(self.properties)
        if self.breakdown:
            cols.add(self.breakdown)
        for s in list(self.steps) + [e.step for e in self.exclusions]:
            cols |= set(s.where)
        return cols

    def replace_period(self, start: Any, end: Any) -> "FunnelQuery":
        """The same funnel over another time frame."""
        from dataclasses import replace

        return replace(self, start=_ts(start), end=_ts(end))


# ---------------------------------------------------------------------------- parsing
_UNITS = {
    "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800,
}
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")


def parse_duration(value: str | timedelta | pd.Timedelta, *, what: str = "window") -> timedelta:
    """Parse ``"14d"``, ``"1h"``, ``"5min"``, ``"30s"``, ``"2w"`` or a timedelta.

    ``"m"`` means minutes. Months are not accepted (their length varies): use days.

    Raises
    ------
    FunnelDataError
        If the value cannot be parsed or is not positive.

    Examples
    --------
    >>> parse_duration("2h")
    datetime.timedelta(seconds=7200)
    """
    if isinstance(value, pd.Timedelta):
        value = value.to_pytimedelta()
    if isinstance(value, timedelta):
        td = value
    elif isinstance(value, str):
        m = _DUR.match(value)
        if not m or m.group(2).lower() not in _UNITS:
            raise FunnelDataError(
                f"{what}={value!r} is not a duration: use a number and a unit such as "
                f"'14d', '1h', '5min', '30s' or '2w' (units: {sorted(set(_UNITS))}), or a "
                "datetime.timedelta.")
        td = timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    else:
        raise FunnelDataError(f"{what} must be a duration string like '14d' or a timedelta, "
                              f"got {type(value).__name__} {value!r}.")
    if td <= timedelta(0):
        raise FunnelDataError(f"{what}={value!r} must be positive, e.g. '14d'.")
    return td


def as_step(s: Any, i: int, what: str = "steps") -> Step:
    """A :class:`Step` from an event name, a Step or a dict (``what[i]`` names it in errors)."""
    if isinstance(s, Step):
        step = s
    elif isinstance(s, str):
        step = Step(event=s)
    elif isinstance(s, Mapping):
        unknown = set(s) - {"event", "where", "name"}
        if "event" not in s or unknown:
            raise FunnelDataError(
                f"{what}[{i}]={s!r}: a step dict needs 'event' and may have 'where' and "
                f"'name' (unknown keys: {sorted(unknown)}). Example: "
                "{'event': 'pageview', 'where': {'page': '/pricing'}, 'name': 'Pricing'}.")
        step = Step(event=s["event"], where=dict(s.get("where") or {}), name=s.get("name"))
    else:
        raise FunnelDataError(f"{what}[{i}]={s!r}: a step must be an event name, a Step or a "
                              "dict with 'event' (and optional 'where', 'name').")
    if not isinstance(step.event, str) or not step.event:
        raise FunnelDataError(f"{what}[{i}]: the event name must be a non-empty string, "
                              f"got {step.event!r}.")
    if not isinstance(step.where, Mapping):
        raise FunnelDataError(f"{what}[{i}].where must be a dict of property filters, "
                              f"got {step.where!r}.")
    return step


def _ts(v: Any) -> pd.Timestamp | None:
    if v is None:
        return None
    ts = pd.Timestamp(v)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts


def _unique_names(steps: Sequence[Step]) -> tuple[str, ...]:
    names: list[str] = []
    for s in steps:
        name, j = s.label, 2
        while name in names:
            name, j = f"{s.label} #{j}", j + 1
        names.append(name)
    return tuple(names)


def _check_attribution(attribution: Any, breakdown: Any, n: int, order: str) -> None:
    if not isinstance(attribution, str):
        raise FunnelDataError(f"attribution={attribution!r} must be a string.")
    if attribution.startswith("step:"):
        try:
            k = int(attribution.split(":", 1)[1])
        except ValueError:
            k = -1
        if not 0 <= k < n:
            raise FunnelDataError(f"attribution={attribution!r}: N must be a 0-based step "
                                  f"index between 0 and {n - 1}, e.g. 'step:1'.")
        if order == "unordered" and k != 0:
            raise FunnelDataError(f"attribution={attribution!r}: unordered funnels have no "
                                  "fixed step N; use 'step:0', 'first_touch' or 'last_touch'.")
    elif attribution not in ("first_touch", "last_touch", "all"):
        raise FunnelDataError(f"attribution={attribution!r} is unknown: use 'first_touch', "
                              "'last_touch', 'all' or 'step:N' (N a 0-based step index).")
    if breakdown is not None and not isinstance(breakdown, str):
        raise FunnelDataError(f"breakdown must be one column name, got {breakdown!r}.")


def _check_optional(optional: list[int], steps: Sequence[Step], order: str) -> None:
    n = len(steps)
    for i in optional:
        if not 0 <= i < n:
            raise FunnelDataError(f"optional_steps: index {i} is outside 0..{n - 1} (0-based).")
    if 0 in optional:
        raise FunnelDataError("optional_steps: step 0 cannot be optional; it starts the funnel.")
    if optional and order == "unordered":
        raise FunnelDataError("optional_steps are not allowed in unordered funnels (any step "
                              "may come first there); use order='ordered' or 'strict'.")
    for k in optional:
        if k + 1 < n and k + 1 not in optional and steps[k + 1].covers(steps[k]):
            raise FunnelDataError(
                f"optional_steps: step {k} ({steps[k].label!r}) is directly followed by the "
                f"identical required step {k + 1}, which would take every such event, so step "
                f"{k} could never count; remove it from optional_steps or make it differ.")


def _exclusions(exclusions: Sequence[Any], steps: Sequence[Step], optional: list[int],
                order: str) -> tuple[Exclusion, ...]:
    n = len(steps)
    out = []
    for j, ex in enumerate(exclusions or ()):
        if not isinstance(ex, (tuple, list)) or len(ex) != 3:
            raise FunnelDataError(f"exclusions[{j}]={ex!r}: use (event, from_step, to_step) "
                                  "with 0-based step indices, e.g. ('refund', 0, 2).")
        ev, a, b = ex
        step = as_step(ev, j, "exclusions")
        if not (isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer))
                and 0 <= a < b < n):
            raise FunnelDataError(f"exclusions[{j}]={ex!r}: need 0 <= from_step < to_step <= "
                                  f"{n - 1} (0-based step indices).")
        if a in optional or b in optional:
            raise FunnelDataError(f"exclusions[{j}]: from/to steps must be required steps, "
                                  f"but step {a if a in optional else b} is optional.")
        if order == "unordered" and (a, b) != (0, n - 1):
            raise FunnelDataError(f"exclusions[{j}]={ex!r}: unordered funnels only take "
                                  f"exclusions over the whole funnel, (event, 0, {n - 1}).")
        for k in range(int(a), int(b) + 1):
            if steps[k].covers(step):
                raise FunnelDataError(
                    f"exclusions[{j}]: {step.event!r} matches the same events as step {k} "
                    f"({steps[k].label!r}) inside the excluded range, so every attempt would be "
                    "excluded; exclude a different event or add a property filter to it.")
        out.append(Exclusion(step, int(a), int(b)))
    return tuple(out)


def build_query(steps: Any, *, window: Any = "14d", order: str = "ordered",
                breakdown: str | None = None, attribution: str = "first_touch",
                breakdown_limit: int | None = None, exclusions: Sequence[Any] = (),
                optional_steps: Sequence[int] = (), filters: Mapping[str, Any] | None = None,
                start: Any = None, end: Any = None, properties: Sequence[str] = (),
                user_col: str = "user_id", time_col: str = "timestamp",
                event_col: str = "event") -> FunnelQuery:
    """Validate the arguments of :func:`funnel_models.events.funnel` into a :class:`FunnelQuery`.

    Raises
    ------
    FunnelDataError
        With the fix, for empty or malformed steps, a bad window, order, attribution,
        breakdown limit, exclusion or optional step (see the module docstring).

    Examples
    --------
    >>> q = build_query(["visit", "signup"], window="7d", order="strict")
    >>> q.names, q.window_us
    (('visit', 'signup'), 604800000000)
    """
    if isinstance(steps, (str, Step, Mapping)):
        steps = [steps]
    steps = list(steps or [])
    if not steps:
        raise FunnelDataError("steps is empty: pass at least one step, e.g. "
                              "steps=['landing_view', 'signup', 'purchase'].")
    step_objs = tuple(as_step(s, i) for i, s in enumerate(steps))
    if order not in ORDERS:
        raise FunnelDataError(f"order={order!r} is unknown: use one of {list(ORDERS)}.")
    win = parse_duration(window, what="window")
    if win // timedelta(microseconds=1) <= 0:
        raise FunnelDataError(f"window={window!r} is shorter than a microsecond; use e.g. '1h'.")
    _check_attribution(attribution, breakdown, len(step_objs), order)
    if breakdown_limit is not None and (not isinstance(breakdown_limit, (int, np.integer))
                                        or breakdown_limit < 1):
        raise FunnelDataError(f"breakdown_limit={breakdown_limit!r} must be a positive integer.")
    optional = sorted(set(int(i) for i in optional_steps))
    _check_optional(optional, step_objs, order)
    excl = _exclusions(exclusions, step_objs, optional, order)
    names = _unique_names(step_objs)
    props = tuple(p for p in (properties or ()) if p != breakdown)
    for nm in names:
        if nm in {"user_id", "breakdown", *props}:
            raise FunnelDataError(f"step name {nm!r} clashes with a result column; give the "
                                  "step another name, e.g. Step(event, name='...').")
    return FunnelQuery(
        steps=step_objs, names=names, order=order, window=win, exclusions=excl,
        optional=tuple(optional), breakdown=breakdown, attribution=attribution,
        breakdown_limit=None if breakdown_limit is None else int(breakdown_limit),
        filters=tuple((filters or {}).items()), start=_ts(start), end=_ts(end),
        properties=props, user_col=user_col, time_col=time_col, event_col=event_col)
