"""Benchmark of the DuckDB event-funnel engine.

1. Writes ``--events`` synthetic events (default 10 million) to a Parquet file in a temp
   directory, chunk by chunk, then runs a 5-step ordered funnel with a ``campaign``
   breakdown on it in a fresh child process and prints wall time and peak RSS
   (``resource.getrusage(...).ru_maxrss`` of that process, which includes DuckDB's native
   memory). Targets: under 10 s and under 2 GB for 10 million events.
2. Runs a pandas ``groupby().apply()`` implementation of the same funnel and the DuckDB
   engine on the same ``--compare-events`` events (default 1 million) in this process,
   checks that they agree and prints the speed ratio.

Usage::

    python benchmarks/bench_events.py                  # 10M events
    python benchmarks/bench_events.py --events 2000000 --compare-events 200000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

STEPS = ["ad_click", "landing_view", "signup", "demo_request", "purchase"]
WINDOW = "14d"


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pandas_funnel(df: pd.DataFrame, steps: list[str], window: pd.Timedelta) -> pd.DataFrame:
    """Ordered funnel with first-touch campaign breakdown via pandas groupby/apply."""
    n = len(steps)
    rank = {s: i for i, s in reversed(list(enumerate(steps)))}
    d = df[df["event"].isin(steps)].copy()
    d["minstep"] = d["event"].map(rank).astype("int64")
    d = d.sort_values(["user_id", "timestamp", "minstep", "event"], kind="stable")
    w = np.timedelta64(int(window.total_seconds() * 1e6), "us")

    def per_user(g: pd.DataFrame) -> pd.Series:
        ev = g["event"].to_numpy()
        ts = g["timestamp"].to_numpy()
        camp = g["campaign"].to_numpy()
        best, best_camp = 0, None
        for i in np.flatnonzero(ev == steps[0]):
            lvl, dead = 1, ts[i] + w
            for j in range(i + 1, len(ev)):
                if ts[j] > dead or lvl == n:
                    break
                if ev[j] == steps[lvl]:
                    lvl += 1
            if lvl > best:
                best, best_camp = lvl, camp[i]
        return pd.Series({"level": best, "campaign": best_camp})

    lv = d.groupby("user_id", sort=False)[["event", "timestamp", "campaign"]].apply(per_user)
    lv = lv[lv["level"] > 0]
    out = pd.DataFrame({s: (lv["level"] > k).groupby(lv["campaign"]).sum()
                        for k, s in enumerate(steps)})
    return out.astype("int64").sort_index()


def worker(path: str) -> None:
    """Run the 10M funnel in this (fresh) process and print JSON with time and peak RSS."""
    from funnel_models.events import funnel

    t = time.perf_counter()
    res = funnel(path, STEPS, window=WINDOW, breakdown="campaign")
    counts = res.counts
    dt = time.perf_counter() - t
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": dt, "peak_rss_mb": _peak_rss_mb(), "users": len(res.users),
                      "cpu_seconds": ru.ru_utime + ru.ru_stime, "load": os.getloadavg()[0],
                      "counts": counts.sum().astype(int).tolist()}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="events for the big run")
    ap.add_argument("--compare-events", type=int, default=1_000_000,
                    help="events for the pandas vs duckdb comparison")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker)
        return

    from funnel_models.events import funnel, synthetic_events, write_events_parquet

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "events.parquet")
        t = time.perf_counter()
        n = write_events_parquet(path, args.events, seed=args.seed)
        print(f"generated {n:,} events to Parquet in {time.perf_counter() - t:.1f} s "
              f"({os.path.getsize(path) / 2**20:.0f} MiB)")
        out = subprocess.run([sys.executable, __file__, "--worker", path], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok_t = "OK" if r["seconds"] < 10 else "OVER TARGET"
        ok_m = "OK" if r["peak_rss_mb"] < 2048 else "OVER TARGET"
        print(f"duckdb 5-step funnel + breakdown on {n:,} events (Parquet): "
              f"{r['seconds']:.2f} s wall [{ok_t} <10 s], peak RSS {r['peak_rss_mb']:.0f} MiB "
              f"[{ok_m} <2 GiB]; {r['users']:,} users entered; step totals {r['counts']}")
        print(f"  (worker process CPU time incl. imports {r['cpu_seconds']:.1f} s; "
              f"1-min load average {r['load']:.1f} on {os.cpu_count()} CPUs)")

    # ---------------------------------------------------------------- pandas vs duckdb
    n_users = max(1, int(args.compare_events / 7.2))
    df = synthetic_events(n_users, seed=args.seed)
    df = df.iloc[: args.compare_events]
    t = time.perf_counter()
    pd_counts = pandas_funnel(df, STEPS, pd.Timedelta(days=14))
    t_pd = time.perf_counter() - t
    t = time.perf_counter()
    dk = funnel(df, STEPS, window=WINDOW, breakdown="campaign").counts
    t_dk = time.perf_counter() - t
    dk = dk.loc[dk.index != "(none)"].astype("int64").sort_index()
    dk.columns = list(dk.columns)
    dk.index.name = None
    pd_counts.index.name = None
    same = dk.equals(pd_counts)
    print(f"pandas groupby/apply on {len(df):,} events: {t_pd:.2f} s; duckdb: {t_dk:.2f} s; "
          f"counts agree: {same}")
    print(f"duckdb vs pandas groupby/apply on {len(df) / 1e6:.1f}M events: "
          f"{t_pd / t_dk:.1f}x faster")
    if not same:
        print("pandas:\n", pd_counts, "\nduckdb:\n", dk)
        sys.exit(1)


if __name__ == "__main__":
    main()
