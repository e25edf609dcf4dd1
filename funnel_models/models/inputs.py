"""What a model is fitted on: transition counts plus won deal values.

:func:`prepare` accepts stage history, monthly snapshots or a transitions table and
returns a :class:`FunnelData`; models call it so users can pass whichever they have.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import derive
from ..data.dates import through_cutoff
from ..errors import FunnelDataError
from ..data.spec import LOST, WON, FunnelSpec

__all__ = ["FunnelData", "prepare", "from_transitions", "deal_value_draws", "outcomes_recorded_from", "leads_recorded_until",
           "RECORDED_SHARE"]

#: A month records outcomes when its closes reach this share of the median month with closes.
RECORDED_SHARE = 0.2


@dataclass(frozen=True)
class FunnelData:
    """Transition counts and won deal values, ready for a model.

    Attributes
    ----------
    transitions : DataFrame
        ``month, from_stage, to_stage, n`` + segment columns.
    won_values : DataFrame
        One row per won lead with a deal value: ``value`` + segment columns.
    recorded_from : Timestamp or None
        When the data record outcomes only from this month, the months before it are
        left out of ``transitions`` (:func:`outcomes_recorded_from`).
    """

    transitions: pd.DataFrame
    won_values: pd.DataFrame
    recorded_from: pd.Timestamp | None = None

    def fingerprint(self) -> str:
        """A stable hash of the data (used in the fit cache key)."""
        h = hashlib.sha256()
        t = self.transitions.sort_values(list(self.transitions.columns)).reset_index(drop=True)
        h.update(pd.util.hash_pandas_object(t.astype(str), index=False).to_numpy().tobytes())
        if len(self.won_values):
            v = self.won_values.sort_values(list(self.won_values.columns)).reset_index(drop=True)
            h.update(pd.util.hash_pandas_object(v.astype(str), index=False).to_numpy().tobytes())
        return h.hexdigest()[:16]


def prepare(
    data: pd.DataFrame | FunnelData,
    spec: FunnelSpec,
    *,
    factors: Sequence[str] = (),
    cutoff: str | pd.Timestamp | None = None,
) -> FunnelData:
    """Turn history, snapshots or transitions into :class:`FunnelData`.

    The input shape is recognised by its columns: ``entered_at`` (stage history),
    ``month`` + ``lead_id`` (snapshots) or ``from_stage`` + ``to_stage`` + ``n``
    (transitions).
    """
    if isinstance(data, FunnelData):
        return data
    if hasattr(data, "snapshots") and hasattr(data, "spec"):    # workflow.LoadedData
        data = data.snapshots()
    if not isinstance(data, pd.DataFrame):
        raise FunnelDataError(f"fit data must be a DataFrame of stage history, snapshots or "
                              f"transitions, got {type(data).__name__}")
    cols = set(data.columns)
    if {"from_stage", "to_stage", "n"} <= cols:
        tr = through_cutoff(data, "month", cutoff) if cutoff is not None else data
        return _recorded(tr.reset_index(drop=True), pd.DataFrame(columns=["value", *factors]))
    if "entered_at" in cols:
        if cutoff is not None:
            data = through_cutoff(data, "entered_at", cutoff)
        snaps = derive.snapshots_from_history(data, spec, cutoff=cutoff)
    elif {"month", "lead_id", "stage"} <= cols:
        snaps = through_cutoff(data, "month", cutoff)
    else:
        raise FunnelDataError(f"fit data has columns {sorted(cols)}: expected stage history "
                              "(lead_id, stage, entered_at), snapshots (month, lead_id, stage) or "
                              "transitions (month, from_stage, to_stage, n)")
    tr = derive.transitions(snaps, spec, by=list(factors))
    won_values = pd.DataFrame(columns=["value", *factors])
    if "value" in snaps.columns:
        won_codes = set(spec.won) | {WON}
        w = snaps[snaps["stage"].isin(won_codes)].drop_duplicates("lead_id")
        won_values = w[["value", *factors]].dropna(subset=["value"]).reset_index(drop=True)
    return _recorded(tr, won_values)


def from_transitions(transitions: pd.DataFrame, won_values: pd.DataFrame) -> FunnelData:
    """:class:`FunnelData` from transition counts and won deal values computed elsewhere (a
    warehouse, :mod:`funnel_models.data.warehouse`), with the same month rule as :func:`prepare`.

    Parameters
    ----------
    transitions : DataFrame
        ``month, from_stage, to_stage, age, n`` + segment columns.
    won_values : DataFrame
        ``value`` + segment columns, one row per won lead with a deal value.
    """
    return _recorded(transitions.reset_index(drop=True), won_values)


def _recorded(transitions: pd.DataFrame, won_values: pd.DataFrame) -> FunnelData:
    """Leave out the months before outcomes are recorded (see :func:`outcomes_recorded_from`)."""
    start = outcomes_recorded_from(transitions) if len(transitions) else None
    if start is not None:
        transitions = transitions[pd.to_datetime(transitions["month"]) >= start].reset_index(drop=True)
    return FunnelData(transitions, won_values, start)


def deal_value_draws(
    won_values: pd.DataFrame,
    n_draws: int,
    *,
    segment: Mapping[str, str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Posterior draws of the mean deal value (normal approximation of the sample mean).

    Falls back to all won deals when the segment has fewer than 5 valued wins; NaN when
    there are no deal values at all.
    """
    v = won_values
    for f, level in (segment or {}).items():
        if f in v.columns:
            sub = v[v[f] == level]
            if len(sub) >= 5:
                v = sub
    vals = pd.to_numeric(v["value"], errors="coerce").dropna().to_numpy() if "value" in v else np.array([])
    if vals.size == 0:
        return np.full(n_draws, np.nan)
    rng = np.random.default_rng(seed)
    se = vals.std(ddof=1) / np.sqrt(vals.size) if vals.size > 1 else 0.0
    return np.maximum(vals.mean() + se * rng.standard_normal(n_draws), 0.0)


