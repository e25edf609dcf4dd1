"""Benchmark of the event-funnel engine against named baselines, in one run.

Workload: the synthetic log written by ``write_events_parquet(path, N, seed=7)`` (cached
once in ``--cache``, outside git), a 5-step ordered funnel ``ad_click -> landing_view ->
signup -> demo_request -> purchase``, 14-day window, first-touch ``campaign`` breakdown.
Every measurement runs in a fresh child process: wall time and CPU time of the funnel call
(all threads of the process) and the process's peak RSS, which includes the engines' native
memory. Imports (``import chdb``; Ibis' DuckDB backend, loaded on first use) happen before
the timer for every contender and are reported apart. Each is repeated ``--repeats`` times,
interleaved, and the median is printed. CPU time is printed beside wall time because it is
far less sensitive to other jobs on a shared machine.

1. ``new``   -- the default path: ``funnel(path, ...)``; on DuckDB this ordered funnel runs
   on the tuned path (:mod:`funnel_models.events.scan`: one sorted read, NumPy passes);
2. ``ibis``  -- the portable Ibis path on the same DuckDB (what Spark and the funnels the
   tuned path does not cover run), same call with the tuned path switched off;
3. ``old``   -- the hand-written DuckDB SQL before the Ibis rewrite
   (``benchmarks/events_sql_baseline.py``, copied from git history), same call;
4. ``chdb``  -- peer baseline: ClickHouse ``windowFunnel`` run embedded through ``chdb``
   (optional extra ``.[peers]``; skipped with a message when missing). Same file, same
   steps and window, no breakdown (windowFunnel has none), timestamps in seconds;
5. ``big``   -- ``--big-events`` (default 100M) read from Parquet by a DuckDB connection
   capped at ``--memory-limit``, two threads;
6. ``spark`` -- the same funnel on Spark ``local[2]`` on the 10M file (session start not
   timed; optional extra ``.[spark]`` and Java).

Step totals of ``new``, ``ibis``, ``old`` and ``chdb`` must agree (windowFunnel semantics
coincide with ours here: ordered steps, no exclusions, window from the first step).

Usage::

    python benchmarks/bench_events.py                        # everything, 3 repeats
    python benchmarks/bench_events.py --events 2000000 --skip-big --skip-spark --repeats 1
    python benchmarks/bench_events.py --skip-big --skip-spark --only new,chdb
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEPS = ["ad_click", "landing_view", "signup", "demo_request", "purchase"]
WINDOW_DAYS = 14


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM (ru_maxrss keeps the parent's peak across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Timer:
    """Wall and CPU seconds (all threads of this process) of the timed block."""

    def __enter__(self) -> "Timer":
        self.t, self.c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds, self.cpu = time.perf_counter() - self.t, _cpu() - self.c


def _emit(tm: Timer, totals: list[int], imports: float, **extra) -> None:
    print(json.dumps({"seconds": tm.seconds, "cpu": tm.cpu, "peak_rss_mb": _peak_rss_mb(),
                      "totals": totals, "load": os.getloadavg()[0], "imports": imports,
                      **extra}))


def _totals(counts) -> list[int]:
    return [int(x) for x in counts.sum().tolist()]


def _import_ours() -> float:
    """Seconds to import the package and Ibis' DuckDB backend (loaded on first use)."""
    t = time.perf_counter()
    import ibis

    import funnel_models.events  # noqa: F401

    ibis.duckdb  # noqa: B018 - loads the backend
    return time.perf_counter() - t


def work_new(path: str, args) -> None:
    imports = _import_ours()
    from funnel_models.events import funnel

    with Timer() as tm:
        res = funnel(path, STEPS, window=f"{WINDOW_DAYS}d", breakdown="campaign")
    _emit(tm, _totals(res.counts), imports)


def work_ibis(path: str, args) -> None:
    imports = _import_ours()
    from funnel_models.events import funnel, scan

    scan.supports = lambda q, backend: False     # this process only: the portable path
    with Timer() as tm:
        res = funnel(path, STEPS, window=f"{WINDOW_DAYS}d", breakdown="campaign")
    _emit(tm, _totals(res.counts), imports)


