"""Seeded demo funnel with known truth: every default report and test runs on it.

The generator simulates leads month by month through a monthly Markov chain with:

- 6 open stages (LEAD, MQL, SQL, DEMO, PROP, NEGO) and WON / LOST (early losses are
  recorded with the status code ``DISQ``);
- 36 months (2023-01 to 2025-12);
- two segment factors, ``region`` (4 levels) and ``channel`` (3 levels), whose effects
  shift the logits of moving on (zero-sum over levels, as in the model);
- seasonal lead volume;
- some stage skipping (LEAD -> SQL, MQL -> DEMO, PROP -> WON);
- a process change: sales training lifts DEMO -> PROP from 2025-01 on;
- deal values by channel.

It returns the stage history and a :class:`DemoTruth` holding the true parameters, which
can produce the true :class:`~funnel_models.posterior.PosteriorFunnel` for any segment
and month.

Examples
--------
>>> data = demo_data(seed=1, months=6, leads_per_month=50)
>>> sorted(data.history.columns)
['channel', 'entered_at', 'lead_id', 'region', 'stage', 'value']
>>> data.spec.codes
('LEAD', 'MQL', 'SQL', 'DEMO', 'PROP', 'NEGO')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from ..posterior import PosteriorFunnel
from ..data.dates import month_start
from ..data.spec import FunnelSpec

__all__ = ["DemoTruth", "DemoData", "demo_data", "DEMO_SPEC"]

DEMO_SPEC: dict = {
    "stages": [
        {"code": "LEAD", "name": "New lead"},
        {"code": "MQL", "name": "Marketing qualified"},
        {"code": "SQL", "name": "Sales qualified"},
        {"code": "DEMO", "name": "Demo held"},
        {"code": "PROP", "name": "Proposal sent"},
        {"code": "NEGO", "name": "Negotiation"},
    ],
    "won": ["WON"],
    "lost": ["LOST", "DISQ"],
    "attributes": ["region", "channel"],
    "value": "value",
}

# Monthly transition probabilities of the baseline cell (all segment effects zero).
# Columns: LEAD MQL SQL DEMO PROP NEGO WON LOST
_BASE = np.array([
    [0.35, 0.40, 0.05, 0.00, 0.00, 0.00, 0.00, 0.20],
    [0.00, 0.40, 0.33, 0.07, 0.00, 0.00, 0.00, 0.20],
    [0.00, 0.00, 0.45, 0.35, 0.00, 0.00, 0.00, 0.20],
    [0.00, 0.00, 0.00, 0.45, 0.30, 0.00, 0.00, 0.25],
    [0.00, 0.00, 0.00, 0.00, 0.45, 0.30, 0.05, 0.20],
    [0.00, 0.00, 0.00, 0.00, 0.00, 0.40, 0.35, 0.25],
])
_ENTRY = np.array([0.80, 0.15, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0])


@dataclass(frozen=True)
class DemoTruth:
    """True parameters behind the demo data.

    Attributes
    ----------
    base : ndarray (K, K+2)
        Monthly transition probabilities of the average cell before the process change.
    entry : ndarray (K+2,)
        Entry distribution of new leads.
    effects : dict factor -> {level: logit shift}
        Zero-sum shifts of the log-odds of each move-on destination against staying.
    change_stage, change_month, change_effect :
        The process change: from ``change_month`` on, the log-odds of moving on from
        ``change_stage`` rise by ``change_effect``.
    deal_value : dict channel -> mean deal value
    leads_per_month, seasonality : volume model
    """

    stages: tuple[str, ...]
    base: np.ndarray
    entry: np.ndarray
    effects: Mapping[str, Mapping[str, float]]
    change_stage: str
    change_month: pd.Timestamp
    change_effect: float
    deal_value: Mapping[str, float]
    leads_per_month: float
    seasonality: float
    start: pd.Timestamp
    months: int
    shares: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def logits(self, segment: Mapping[str, str] | None = None, month: pd.Timestamp | str | None = None) -> np.ndarray:
        """True log-odds against staying for each open stage row, (K, K+2); -inf where impossible."""
        K = len(self.stages)
        with np.errstate(divide="ignore"):
            lg = np.log(self.base) - np.log(np.diag(self.base))[:, None]
        shift = np.zeros(K)
        for factor, level in (segment or {}).items():
            shift += self.effects[factor][level]
        month = pd.Timestamp(month) if month is not None else self.start + pd.DateOffset(months=self.months - 1)
        ci = self.stages.index(self.change_stage)
        change = np.zeros(K)
        if month >= self.change_month:
            change[ci] = self.change_effect
        move_on = np.zeros((K, K + 2), dtype=bool)
        for k in range(K):
            move_on[k, k + 1:K + 1] = True
        return lg + (shift + change)[:, None] * move_on

    def transition_matrix(self, segment: Mapping[str, str] | None = None, month: pd.Timestamp | str | None = None) -> np.ndarray:
        """True monthly transition matrix (K+2, K+2) for a segment and month."""
        K = len(self.stages)
        lg = self.logits(segment, month)
        ex = np.exp(lg - lg.max(1, keepdims=True))
        P = np.zeros((K + 2, K + 2))
        P[:K] = ex / ex.sum(1, keepdims=True)
        P[K, K] = P[K + 1, K + 1] = 1.0
        return P

    def posterior(self, segment: Mapping[str, str] | None = None, month: pd.Timestamp | str | None = None) -> PosteriorFunnel:
        """The truth as a one-draw :class:`PosteriorFunnel`."""
        value = float(np.mean(list(self.deal_value.values())))
        if segment and "channel" in segment:
            value = self.deal_value[segment["channel"]]
        return PosteriorFunnel.from_point(self.stages, self.transition_matrix(segment, month), self.entry,
                                          deal_value=value, label="truth")


@dataclass(frozen=True)
class DemoData:
    """Demo stage history, its spec and the truth that generated it."""

    history: pd.DataFrame
    spec: FunnelSpec
    truth: DemoTruth
    cutoff: pd.Timestamp


def demo_data(
    seed: int = 42,
    *,
    months: int = 36,
    leads_per_month: float = 320.0,
    start: str = "2023-01-01",
    change_month: str | None = "2025-01-01",
    change_effect: float = 0.6,
    effect_scale: float = 1.0,
) -> DemoData:
    """Generate the demo funnel.

    Parameters
    ----------
    seed : int
        Seed of ``np.random.default_rng``; the output is deterministic given all arguments.
    months : int
        Number of simulated months (the cut-off is the last day of the last month).
    leads_per_month : float
        Average new leads per month over all segments, before seasonality.
    start : str
        First month.
    change_month : str or None
        Month from which the DEMO stage's move-on odds rise by ``change_effect`` (a
        process change). ``None`` disables it.

    Returns
    -------
    DemoData
        ``history`` (lead_id, stage, entered_at, region, channel, value), ``spec``,
        ``truth`` and ``cutoff``.
    """
    rng = np.random.default_rng(seed)
    spec = FunnelSpec.from_dict(DEMO_SPEC)
    truth = _truth(months, leads_per_month, start, change_month, change_effect, effect_scale)
    cells = [(r, c) for r in truth.effects["region"] for c in truth.effects["channel"]]
    month_ts = [truth.start + pd.DateOffset(months=m) for m in range(months)]
    leads = _new_leads(rng, truth, cells, months)
    events = _simulate_moves(rng, truth, cells, month_ts, leads)
    history = _history_frame(rng, spec, cells, month_ts, leads, events)
    cutoff = (truth.start + pd.DateOffset(months=months)) - pd.Timedelta(days=1)
    return DemoData(history=history, spec=spec, truth=truth, cutoff=pd.Timestamp(cutoff))


def _truth(months: int, leads_per_month: float, start: str, change_month: str | None,
           change_effect: float, effect_scale: float) -> DemoTruth:
    start_ts = month_start(start)
    regions = {k: v * effect_scale for k, v in {"North": 0.35, "South": -0.25, "East": 0.10, "West": -0.20}.items()}
    channels = {k: v * effect_scale for k, v in {"Web": -0.20, "Partner": 0.35, "Outbound": -0.15}.items()}
    shares = {"region": {"North": 0.35, "South": 0.25, "East": 0.25, "West": 0.15},
              "channel": {"Web": 0.5, "Partner": 0.3, "Outbound": 0.2}}
    cm = pd.Timestamp(change_month) if change_month else pd.Timestamp("2262-01-01")
    return DemoTruth(stages=FunnelSpec.from_dict(DEMO_SPEC).codes, base=_BASE.copy(), entry=_ENTRY.copy(),
                     effects={"region": regions, "channel": channels}, change_stage="DEMO",
                     change_month=cm, change_effect=change_effect if change_month else 0.0,
                     deal_value={"Web": 8000.0, "Partner": 15000.0, "Outbound": 12000.0},
                     leads_per_month=leads_per_month, seasonality=0.25, start=start_ts,
                     months=months, shares=shares)


def _new_leads(rng: np.random.Generator, truth: DemoTruth, cells: list[tuple[str, str]],
               months: int) -> dict[str, np.ndarray]:
    """Entry month, cell and deal value of every lead."""
    shares = truth.shares
    cell_share = np.array([shares["region"][r] * shares["channel"][c] for r, c in cells])
    season = 1.0 + truth.seasonality * np.sin(2 * np.pi * (np.arange(months) + truth.start.month - 3) / 12.0)
    n_new = rng.poisson(truth.leads_per_month * season[:, None] * cell_share[None, :])  # (months, cells)
    lead_month = np.repeat(np.repeat(np.arange(months), len(cells)), n_new.ravel())
    lead_cell = np.repeat(np.tile(np.arange(len(cells)), months), n_new.ravel())
    values = np.empty(lead_month.size)
    channels = list(truth.effects["channel"])
    chan_idx = np.array([channels.index(c) for _, c in cells])[lead_cell]
    for j, ch in enumerate(channels):
        sel = chan_idx == j
        mu = truth.deal_value[ch]
        values[sel] = np.maximum(np.round(rng.lognormal(np.log(mu) - 0.125, 0.5, sel.sum()), -1), 100.0)
    return {"month": lead_month, "cell": lead_cell, "value": values}


def _simulate_moves(rng: np.random.Generator, truth: DemoTruth, cells: list[tuple[str, str]],
                    month_ts: list[pd.Timestamp], leads: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Month-by-month moves of every lead: (lead, state, month) of each stage change."""
    K = len(truth.stages)
    cm = truth.change_month
    # cumulative transition probabilities per (cell, period) : (n_cells, 2, K, K+2)
    cum = np.empty((len(cells), 2, K, K + 2))
    for i, (r, c) in enumerate(cells):
        for p, mts in enumerate((truth.start, max(cm, truth.start))):
            P = truth.transition_matrix({"region": r, "channel": c}, mts if p else truth.start)
            cum[i, p] = np.cumsum(P[:K], axis=1)
    lead_month, lead_cell = leads["month"], leads["cell"]
    n = lead_month.size
    # entry: state at the end of the entry month
    state = np.searchsorted(np.cumsum(truth.entry), rng.random(n), side="right").clip(max=K + 1)
    ids = np.arange(n)
    # leads entering at a closing state pass through the first stage within the month
    closed_at_entry = state >= K
    ev_lead = [ids[closed_at_entry], ids]
    ev_state = [np.zeros(closed_at_entry.sum(), dtype=np.int64), state.copy()]
    ev_month = [lead_month[closed_at_entry], lead_month]
    active = ~closed_at_entry
    for m in range(len(month_ts)):
        idx = np.flatnonzero(active & (lead_month < m))
        if idx.size == 0:
            continue
        cp = cum[lead_cell[idx], int(month_ts[m] >= cm), state[idx]]
        new = (rng.random(idx.size)[:, None] >= cp).sum(1).clip(max=K + 1)
        moved = new != state[idx]
        ev_lead.append(idx[moved])
        ev_state.append(new[moved])
        ev_month.append(np.full(moved.sum(), m))
        state[idx] = new
        active[idx[new >= K]] = False
    lead, st, mo = np.concatenate(ev_lead), np.concatenate(ev_state), np.concatenate(ev_month)
    order = np.lexsort((st, mo, lead))
    return lead[order], st[order], mo[order]


