"""Model structure: the moves each funnel row allows, and the stacked observations a model sees.

A *row* is a source state: ``ENTRY`` (new leads) or an open stage. Its *destinations* are
the states a lead can be in one month later. For an open stage the reference destination
(column 0) is staying; the next state (the next stage, WON for the last one) is always
allowed; skips, wins and losses are allowed where the data show them (a funnel whose
export never records a loss gets no loss move: its leads go cold instead). For ENTRY the
reference is the first open stage.

Each non-reference destination of each row is a parameter *slot*. Transition counts are
grouped into observations, one per row, segment cell, month (when the model varies over
months) and age bucket (months already spent in the source stage), and stacked into one
padded array (:class:`Design`), so the model size does not grow with the number of leads.

Examples
--------
>>> import pandas as pd
>>> from funnel_models.data.spec import FunnelSpec
>>> spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
>>> tr = pd.DataFrame({"month": pd.to_datetime(["2024-01-01"] * 3), "from_stage": ["ENTRY", "A", "A"],
...                    "to_stage": ["A", "A", "B"], "age": [0, 0, 1], "n": [5, 3, 2]})
>>> d = build_design(tr, spec, age_edges=(0, 1))     # ages 0 and 1+ in separate observations
>>> [(r.source, r.dest) for r in d.rows]
[('ENTRY', ['A']), ('A', ['A', 'B'])]
>>> d.counts.tolist()
[[5, 0], [3, 0], [0, 2]]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.spec import ENTRY, LOST, WON, FunnelSpec
from ..errors import ModelConfigError
from .config import COLD_SHARE

__all__ = ["ChangePoint", "RowSpec", "Design", "build_design", "choose_cold_after", "bucket_of",
           "SEASON_LENGTH"]

#: Seasonal positions per kind of seasonality.
SEASON_LENGTH = {"none": 1, "month_of_year": 12, "quarter": 3}


@dataclass(frozen=True)
class ChangePoint:
    """A known process change: from ``month`` on, the moves out of ``stage`` may shift."""

    stage: str
    month: pd.Timestamp
    name: str = ""

    @property
    def label(self) -> str:
        """Name, or ``STAGE@YYYY-MM``."""
        return self.name or f"{self.stage}@{self.month:%Y-%m}"


@dataclass(frozen=True)
class RowSpec:
    """One source row: its destinations (reference first) and their parameter slots."""

    source: str
    dest: list[str]
    slots: np.ndarray


def bucket_of(ages: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Age bucket index of whole months in stage (``edges`` are bucket starts)."""
    return np.searchsorted(np.asarray(edges), np.asarray(ages), side="right") - 1


def season_index(months: Sequence[pd.Timestamp] | pd.Series, kind: str) -> np.ndarray:
    """Seasonal position of calendar months: month of year (0..11), position in quarter (0..2)."""
    m = pd.DatetimeIndex(pd.to_datetime(pd.Series(months))).month.to_numpy() - 1
    return {"none": np.zeros_like(m), "month_of_year": m, "quarter": m % 3}[kind]


def choose_cold_after(transitions: pd.DataFrame, edges: Sequence[int]) -> int:
    """First bucket start after which fewer than :data:`COLD_SHARE` of moves on would happen.

    From the pooled open-stage rows: hazards by age (moves on, and any exit, per lead-month
    at risk, so right-censored leads count correctly) give the age distribution of a
    fresh lead's move on; the answer is the smallest candidate age (bucket starts, then
    24, 36, 48, 60 months) beyond which less than :data:`COLD_SHARE` of it lies.
    """
    t = transitions[transitions["from_stage"] != ENTRY]
    if t.empty:
        return int(edges[-1]) if edges[-1] > 0 else 12
    ages = t["age"].to_numpy(np.int64)
    top = int(max(ages.max(), 60)) + 1
    risk = np.bincount(ages, weights=t["n"].to_numpy(float), minlength=top)
    exits = t["to_stage"] != t["from_stage"]
    on = exits & (t["to_stage"] != LOST)
    h_exit = np.bincount(ages[exits.to_numpy()], weights=t.loc[exits, "n"].to_numpy(float), minlength=top)
    h_on = np.bincount(ages[on.to_numpy()], weights=t.loc[on, "n"].to_numpy(float), minlength=top)
    with np.errstate(divide="ignore", invalid="ignore"):
        he = np.where(risk > 0, h_exit / risk, 0.0)
        ho = np.where(risk > 0, h_on / risk, 0.0)
    surv = np.concatenate([[1.0], np.cumprod(1.0 - he)[:-1]])
    f = surv * ho
    if f.sum() <= 0:
        return int(edges[-1]) if edges[-1] > 0 else 12
    tail = 1.0 - np.cumsum(f) / f.sum() + f / f.sum()         # share at age >= a
    for cand in [e for e in edges if e > 0] + [24, 36, 48, 60]:
        if cand < tail.size and tail[cand] < COLD_SHARE:
            return int(cand)
    return 60


