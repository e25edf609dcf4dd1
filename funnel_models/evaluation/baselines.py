"""Baselines of the backtest: what a team would forecast without the model.

All are computed from the training data of a window only.

``trailing3``
    ``lag`` = the median number of whole months from a lead's entry month to its win month,
    over the leads won by the cut-off (rounded half up; right-censoring makes it
    short-biased, as in practice). ``rate`` = wins in the last 3 months up to the cut-off
    divided by the new leads ``lag`` months before each of them. Forecast
    ``wins(t) = rate * leads(t - lag)``, with ``leads`` the new leads per month (training
    months, then the future leads the mode gives: realised, or the trailing 3-month mean).
``last_month``
    The same with the last month only.
``weighted_pipeline``
    CRM-style: the win probability of stage ``s`` is the share of won leads among the leads
    that were at ``s`` at some month end and are closed by the cut-off; the lead win rate is
    the share of won leads among all closed leads. Expected wins = ``sum_s open(s) * p(s)``
    spread evenly over the horizon, plus ``new_leads(t) * lead_win_rate`` in each month.
    For stage entries it has no forecast (NaN).

The lag baselines forecast stage entries the same way (lag = median months from entry to
the first month end at that stage).

Examples
--------
>>> import pandas as pd
>>> from funnel_models.data.spec import FunnelSpec
>>> spec = FunnelSpec.from_dict({"stages": ["A"], "won": ["W"], "lost": ["L"]})
>>> snaps = pd.DataFrame({"month": pd.to_datetime(["2024-01-01", "2024-02-01"]), "lead_id": ["x", "x"],
...                       "stage": ["A", "W"]})
>>> lag_months(snaps, spec, "WON")
1
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..data.dates import add_months, month_index, month_start
from ..data.spec import LOST, WON, FunnelSpec
from ..errors import ModelConfigError

__all__ = ["BASELINES", "baseline_forecasts", "lag_months", "stage_win_probs"]

#: Baselines the backtest knows, in report order.
BASELINES = ("trailing3", "last_month", "weighted_pipeline")


def lag_months(snaps: pd.DataFrame, spec: FunnelSpec, state: str) -> int:
    """Median whole months from entry month to the first month-end at ``state`` (0 if none)."""
    st = spec.canonical_states(snaps["stage"])
    mi = pd.Series(month_index(snaps["month"]), index=snaps.index)
    first = mi.groupby(snaps["lead_id"]).min()
    reach = mi[st == state].groupby(snaps.loc[st == state, "lead_id"]).min()
    if reach.empty:
        return 0
    d = (reach - first.reindex(reach.index)).to_numpy(float)
    return int(np.floor(np.median(d) + 0.5))


def stage_win_probs(snaps: pd.DataFrame, spec: FunnelSpec) -> tuple[dict[str, float], float]:
    """Weighted-pipeline probabilities from closed leads (see the module docstring)."""
    s = snaps.assign(state=spec.canonical_states(snaps["stage"]))
    final = s.groupby("lead_id", sort=False)["state"].last()
    closed = final[final.isin([WON, LOST])]
    won = closed == WON
    lead_rate = float(won.mean()) if len(closed) else 0.0
    probs = {}
    for code in spec.codes:
        at = s.loc[s["state"] == code, "lead_id"].unique()
        c = won.reindex(at).dropna()
        probs[code] = float(c.mean()) if len(c) else lead_rate
    return probs, lead_rate


def baseline_forecasts(
    train_snaps: pd.DataFrame,
    spec: FunnelSpec,
    cutoff: pd.Timestamp,
    horizon: int,
    leads: pd.Series,
    entries: pd.DataFrame,
    pipeline: pd.DataFrame,
    *,
    names: Sequence[str] = BASELINES,
    stages: Sequence[str] = (WON,),
) -> dict[str, dict[str, np.ndarray]]:
    """Point forecasts of the baselines for one window (see the module docstring).

    Parameters
    ----------
    train_snaps : DataFrame
        Snapshots derived with the window's cut-off.
    spec : FunnelSpec
    cutoff : Timestamp
        Last day of the training data.
    horizon : int
    leads : Series
        Actual new leads per month (index month starts), training months and the
        forecast months (the realised volume conditioned on).
    entries : DataFrame
        Actual entries per month (index) and state (columns); only months up to the
        cut-off are used.
    pipeline : DataFrame
        Open pipeline at the cut-off (``stage`` column).
    names : sequence of str
        Baselines to compute.
    stages : sequence of str
        ``"WON"`` and/or open stages whose entries to forecast.

    Returns
    -------
    dict
        ``name -> {stage -> ndarray (horizon,)}``.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ModelConfigError(f"unknown baseline(s) {unknown}; known baselines: {list(BASELINES)}")
    cm = month_start(cutoff)
    fut = [add_months(cm, h) for h in range(1, horizon + 1)]

    def lead_at(month: pd.Timestamp) -> float:
        return float(leads.get(month, 0.0))

    out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for stage in stages:
        lag = None
        for name in names:
            if name == "weighted_pipeline":
                continue
            if lag is None:
                lag = lag_months(train_snaps, spec, stage)
            k = 3 if name == "trailing3" else 1
            past = [add_months(cm, -i) for i in range(k)]
            num = sum(float(entries[stage].get(m, 0.0)) if stage in entries else 0.0 for m in past)
            den = sum(lead_at(add_months(m, -lag)) for m in past)
            rate = num / den if den > 0 else 0.0
            out[name][stage] = np.array([rate * lead_at(add_months(t, -lag)) for t in fut])
    if "weighted_pipeline" in names:
        probs, lead_rate = stage_win_probs(train_snaps, spec)
        counts = pipeline["stage"].astype(str).value_counts()
        pipe_wins = sum(float(counts.get(c, 0)) * p for c, p in probs.items())
        for stage in stages:
            if stage == WON:
                out["weighted_pipeline"][stage] = np.array([pipe_wins / horizon + lead_at(t) * lead_rate for t in fut])
            else:
                out["weighted_pipeline"][stage] = np.full(horizon, np.nan)
    return out
