"""The result of an event-log funnel: counts, conversion, timing, users, trend, bridge.

:class:`FunnelResult` holds one row per user who entered the funnel (with
``attribution="all"``: per user and breakdown value) with the time of the event that filled
each step (``NaT`` when the step was not reached). Everything else is derived from that
table in pandas, so the result is cheap to slice after the SQL engine has run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.spec import LOST, WON, FunnelSpec
from ..errors import FunnelDataError
from . import insights
from .query import NONE_LABEL, FunnelQuery, Step, parse_duration
from .source import SourceRef

__all__ = ["FunnelResult", "NONE_LABEL", "PERIODS"]

#: Accepted ``period`` values of :meth:`FunnelResult.trend` and their pandas frequencies.
PERIODS = {"day": "D", "week": "W-SUN", "month": "M"}


@dataclass(eq=False)
class FunnelResult:
    """Per-user funnel outcome plus the derived tables. Plain data: it pickles.

    Built by :func:`funnel_models.events.funnel`; not meant to be constructed by hand.
    Computing :attr:`skipped`, :meth:`journey` or :meth:`correlation` re-runs a query on the
    source named by :attr:`source`.

    Attributes
    ----------
    users : DataFrame
        ``user_id``, ``breakdown`` (``"(none)"`` without a breakdown), one timestamp column
        per step (named by the step, ``NaT`` if not reached), then carried property columns.
        Users removed by ``exclusions`` are not in it. Row order is arbitrary.
    query : FunnelQuery
        The validated funnel definition.
    source : SourceRef
        The name of the event source (path, URL + table, or the DataFrame).
    data_start, data_end : Timestamp
        First and last event time the engine considered (after the filters).
    n_events : int
        Number of events the funnel engine considered (matching a step or exclusion;
        every event for strict funnels).
    n_excluded : int
        Users whose every attempt was removed by ``exclusions``.
    """

    users: pd.DataFrame
    query: FunnelQuery
    source: SourceRef = field(repr=False)
    data_start: Any = None
    data_end: Any = None
    n_events: int = 0
    n_excluded: int = 0

    # ------------------------------------------------------------------ settings
    @property
    def steps(self) -> list[str]:
        """Step names in order."""
        return list(self.query.names)

    @property
    def step_defs(self) -> list[Step]:
        """The :class:`~funnel_models.events.query.Step` objects."""
        return list(self.query.steps)

    @property
    def order(self) -> str:
        """``"ordered"``, ``"strict"`` or ``"unordered"``."""
        return self.query.order

    @property
    def window(self) -> timedelta:
        """The conversion window."""
        return self.query.window

    @property
    def breakdown(self) -> str | None:
        """The breakdown column, if any."""
        return self.query.breakdown

    @property
    def attribution(self) -> str:
        """The breakdown attribution."""
        return self.query.attribution

    @property
    def optional_steps(self) -> tuple[int, ...]:
        """0-based optional step indices."""
        return self.query.optional

    @property
    def properties(self) -> tuple[str, ...]:
        """Property columns carried per user."""
        return self.query.properties

    # ------------------------------------------------------------------ helpers
    def __repr__(self) -> str:
        c = self.counts
        return (f"FunnelResult(order={self.order!r}, window={self.window}, "
                f"breakdown={self.breakdown!r}, attribution={self.attribution!r})\n{c.to_string()}")

    def _idx(self, step: int | str) -> int:
        if isinstance(step, str):
            if step not in self.steps:
                raise FunnelDataError(f"unknown step {step!r}; the steps are {self.steps}.")
            return self.steps.index(step)
        if isinstance(step, (int, np.integer)) and -len(self.steps) <= step < len(self.steps):
            return int(step) % len(self.steps)
        raise FunnelDataError(f"step={step!r}: use a step name or a 0-based index below "
                              f"{len(self.steps)}.")

    def _parent(self, k: int) -> int | None:
        """The step a step converts from: the previous required step."""
        prev = [r for r in range(k) if r not in self.optional_steps]
        return prev[-1] if prev else None

    def _reached(self, k: int) -> pd.Series:
        return self.users[self.steps[k]].notna()

    # ------------------------------------------------------------------ counts
    @property
    def counts(self) -> pd.Series | pd.DataFrame:
        """Unique users reaching each step.

        A Series indexed by step name; with a breakdown a DataFrame with one row per
        breakdown value and one column per step.
        """
        reached = self.users[self.steps].notna()
        if self.breakdown is None:
            s = reached.sum().astype("int64")
            s.index.name = "step"
            return s.rename("users")
        out = reached.groupby(self.users["breakdown"]).sum().astype("int64")
        out.index.name = self.breakdown
        out.columns.name = "step"
        return out

    @property
    def conversion(self) -> pd.DataFrame:
        """Conversion and drop-off per step.

        Columns: (breakdown value,) ``step``, ``count``, ``conversion_from_previous``,
        ``conversion_from_first``, ``dropped`` (users at the previous required step who did
        not reach this one). Rates are ``NaN`` when the denominator is 0.
        """
        c = self.counts
        frames = []
        table = c.to_frame().T if isinstance(c, pd.Series) else c
        for key, row in table.iterrows():
            rows = []
            first = row.iloc[0]
            for k, name in enumerate(self.steps):
                par = self._parent(k)
                prev = row.iloc[par] if par is not None else row.iloc[k]
                cnt = row.iloc[k]
                rows.append({
                    "step": name, "count": int(cnt),
                    "conversion_from_previous": cnt / prev if prev else np.nan,
                    "conversion_from_first": cnt / first if first else np.nan,
                    "dropped": int(prev - cnt) if par is not None else 0,
                })
            f = pd.DataFrame(rows)
            if self.breakdown is not None:
                f.insert(0, self.breakdown, key)
            frames.append(f)
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ timing
    def _durations(self, k: int, from_step: int | None = None) -> pd.Series:
        par = self._parent(k) if from_step is None else from_step
        if par is None:
            return pd.Series([], dtype="float64")
        a, b = self.users[self.steps[par]], self.users[self.steps[k]]
        ok = a.notna() & b.notna()
        return (b[ok] - a[ok]).dt.total_seconds()

    @property
    def conversion_times(self) -> pd.DataFrame:
        """Seconds from the previous (required) step to each step, among converters.

        Index: step names from step 1 on; columns ``mean``, ``median``, ``count``.
        """
        rows = []
        for k in range(1, len(self.steps)):
            d = self._durations(k)
            rows.append({"step": self.steps[k], "mean": d.mean() if len(d) else np.nan,
                         "median": d.median() if len(d) else np.nan, "count": int(len(d))})
        return pd.DataFrame(rows, columns=["step", "mean", "median", "count"]).set_index("step")

    def time_to_convert(self, to_step: int | str = -1, from_step: int | str = 0, *,
                        bins: int | Sequence[float] = 20, log: bool = False) -> pd.DataFrame:
        """Histogram of seconds from ``from_step`` to ``to_step`` among users reaching both.

        Parameters
        ----------
        to_step, from_step : int or str
            Step indices (0-based) or names; default first to last step.
        bins : int or sequence of float
            Number of bins or bin edges in seconds.
        log : bool
            Use log-spaced bins (durations of 0 s go in the first bin).

        Returns
        -------
        DataFrame
            ``bin_start``, ``bin_end`` (seconds) and ``users``.
        """
        a, b = self._idx(from_step), self._idx(to_step)
        if b <= a:
            raise FunnelDataError(f"time_to_convert: to_step ({b}) must come after from_step ({a}).")
        d = self._durations(b, from_step=a).to_numpy()
        if isinstance(bins, (int, np.integer)) and log and len(d):
            lo = max(d[d > 0].min() if (d > 0).any() else 1.0, 1.0)
            hi = max(d.max(), lo * 10)
            edges = np.concatenate([[0.0], np.geomspace(lo, hi, int(bins))])
        else:
            edges = bins if len(d) or not isinstance(bins, (int, np.integer)) else np.linspace(0, 1, int(bins) + 1)
        counts, edges = np.histogram(d, bins=edges)
        return pd.DataFrame({"bin_start": edges[:-1], "bin_end": edges[1:], "users": counts})

    # ------------------------------------------------------------------ users
    def _select(self, mask: pd.Series, breakdown_value: Any) -> list[str]:
        if breakdown_value is not None:
            mask = mask & (self.users["breakdown"] == str(breakdown_value))
        return sorted(set(self.users.loc[mask, "user_id"]))

    def converted_users(self, step: int | str, breakdown_value: Any = None) -> list[str]:
        """Ids of users who reached ``step`` (sorted)."""
        return self._select(self._reached(self._idx(step)), breakdown_value)

    def dropped_users(self, step: int | str, breakdown_value: Any = None) -> list[str]:
        """Ids of users who reached the previous required step but not ``step``.

        As in PostHog, users "dropped off at step k" completed step k-1 and not step k.
        """
        k = self._idx(step)
        par = self._parent(k)
        if par is None:
            raise FunnelDataError("dropped_users(0): nobody drops off before the first step; "
                                  "use a step index >= 1.")
        return self._select(self._reached(par) & ~self._reached(k), breakdown_value)

    def journey(self, user: Any) -> pd.DataFrame:
        """Every event of one user (no filters applied), sorted by time, read from the source."""
        return insights.journey(self.source, self.query, user)

    # ------------------------------------------------------------------ trend
    def trend(self, period: str = "week", to_step: int | str = -1) -> pd.DataFrame:
        """Conversion by entry period (the time of each user's step-0 event).

        Parameters
        ----------
        period : {"day", "week", "month"}
        to_step : int or str
            The conversion target, default the last step.

        Returns
        -------
        DataFrame
            ``period`` (period start), (breakdown,) ``entered``, ``converted``,
            ``conversion``.
        """
        if period not in PERIODS:
            raise FunnelDataError(f"period={period!r} is unknown: use one of {list(PERIODS)}.")
        k = self._idx(to_step)
        t0 = self.users[self.steps[0]]
        per = t0.dt.to_period(PERIODS[period]).dt.start_time.astype("datetime64[ns]")
        df = pd.DataFrame({"period": per, "entered": 1,
                           "converted": self._reached(k).astype("int64")})
        keys = ["period"]
        if self.breakdown is not None:
            df[self.breakdown] = self.users["breakdown"].to_numpy()
            keys.append(self.breakdown)
        out = df.groupby(keys, sort=True)[["entered", "converted"]].sum().reset_index()
        out["conversion"] = out["converted"] / out["entered"]
        return out

    # ------------------------------------------------------------------ open funnel
    @property
    def skipped(self) -> pd.DataFrame:
        """Open-funnel view: users doing a later step without an earlier one.

        Columns: ``step``, ``users_did_step`` (users with any event matching the step in
        the time frame, in or out of the funnel), ``reached_in_funnel`` (unique users
        counted at the step), ``skipped_previous`` (did the step but never the previous
        one), ``skipped_first`` (did the step but never step 0), ``share_skipped_previous``.
        Re-runs a query on the source.
        """
        out = insights.skipped(self.source, self.query)
        reached = self.users[self.steps].notna()
        out.insert(2, "reached_in_funnel",
                   [int(self.users.loc[reached[s], "user_id"].nunique()) for s in self.steps])
        with np.errstate(invalid="ignore", divide="ignore"):
            out["share_skipped_previous"] = np.where(
                out["users_did_step"] > 0, out["skipped_previous"] / out["users_did_step"].clip(lower=1),
                np.nan)
        return out

    def correlation(self, properties: Sequence[str] = (), *, to_step: int | str = -1,
                    min_users: int = 1) -> pd.DataFrame:
        """Which events and property values go with converting rather than dropping off.

        See :func:`funnel_models.events.insights.correlation`; re-runs a query on the source.
        """
        return insights.correlation(self, properties, to_step=to_step, min_users=min_users)

    # ------------------------------------------------------------------ bridge
    def _codes(self, stage_codes: Sequence[str] | Mapping[str, str] | None) -> list[str]:
        if stage_codes is None:
            return list(self.steps)
        if isinstance(stage_codes, Mapping):
            return [str(stage_codes.get(s, s)) for s in self.steps]
        codes = [str(c) for c in stage_codes]
        if len(codes) != len(self.steps):
            raise FunnelDataError(f"stage_codes has {len(codes)} codes for {len(self.steps)} "
                                  f"steps {self.steps}; give one code per step or a dict.")
        return codes

    def _won(self, won_step: int | str | None) -> int:
        w = len(self.steps) - 1 if won_step is None else self._idx(won_step)
        if w == 0:
            raise FunnelDataError("won_step=0 leaves no open stage; pick a later step.")
        return w

    def _attr_cols(self) -> list[str]:
        return ([self.breakdown] if self.breakdown else []) + list(self.properties)

    def to_stage_history(self, stage_codes: Sequence[str] | Mapping[str, str] | None = None,
                         won_step: int | str | None = None,
                         lost_after: str | timedelta | None = None) -> pd.DataFrame:
        """Canonical stage history: one row per user and step reached.

        Parameters
        ----------
        stage_codes : list or dict, optional
            Stage code per step (default: the step names).
        won_step : int or str, optional
            Reaching this step maps to ``"WON"`` (default: the last step). Later steps are
            not reported.
        lost_after : str or timedelta, optional
            Users who have not won and made no progress for this long before the end of
            the data get a ``"LOST"`` row at their last step time + ``lost_after``.
            Without it, such users are left open.

        Returns
        -------
        DataFrame
            ``lead_id`` (str), ``stage`` (str), ``entered_at`` (datetime64[ns]) and the
            breakdown/property attribute columns (str), sorted by lead and time.
        """
        if self.breakdown is not None and self.attribution == "all":
            raise FunnelDataError("to_stage_history needs one row per user, but "
                                  "attribution='all' may put a user under several breakdown "
                                  "values; use 'first_touch', 'last_touch' or 'step:N'.")
        codes = self._codes(stage_codes)
        w = self._won(won_step)
        lost_td = parse_duration(lost_after, what="lost_after") if lost_after is not None else None
        attrs = self._attr_cols()
        u = self.users
        base = pd.DataFrame({"lead_id": u["user_id"].astype(str)})
        for a in attrs:
            base[a] = (u["breakdown"] if a == self.breakdown else u[a]).astype(str).to_numpy()
        parts = []
        for k in range(w + 1):
            t = u[self.steps[k]]
            m = t.notna()
            p = base[m].copy()
            p["stage"] = WON if k == w else codes[k]
            p["entered_at"] = t[m].to_numpy()
            p["_k"] = k
            parts.append(p)
        if lost_td is not None and self.data_end is not None:
            times = u[self.steps[:w]]
            last = times.max(axis=1)
            open_ = u[self.steps[w]].isna() & last.notna()
            stale = open_ & (pd.Timestamp(self.data_end) - last >= lost_td)
            p = base[stale].copy()
            p["stage"] = LOST
            p["entered_at"] = (last[stale] + lost_td).to_numpy()
            p["_k"] = w + 1
            parts.append(p)
        out = pd.concat(parts, ignore_index=True)
        out = out.sort_values(["lead_id", "entered_at", "_k"], kind="stable").drop(columns="_k")
        out = out[["lead_id", "stage", "entered_at"] + attrs].reset_index(drop=True)
        out["lead_id"] = out["lead_id"].astype(str)
        out["stage"] = out["stage"].astype(str)
        out["entered_at"] = out["entered_at"].astype("datetime64[ns]")
        return out

    def spec(self, stage_codes: Sequence[str] | Mapping[str, str] | None = None,
             won_step: int | str | None = None) -> FunnelSpec:
        """The :class:`~funnel_models.data.spec.FunnelSpec` matching :meth:`to_stage_history`.

        Open stages are the steps before ``won_step`` (code, step name), ``won=["WON"]``,
        ``lost=["LOST"]``, attributes the breakdown/property columns carried.
        """
        codes = self._codes(stage_codes)
        w = self._won(won_step)
        return FunnelSpec.from_dict({
            "stages": [{"code": codes[k], "name": self.steps[k]} for k in range(w)],
            "won": [WON], "lost": [LOST], "attributes": self._attr_cols()},
            source="FunnelResult.spec()")