def work_old(path: str, args) -> None:
    t = time.perf_counter()
    sys.path.insert(0, str(HERE))
    import events_sql_baseline as old

    imports = time.perf_counter() - t
    with Timer() as tm:
        users = old.funnel(path, STEPS, window=f"{WINDOW_DAYS}d", breakdown="campaign")
    _emit(tm, [int(users[s].notna().sum()) for s in STEPS], imports)


def work_chdb(path: str, args) -> None:
    t = time.perf_counter()
    import chdb

    imports = time.perf_counter() - t
    conds = ", ".join(f"event = '{s}'" for s in STEPS)
    q = (f"SELECT level, count() AS n FROM (SELECT user_id, windowFunnel({WINDOW_DAYS * 86400})"
         f"(toDateTime(timestamp), {conds}) AS level FROM file('{path}', Parquet) "
         f"WHERE event IN ({', '.join(repr(s) for s in STEPS)}) GROUP BY user_id) "
         "GROUP BY level ORDER BY level")
    with Timer() as tm:
        rows = [line.split(",") for line in str(chdb.query(q, "CSV")).strip().splitlines()]
    per_level = {int(a): int(b) for a, b in rows}
    _emit(tm, [sum(v for lv, v in per_level.items() if lv > k) for k in range(len(STEPS))],
          imports)


def work_big(path: str, args) -> None:
    import duckdb

    imports = _import_ours()
    from funnel_models.events import funnel

    spill = Path(args.cache) / "spill"
    spill.mkdir(exist_ok=True)
    con = duckdb.connect(config={"memory_limit": args.memory_limit, "threads": 2,
                                 "temp_directory": str(spill),
                                 "preserve_insertion_order": False})
    with Timer() as tm:
        res = funnel(path, STEPS, window=f"{WINDOW_DAYS}d", breakdown="campaign", con=con)
    _emit(tm, _totals(res.counts), imports)


def work_spark(path: str, args) -> None:
    t = time.perf_counter()
    import ibis
    from pyspark.sql import SparkSession

    from funnel_models.events import funnel

    ibis.pyspark  # noqa: B018 - loads the backend
    imports = time.perf_counter() - t

    spark = (SparkSession.builder.master("local[2]").appName("bench_events")
             .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "8")
             .config("spark.driver.memory", "4g").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    spark.read.parquet(path).createOrReplaceTempView("events")
    with Timer() as tm:
        res = funnel((spark, "events"), STEPS, window=f"{WINDOW_DAYS}d", breakdown="campaign")
    _emit(tm, _totals(res.counts), imports)
    spark.stop()


WORKERS = {"new": work_new, "ibis": work_ibis, "old": work_old, "chdb": work_chdb,
           "big": work_big, "spark": work_spark}
LABELS = {"new": "new: default path (tuned DuckDB scan)",
          "ibis": "portable Ibis path on DuckDB",
          "old": "baseline: hand-written DuckDB SQL (before)",
          "chdb": "peer: ClickHouse windowFunnel via chdb"}


def ensure_file(cache: Path, n: int, seed: int) -> str:
    from funnel_models.events import write_events_parquet

    path = cache / f"events_{n}_seed{seed}.parquet"
    if not path.exists():
        t = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        write_events_parquet(tmp, n, seed=seed)
        tmp.rename(path)
        print(f"generated {n:,} events in {time.perf_counter() - t:.0f} s -> {path}")
    return str(path)