@dataclass
class Design:
    """Stacked observations of every row: the arrays the model and the predictor read.

    Attributes
    ----------
    rows : list of RowSpec
    counts : ndarray (n_obs, Dmax) int
        Destination counts, padded with zeros.
    slot : ndarray (n_obs, Dmax - 1) int
        Parameter slot of each non-reference destination (``n_slots`` pads).
    row : ndarray (n_obs,) int
        Index of the observation's row.
    levels : dict factor -> ndarray (n_obs,) int
    month : ndarray (n_obs,) int
        Index into ``months`` (0 when months are pooled).
    age : ndarray (n_obs,) int
        Age bucket (0 for ENTRY).
    season : ndarray (n_obs,) int
    active : ndarray (n_obs, n_change) float
        1 where the change point applies (its stage's row, from its month on).
    """

    rows: list[RowSpec]
    counts: np.ndarray
    slot: np.ndarray
    row: np.ndarray
    levels: dict[str, np.ndarray]
    month: np.ndarray
    age: np.ndarray
    season: np.ndarray
    active: np.ndarray
    factors: dict[str, list[str]]
    months: list[pd.Timestamp]
    by_month: bool
    age_edges: list[int]
    season_kind: str
    change_points: list[ChangePoint]
    spec_codes: tuple[str, ...]
    cell_counts: dict[str, pd.Series] = field(default_factory=dict)

    @property
    def n_obs(self) -> int:
        """Number of stacked observations."""
        return int(self.counts.shape[0])

    @property
    def n_slots(self) -> int:
        """Number of parameter slots (the padding slot is ``n_slots``)."""
        return int(sum(len(r.slots) for r in self.rows))

    @property
    def n_buckets(self) -> int:
        """Number of age buckets."""
        return len(self.age_edges)

    @property
    def slot_row(self) -> np.ndarray:
        """Row index of every slot, (n_slots,)."""
        return np.concatenate([np.full(len(r.slots), i) for i, r in enumerate(self.rows)]).astype(np.int64)

    def row_index(self, source: str) -> int | None:
        """Index of a source row (None when the data never show it)."""
        return next((i for i, r in enumerate(self.rows) if r.source == source), None)

    def arrays(self) -> dict[str, np.ndarray]:
        """The data arrays of the model (``pm.Data`` values; also the predictor's input)."""
        out = {"counts": self.counts, "slot": self.slot, "month": self.month, "age": self.age,
               "season": self.season, "active": self.active}
        for f, v in self.levels.items():
            out[f"level_{safe_name(f)}"] = v
        return out

    def signature(self) -> str:
        """Changes whenever the compiled model graph would change."""
        parts = [",".join(self.spec_codes)] + [f"{r.source}>{'|'.join(r.dest)}" for r in self.rows]
        parts += [f"{f}:{len(v)}" for f, v in self.factors.items()]
        parts += [f"T{len(self.months) if self.by_month else 0}", f"B{self.age_edges}", f"S{self.season_kind}",
                  f"C{[c.label for c in self.change_points]}"]
        return ";".join(parts)