def outcomes_recorded_from(transitions: pd.DataFrame, *, min_quiet_months: int = 3) -> pd.Timestamp | None:
    """The month from which the data record outcomes, when earlier months clearly lack them.

    Some exports only hold deals closed after a date (the Olist closed-deals file starts
    in 2017-12 while leads arrive from 2017-06): their first months show leads but no
    wins or losses at all, which a model would read as "nobody closes". When at least
    ``min_quiet_months`` months with open leads have no closing move while later months
    average at least 5 closes, the first month with a close is returned (earlier months
    are then left out of the fit and the report says so); otherwise None. A month counts as
    recording outcomes when its closes reach :data:`RECORDED_SHARE` of the typical (median)
    month with closes, so a trickle of early closes does not count.
    """
    tr = transitions.assign(month=pd.to_datetime(transitions["month"]))
    closes = tr[tr["to_stage"].isin([WON, LOST])].groupby("month")["n"].sum()
    active = tr[tr["from_stage"] != "ENTRY"].groupby("month")["n"].sum()
    if closes.empty or active.empty:
        return None
    typical = float(closes[closes > 0].median())
    recorded = closes[closes >= RECORDED_SHARE * typical]
    first_close = recorded.index.min()
    quiet = active[active.index < first_close]
    later = closes[closes.index >= first_close]
    if len(quiet) >= min_quiet_months and later.mean() >= 5:
        return pd.Timestamp(first_close)
    return None


def leads_recorded_until(transitions: pd.DataFrame, *, min_quiet_months: int = 2) -> pd.Timestamp | None:
    """The last month with new leads, when the data clearly stop recording new leads after it.

    Some exports keep recording outcomes after their lead list ends (the Olist leads file
    ends in 2018-05, its closed deals run to 2018-11). When at least ``min_quiet_months``
    later months have moves of open leads but no new lead at all, while the months with new
    leads averaged at least 20, the last month with new leads is returned; otherwise None.
    A forecast of new leads for the months after it has nothing to be checked against.
    """
    tr = transitions.assign(month=pd.to_datetime(transitions["month"]))
    new = tr[tr["from_stage"] == "ENTRY"].groupby("month")["n"].sum()
    active = tr[tr["from_stage"] != "ENTRY"].groupby("month")["n"].sum()
    if new.empty:
        return None
    last = new.index.max()
    after = active[active.index > last]
    if len(after) >= min_quiet_months and new.mean() >= 20:
        return pd.Timestamp(last)
    return None