def run(kind: str, path: str, args) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", kind, "--path", path, "--cache", args.cache,
           "--memory-limit", args.memory_limit]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        print(f"  {kind}: failed\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def medians(kinds: list[str], path: str, args) -> dict[str, dict]:
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for i in range(args.repeats):
        for k in kinds:
            r = run(k, path, args)
            if r:
                runs[k].append(r)
                print(f"  run {i + 1} {k:>5}: {r['seconds']:.2f} s wall, {r['cpu']:.2f} s CPU, "
                      f"{r['peak_rss_mb']:.0f} MiB "
                      f"(load {r['load']:.1f})", flush=True)
    fields = ("seconds", "cpu", "peak_rss_mb", "imports", "load")
    return {k: {**{f: statistics.median(r[f] for r in v) for f in fields},
                "totals": v[0]["totals"], "n": len(v),
                "same": all(r["totals"] == v[0]["totals"] for r in v)}
            for k, v in runs.items() if v}


def have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def report_10m(m: dict[str, dict], n: int) -> bool:
    new = m.get("new")
    if not new:
        print("new path failed")
        return False
    peer = m.get("chdb")
    print(f"\n10M-class run: {n:,} events, 5 steps, first-touch breakdown (medians of "
          f"{new['n']} interleaved runs, {os.cpu_count()} CPUs; imports not timed)")
    print(f"  {'':<44} {'wall s':>7} {'CPU s':>7} {'peak MiB':>9} {'imports s':>9}"
          + ("   vs chdb: wall    CPU" if peer else ""))
    for k, label in LABELS.items():
        if k in m:
            r = m[k]
            vs = (f"   {r['seconds'] / peer['seconds']:12.2f}x {r['cpu'] / peer['cpu']:5.2f}x"
                  if peer else "")
            print(f"  {label:<44} {r['seconds']:7.2f} {r['cpu']:7.2f} {r['peak_rss_mb']:9.0f} "
                  f"{r['imports']:9.2f}{vs}   (load {r['load']:.1f}) totals {r['totals']}")
    if "old" in m:
        r = new["seconds"] / m["old"]["seconds"]
        print(f"  new / old = {r:.2f}x wall, {new['cpu'] / m['old']['cpu']:.2f}x CPU  "
              f"[target <= 1.3x: {'OK' if r <= 1.3 else 'MISSED'}]")
    if peer:
        r = new["seconds"] / peer["seconds"]
        print(f"  new / chdb windowFunnel = {r:.2f}x wall, {new['cpu'] / peer['cpu']:.2f}x CPU "
              f"[target <= 1.2x wall: {'OK' if r <= 1.2 else 'MISSED'}]; peak "
              f"{new['peak_rss_mb']:.0f} MiB [target < 2048: "
              f"{'OK' if new['peak_rss_mb'] < 2048 else 'MISSED'}]")
    ok = all(r["same"] and r["totals"] == new["totals"] for r in m.values())
    print(f"  step totals agree across runs and contenders: {ok}")
    return ok


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--big-events", type=int, default=100_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--spark-repeats", type=int, default=3)
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB cap for the big run")
    ap.add_argument("--cache", default=os.environ.get(
        "FUNNEL_BENCH_CACHE", str(Path.home() / ".cache" / "funnel_models" / "bench")))
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-spark", action="store_true")
    ap.add_argument("--skip-10m", action="store_true", help="skip the new/old/chdb comparison")
    ap.add_argument("--only", default="new,ibis,old,chdb",
                    help="comma-separated contenders of the 10M comparison")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        WORKERS[args.worker](args.path, args)
        return
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs, 1-min load {os.getloadavg()[0]:.1f} at start")
    path = ensure_file(cache, args.events, args.seed)
    kinds = [k for k in args.only.split(",") if k in LABELS]
    if "chdb" in kinds and not have("chdb"):
        kinds.remove("chdb")
        print("chdb not installed: peer baseline skipped (pip install '.[peers]')")
    ok = args.skip_10m or report_10m(medians(kinds, path, args), args.events)
    if not args.skip_spark:
        if have("pyspark"):
            s = medians(["spark"], path, argparse.Namespace(**{**vars(args),
                                                                 "repeats": args.spark_repeats}))
            s = s.get("spark")
            if s:
                print(f"\nSpark local[2], {args.events:,} events: {s['seconds']:.2f} s (median of "
                      f"{s['n']}; session start not timed; Python driver RSS "
                      f"{s['peak_rss_mb']:.0f} MiB, JVM not counted), totals {s['totals']}")
        else:
            print("\npyspark not installed: Spark figure skipped (pip install '.[spark]')")
    if not args.skip_big:
        big = ensure_file(cache, args.big_events, args.seed)
        b = medians(["big"], big, args).get("big")
        if b:
            okm = b["peak_rss_mb"] < 4096
            print(f"\n{args.big_events:,} events from Parquet on DuckDB (memory_limit "
                  f"{args.memory_limit}, 2 threads): {b['seconds']:.1f} s, peak RSS "
                  f"{b['peak_rss_mb']:.0f} MiB [target < 4096: {'OK' if okm else 'MISSED'}] "
                  f"(median of {b['n']}); totals {b['totals']}")
    print(f"\n1-min load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