def safe_name(name: str) -> str:
    """A factor name usable in PyMC variable names."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _row_dest(src: str, seen: set[str], codes: list[str]) -> list[str]:
    states = codes + [WON, LOST]
    if src == ENTRY:
        return [codes[0]] + [s for s in states if s in seen and s != codes[0]]
    k = codes.index(src)
    must = {states[k + 1]}
    return [src] + [s for s in states[k + 1:] if s in must or s in seen]


def _check_inputs(transitions: pd.DataFrame, spec: FunnelSpec, factors: Sequence[str],
                  change_points: Sequence[ChangePoint]) -> None:
    missing = [f for f in factors if f not in transitions.columns]
    if missing:
        extra = [c for c in transitions.columns if c not in ("month", "from_stage", "to_stage", "n", "age")]
        raise ModelConfigError(f"segment factor(s) {missing} are not columns of the data; available: {extra}")
    if transitions.empty:
        raise ModelConfigError("no transitions to fit: the data has no lead observed in two "
                               "consecutive months. Check the cut-off and the time frame.")
    for c in change_points:
        if c.stage not in spec.codes:
            raise ModelConfigError(f"change point stage {c.stage!r} is not an open stage; stages are "
                                   f"{list(spec.codes)}")


def build_design(
    transitions: pd.DataFrame,
    spec: FunnelSpec,
    *,
    factors: Sequence[str] = (),
    by_month: bool = False,
    change_points: Sequence[ChangePoint] = (),
    age_edges: Sequence[int] = (0,),
    season: str = "none",
    levels: Mapping[str, Sequence[str]] | None = None,
) -> Design:
    """Group transition counts into stacked observations.

    Parameters
    ----------
    transitions : DataFrame
        ``month, from_stage, to_stage, age, n`` plus the factor columns
        (:func:`funnel_models.data.derive.transitions`).
    spec : FunnelSpec
    factors : sequence of str
        Segment factors.
    by_month : bool
        Keep months apart (month effects, random walk, seasonality); otherwise months
        are pooled except where change points split them.
    change_points : sequence of ChangePoint
    age_edges : sequence of int
        Age bucket starts; ``(0,)`` pools ages (the memoryless chain).
    season : {"none", "month_of_year", "quarter"}
    levels : mapping, optional
        Fixed level order per factor (default: sorted observed levels).
    """
    _check_inputs(transitions, spec, factors, change_points)
    tr = transitions.copy()
    tr["month"] = pd.to_datetime(tr["month"])
    for f in factors:
        tr[f] = tr[f].astype("str").fillna("unknown")
    lv = {f: list(levels[f]) if levels and f in levels else sorted(tr[f].unique()) for f in factors}
    months = sorted(tr["month"].unique())
    tr["t"] = tr["month"].map({m: i for i, m in enumerate(months)}).astype(np.int64) if by_month else 0
    age = tr["age"].to_numpy(np.int64) if "age" in tr.columns else np.zeros(len(tr), np.int64)
    tr["b"] = np.where(tr["from_stage"] == ENTRY, 0, bucket_of(age, age_edges))
    tr["s"] = season_index(tr["month"], season) if by_month else 0
    cps = list(change_points)
    for j, c in enumerate(cps):
        tr[f"_cp{j}"] = ((tr["from_stage"] == c.stage) & (tr["month"] >= c.month)).astype(np.int8)
    codes = list(spec.codes)
    keys = [*factors, "t", "b", "s", *[f"_cp{j}" for j in range(len(cps))]]
    rows, blocks, off = [], [], 0
    cell_counts: dict[str, pd.Series] = {}
    for src in [ENTRY] + codes:
        sub = tr[tr["from_stage"] == src]
        if sub.empty:
            continue
        dest = _row_dest(src, set(sub.loc[sub["n"] > 0, "to_stage"]), codes)
        wide = sub.pivot_table(index=keys, columns="to_stage", values="n", aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=dest, fill_value=0)
        wide = wide[wide.sum(axis=1) > 0]
        if wide.empty:
            continue
        rows.append(RowSpec(source=src, dest=dest, slots=np.arange(off, off + len(dest) - 1)))
        off += len(dest) - 1
        blocks.append((len(rows) - 1, wide))
        for f in factors:
            cell_counts[f"{src}|{f}"] = sub.groupby(f)["n"].sum().reindex(lv[f], fill_value=0)
    if not any(r.source != ENTRY for r in rows):
        raise ModelConfigError("no lead was observed in an open stage for two consecutive months; "
                               "the model needs at least some month-to-month transitions.")
    return _stack(rows, blocks, off, keys, lv, cps, dict(
        factors=lv, months=[pd.Timestamp(m) for m in months], by_month=by_month, age_edges=list(age_edges),
        season_kind=season, change_points=cps, spec_codes=tuple(codes), cell_counts=cell_counts))


def _stack(rows: list[RowSpec], blocks: list[tuple[int, pd.DataFrame]], n_slots: int, keys: list[str],
           lv: dict[str, list[str]], cps: list[ChangePoint], meta: dict) -> Design:
    """Pad every row's observations to the widest row and stack them."""
    dmax = max(len(r.dest) for r in rows)
    counts, slot, row_i, idx_frames = [], [], [], []
    for i, wide in blocks:
        r = rows[i]
        c = np.zeros((len(wide), dmax), dtype=np.int64)
        c[:, :len(r.dest)] = wide.to_numpy(np.int64)
        counts.append(c)
        s = np.full((len(wide), dmax - 1), n_slots, dtype=np.int64)
        s[:, :len(r.slots)] = r.slots
        slot.append(s)
        row_i.append(np.full(len(wide), i, dtype=np.int64))
        idx_frames.append(wide.index.to_frame(index=False))
    idx = pd.concat(idx_frames, ignore_index=True)
    levels = {f: idx[f].map({l: j for j, l in enumerate(lv[f])}).to_numpy(np.int64) for f in lv}
    active = idx[[f"_cp{j}" for j in range(len(cps))]].to_numpy(float) if cps else np.zeros((len(idx), 0))
    return Design(rows=rows, counts=np.concatenate(counts), slot=np.concatenate(slot),
                  row=np.concatenate(row_i), levels=levels, month=idx["t"].to_numpy(np.int64),
                  age=idx["b"].to_numpy(np.int64), season=idx["s"].to_numpy(np.int64), active=active, **meta)
