"""Model structure: which moves each funnel row allows, and the count arrays a model sees.

A *row* is a source state: ``ENTRY`` (new leads) or an open stage. Its *destinations*
are the states a lead can be in one month later. For an open stage the reference
destination (column 0) is staying; the next stage, WON for the last stage, and LOST are
always allowed; skips and other moves are allowed where the data shows them. For ENTRY
the reference is the first open stage.

Transition counts are grouped into observations: one per row, segment cell and *time
key* (the month when the model varies over time, else the pattern of active change
points), so the model size does not grow with the number of leads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ModelConfigError
from ..data.spec import ENTRY, LOST, WON, FunnelSpec

__all__ = ["RowData", "FunnelStructure", "build_structure", "ChangePoint"]


@dataclass(frozen=True)
class ChangePoint:
    """A known process change: from ``month`` on, the moves out of ``stage`` may shift."""

    stage: str
    month: pd.Timestamp
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.stage}@{self.month:%Y-%m}"


@dataclass
class RowData:
    """Observations of one source row."""

    source: str
    dest: list[str]
    counts: np.ndarray                    # (n_obs, D) int
    levels: dict[str, np.ndarray]         # factor -> (n_obs,) level index
    month: np.ndarray                     # (n_obs,) month index (0..T-1), or -1 when aggregated
    active: np.ndarray                    # (n_obs, n_change) 0/1 change point active

    @property
    def n_obs(self) -> int:
        return int(self.counts.shape[0])


@dataclass
class FunnelStructure:
    """Rows, destinations, segment levels and month grid of a fitted funnel."""

    spec_codes: tuple[str, ...]
    rows: list[RowData]
    factors: dict[str, list[str]]
    months: list[pd.Timestamp]
    change_points: list[ChangePoint]
    time_varying: bool
    cell_counts: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(self.spec_codes) + (WON, LOST)

    def signature(self) -> str:
        """A string that changes whenever the compiled model graph would change."""
        parts = [",".join(self.spec_codes)]
        parts += [f"{r.source}>{'|'.join(r.dest)}" for r in self.rows]
        parts += [f"{f}:{len(v)}" for f, v in self.factors.items()]
        parts += [f"T{len(self.months) if self.time_varying else 0}", f"C{[c.label for c in self.change_points]}"]
        return ";".join(parts)


def build_structure(
    transitions: pd.DataFrame,
    spec: FunnelSpec,
    *,
    factors: Sequence[str] = (),
    time_varying: bool = False,
    change_points: Sequence[ChangePoint] = (),
    levels: Mapping[str, Sequence[str]] | None = None,
) -> FunnelStructure:
    """Group transition counts into per-row observation arrays.

    Parameters
    ----------
    transitions : DataFrame
        ``month, from_stage, to_stage, n`` plus the factor columns.
    spec : FunnelSpec
    factors : sequence of str
        Segment factors to pool over.
    time_varying : bool
        Keep months apart (for a random walk over months).
    change_points : sequence of ChangePoint
    levels : mapping, optional
        Fixed level order per factor (defaults to sorted observed levels).
    """
    missing = [f for f in factors if f not in transitions.columns]
    if missing:
        raise ModelConfigError(f"segment factor(s) {missing} are not columns of the data; "
                               f"available: {[c for c in transitions.columns if c not in ('month', 'from_stage', 'to_stage', 'n')]}")
    if transitions.empty:
        raise ModelConfigError("no transitions to fit: the data has no lead observed in two "
                               "consecutive months. Check the cut-off and the time frame.")
    tr = transitions.copy()
    for f in factors:
        tr[f] = tr[f].astype("str").fillna("unknown")
    lv = {f: list(levels[f]) if levels and f in levels else sorted(tr[f].unique()) for f in factors}
    months = sorted(pd.to_datetime(tr["month"]).unique())
    month_pos = {m: i for i, m in enumerate(months)}
    tr["t"] = pd.to_datetime(tr["month"]).map(month_pos).astype(np.int64)
    codes = list(spec.codes)
    states = codes + [WON, LOST]
    cps = list(change_points)
    for c in cps:
        if c.stage not in codes:
            raise ModelConfigError(f"change point stage {c.stage!r} is not an open stage; stages are {codes}")
    rows: list[RowData] = []
    cell_counts: dict[str, pd.Series] = {}
    for src in [ENTRY] + codes:
        sub = tr[tr["from_stage"] == src]
        seen = set(sub.loc[sub["n"] > 0, "to_stage"])
        if src == ENTRY:
            dest = [s for s in states if s in seen or s == codes[0]]
            ref = codes[0]
        else:
            k = codes.index(src)
            must = {src, states[k + 1], LOST}
            dest = [s for s in states[k:] if s in must or s in seen]
            ref = src
        dest.remove(ref)
        dest.insert(0, ref)
        if sub.empty:
            continue
        cp_active = np.zeros((len(sub), len(cps)), dtype=np.int8)
        for j, c in enumerate(cps):
            if src == c.stage:
                cp_active[:, j] = (pd.to_datetime(sub["month"]) >= c.month).to_numpy()
        sub = sub.assign(**{f"_cp{j}": cp_active[:, j] for j in range(len(cps))})
        time_key = ["t"] if time_varying else [f"_cp{j}" for j in range(len(cps))]
        keys = [*factors, *time_key]
        wide = sub.pivot_table(index=keys, columns="to_stage", values="n", aggfunc="sum", fill_value=0) if keys else \
            sub.groupby("to_stage")["n"].sum().to_frame().T
        wide = wide.reindex(columns=dest, fill_value=0)
        wide = wide[wide.sum(axis=1) > 0]
        idx = wide.index.to_frame(index=False) if keys else pd.DataFrame(index=[0])
        lev_idx = {f: idx[f].map({l: i for i, l in enumerate(lv[f])}).to_numpy().astype(np.int64) for f in factors}
        if time_varying:
            t = idx["t"].to_numpy().astype(np.int64)
            active = np.zeros((len(idx), len(cps)), dtype=np.int8)
            for j, c in enumerate(cps):
                if src == c.stage:
                    active[:, j] = (np.array(months, dtype="datetime64[ns]")[t] >= np.datetime64(c.month)).astype(np.int8)
        else:
            t = np.full(len(idx), -1, dtype=np.int64)
            active = idx[[f"_cp{j}" for j in range(len(cps))]].to_numpy().astype(np.int8) if cps else \
                np.zeros((len(idx), 0), dtype=np.int8)
        rows.append(RowData(source=src, dest=dest, counts=wide.to_numpy().astype(np.int64),
                            levels=lev_idx, month=t, active=active))
        for f in factors:
            cell_counts[f"{src}|{f}"] = sub.groupby(f)["n"].sum().reindex(lv[f], fill_value=0)
    if not any(r.source != ENTRY for r in rows):
        raise ModelConfigError("no lead was observed in an open stage for two consecutive months; "
                               "the model needs at least some month-to-month transitions.")
    return FunnelStructure(spec_codes=tuple(codes), rows=rows, factors=lv, months=list(months),
                           change_points=cps, time_varying=time_varying, cell_counts=cell_counts)
