"""Benchmark: monthly transition counts in the warehouse (Ibis on DuckDB) vs the pandas path.

Workload: a generated CRM stage history (``--rows`` stage rows, default 1M; about 4 rows per
lead over 36 months; forward moves, skips, backward moves, wins and losses, leads still open;
segments ``region`` and ``channel``), counted by ``region``.

1. ``pandas`` (baseline) -- what a fit did before: ``derive.snapshots_from_history`` then
   ``derive.transitions`` on the history as a DataFrame in memory;
2. ``duckdb`` -- ``warehouse.warehouse_transitions`` on the same history as a table in a
   DuckDB database file (the data at rest in the warehouse; only the count table comes back).

Both results are checked equal before timing. Each path runs ``--repeats`` times,
interleaved, in this process; medians of wall time are printed with the ratio.

Usage::

    python benchmarks/bench_crm.py                 # 1M rows, 3 repeats
    python benchmarks/bench_crm.py --rows 200000 --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import duckdb
import ibis
import numpy as np
import pandas as pd

from funnel_models.data import derive
from funnel_models.data.spec import FunnelSpec
from funnel_models.data.warehouse import warehouse_transitions

SPEC = FunnelSpec.from_dict({"stages": ["NEW", "MQL", "SQL", "DEMO", "PROP"], "won": ["WON"],
                             "lost": ["LOST", "DQ"], "attributes": ["region", "channel"]})


def generate(rows: int, seed: int = 11) -> pd.DataFrame:
    """About ``rows`` stage rows (vectorised; seeded)."""
    rng = np.random.default_rng(seed)
    n = max(rows // 4, 1)
    k = rng.integers(1, 8, n)                                   # rows per lead, mean 4
    lead = np.repeat(np.arange(n), k)
    first = np.r_[0, np.cumsum(k)[:-1]]
    pos_in = np.arange(k.sum()) - np.repeat(first, k)
    start = rng.integers(0, 36 * 30, n).astype("timedelta64[D]") + np.datetime64("2021-01-01")
    gaps = rng.choice([0, 1, 5, 20, 40, 90], size=k.sum()) * np.timedelta64(1, "D") + \
        rng.integers(0, 86400, k.sum()) * np.timedelta64(1, "s")
    gaps[pos_in == 0] = np.timedelta64(0, "s")
    t = np.repeat(start, k) + pd.Series(gaps).groupby(lead).cumsum().to_numpy()
    step = rng.choice([-1, 1, 1, 2], size=k.sum())
    step[pos_in == 0] = rng.integers(0, 3, n)
    rank = np.clip(pd.Series(step).groupby(lead).cumsum().to_numpy(), 0, 4)
    codes = np.array(SPEC.codes, dtype=object)[rank]
    last = pos_in == np.repeat(k - 1, k)
    fate = rng.random(k.sum())
    codes[last & (fate < 0.25)] = "WON"
    codes[last & (fate >= 0.25) & (fate < 0.55)] = "LOST"
    codes[last & (fate >= 0.55) & (fate < 0.65)] = "DQ"
    h = pd.DataFrame({"lead_id": np.char.add("L", lead.astype(str)), "stage": codes, "entered_at": t,
                      "region": np.array(["North", "South", "East", "West"], dtype=object)[lead % 4],
                      "channel": np.array(["web", "ads", "referral"], dtype=object)[rng.integers(0, 3, n)][lead]})
    h["_r"] = h["stage"].map(SPEC.rank())
    return h.sort_values(["lead_id", "entered_at", "_r"], kind="stable").drop(columns="_r").reset_index(drop=True)


def pandas_path(h: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return derive.transitions(derive.snapshots_from_history(h, SPEC, cutoff=cutoff), SPEC, by=["region"])


def duckdb_path(table: ibis.Table, cutoff: pd.Timestamp) -> pd.DataFrame:
    return warehouse_transitions(table, SPEC, cutoff=cutoff, by=["region"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    h = generate(args.rows)
    cutoff = pd.Timestamp(h["entered_at"].max()).normalize()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "crm.duckdb"
        con = duckdb.connect(str(path))
        con.register("h", h)
        con.execute("CREATE TABLE stage_history AS SELECT * FROM h")
        con.close()
        table = ibis.duckdb.connect(str(path), read_only=True).table("stage_history")
        a, b = pandas_path(h, cutoff), duckdb_path(table, cutoff)
        keys = ["month", "from_stage", "to_stage", "age", "region"]
        same = a.sort_values(keys).reset_index(drop=True).equals(b.sort_values(keys).reset_index(drop=True))
        print(f"{len(h):,} stage rows, {h['lead_id'].nunique():,} leads -> {len(a):,} count rows; "
              f"identical tables: {same}")
        if not same:
            raise SystemExit("the two paths disagree")
        times: dict[str, list[float]] = {"pandas": [], "duckdb": []}
        for _ in range(args.repeats):
            for name, fn, arg in (("pandas", pandas_path, h), ("duckdb", duckdb_path, table)):
                t0 = time.perf_counter()
                fn(arg, cutoff)
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"{k:>7}: median {med[k]:.2f} s over {len(v)} runs ({', '.join(f'{x:.2f}' for x in v)})")
    print(f"ratio pandas / duckdb: {med['pandas'] / med['duckdb']:.1f}x (baseline: the pandas derive path)")


if __name__ == "__main__":
    main()
