"""Random CRM stage histories for the differential tests of :mod:`funnel_models.data.warehouse`.

Seeded generators (``np.random.default_rng``): leads enter on random days, move forwards one
stage, skip stages, move backwards, move twice on one day (even at one timestamp), close won
or lost (several won/lost codes), sometimes log rows after closing, or stay open at the
cut-off. Segments are per lead, some missing; deal values are set on some rows.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from funnel_models.data import derive
from funnel_models.data.spec import FunnelSpec

STAGES = ["NEW", "MQL", "SQL", "DEMO", "PROP"]


def crm_spec(stale_after: int | None = None) -> FunnelSpec:
    """Five open stages, two won codes, two lost codes, segments ``region`` and ``channel``."""
    d = {"stages": STAGES, "won": ["WON", "WON_B"], "lost": ["LOST", "DQ"],
         "attributes": ["region", "channel"]}
    if stale_after:
        d["stale_after"] = stale_after
    return FunnelSpec.from_dict(d)


def _lead_rows(rng: np.random.Generator, start: pd.Timestamp, months: int) -> list[tuple[str, pd.Timestamp]]:
    pos = int(rng.integers(0, 3))          # may enter past the first stage
    t = start + pd.Timedelta(days=int(rng.integers(0, 30 * months)), seconds=int(rng.integers(0, 86400)))
    rows = [(STAGES[pos], t)]
    for _ in range(int(rng.integers(0, 7))):
        u = rng.random()
        gap = rng.choice([0, 0, 1, 3, 20, 45, 100]) if rng.random() < 0.9 else 0
        t = t + pd.Timedelta(days=int(gap), seconds=int(rng.integers(0, 3600)) if rng.random() < 0.7 else 0)
        if u < 0.12:
            code = str(rng.choice(["WON", "WON_B"]))
        elif u < 0.25:
            code = str(rng.choice(["LOST", "DQ"]))
        elif u < 0.40 and pos > 0:
            pos = int(rng.integers(0, pos))        # backward move
            code = STAGES[pos]
        else:
            pos = min(pos + int(rng.integers(1, 3)), len(STAGES) - 1)   # advance or skip
            code = STAGES[pos]
        rows.append((code, t))
    return rows


def random_history(seed: int, n_leads: int = 60, months: int = 8, prefix: str = "") -> pd.DataFrame:
    """A stage history sorted as :func:`funnel_models.data.readers.read_history` sorts it
    (lead, time, funnel rank)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01") + pd.DateOffset(months=int(rng.integers(0, 12)))
    regions = np.array(["North", "South", "East", None], dtype=object)
    channels = np.array(["web", "ads", "referral"], dtype=object)
    recs = []
    for i in range(n_leads):
        region, channel = rng.choice(regions), rng.choice(channels)
        for code, t in _lead_rows(rng, start, months):
            value = float(rng.integers(1, 50)) * 100 if rng.random() < 0.3 else np.nan
            recs.append((f"{prefix}L{i:04d}", code, t, region, channel, value))
    h = pd.DataFrame(recs, columns=["lead_id", "stage", "entered_at", "region", "channel", "value"])
    rank = crm_spec().rank()
    h["_r"] = h["stage"].map(rank)
    return h.sort_values(["lead_id", "entered_at", "_r"], kind="stable").drop(columns="_r").reset_index(drop=True)


def pandas_transitions(history: pd.DataFrame, spec: FunnelSpec, cutoff, by=()) -> pd.DataFrame:
    """The reference: the pandas derive path, as :func:`funnel_models.models.inputs.prepare` runs it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snaps = derive.snapshots_from_history(history[history["entered_at"] < pd.Timestamp(cutoff)
                                                      + pd.Timedelta(days=1)], spec, cutoff=cutoff)
        return derive.transitions(snaps, spec, by=list(by))


def normalise(t: pd.DataFrame, by=()) -> pd.DataFrame:
    """Sorted, typed, comparable (missing segment values as ``"<NA>"``)."""
    keys = ["month", "from_stage", "to_stage", "age", *by]
    out = t[[*keys, "n"]].copy()
    out["month"] = pd.to_datetime(out["month"]).astype("datetime64[ns]")
    out["age"] = out["age"].astype(np.int64)
    out["n"] = out["n"].astype(np.int64)
    for c in ["from_stage", "to_stage", *by]:
        vals = np.array(out[c], dtype=object)
        vals[pd.isna(vals)] = "<NA>"
        out[c] = vals
    return out.sort_values(keys, key=lambda s: s.astype(str)).reset_index(drop=True)