def _history_frame(rng: np.random.Generator, spec: FunnelSpec, cells: list[tuple[str, str]],
                   month_ts: list[pd.Timestamp], leads: dict[str, np.ndarray],
                   events: tuple[np.ndarray, ...]) -> pd.DataFrame:
    """Stage history from the moves: a day and hour within the month, increasing within a
    lead and month; early losses coded DISQ."""
    ev_lead, ev_state, ev_month = events
    K = spec.n_stages
    days_in = np.array([mts.days_in_month for mts in month_ts])[ev_month]
    day = rng.integers(0, days_in)
    seq = pd.Series(ev_state).groupby([ev_lead, ev_month]).cumcount().to_numpy()
    day = np.where(seq > 0, np.minimum(day + seq * 3, days_in - 1), day)
    day = pd.Series(day).groupby([ev_lead, ev_month]).cummax().to_numpy()
    hours = rng.integers(8, 18, ev_lead.size)
    entered = (np.array(month_ts, dtype="datetime64[ns]")[ev_month]
               + day.astype("timedelta64[D]") + hours.astype("timedelta64[h]")
               + (seq * 7).astype("timedelta64[m]"))
    codes = np.array(list(spec.codes) + ["WON", "LOST"], dtype=object)
    stage = codes[ev_state]
    early = (ev_state == K + 1)
    prev_state = pd.Series(ev_state).groupby(ev_lead).shift().fillna(0).astype(int).to_numpy()
    stage = np.where(early & (prev_state <= 1), "DISQ", stage)
    lead_cell = leads["cell"]
    history = pd.DataFrame({
        "lead_id": pd.Series([f"L{i:06d}" for i in ev_lead], dtype="str"),
        "stage": pd.Series(stage, dtype="str"),
        "entered_at": entered,
        "region": pd.Series(np.array([r for r, _ in cells], dtype=object)[lead_cell[ev_lead]], dtype="str"),
        "channel": pd.Series(np.array([c for _, c in cells], dtype=object)[lead_cell[ev_lead]], dtype="str"),
        "value": leads["value"][ev_lead],
    })
    return history.sort_values(["lead_id", "entered_at"], kind="stable").reset_index(drop=True)
