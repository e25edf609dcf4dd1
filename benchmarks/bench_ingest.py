"""Benchmark: ingest a 1,000,000-row stage-history CSV into a funnel store.

Usage::

    /work/venv/bin/python benchmarks/bench_ingest.py [--rows 1000000] [--repeats 3]

A seeded synthetic stage history (lead_id, stage, entered_at, region, campaign, value) is
written to a temporary directory. Each measurement runs in a fresh child process so that
peak RSS belongs to that measurement alone (read with ``os.wait4``, i.e. the child's own
``ru_maxrss``, equivalent to ``RUSAGE_CHILDREN`` for one child). The parent imports
neither numpy nor pandas and generates the data in a child too: on Linux a child's
``ru_maxrss`` starts at its parent's RSS at fork time.

* ``api``: ``readers.read_history`` + ``Store.ingest`` into a new store (wall time
  measured inside the child, excluding interpreter start-up and imports);
* ``cli``: ``python -m funnel_models.cli ingest FILE --spec ... --store ...`` end to end;
* ``baseline``: plain ``pandas.read_csv`` of the same file (wall inside the child);
* ``validate``: a second, closer baseline: ``pandas.read_csv`` (strings) +
  ``to_datetime`` / ``isin`` / ``to_numeric`` checks + sort by lead and date.

Each is repeated ``--repeats`` times; medians are quoted, and the ratio
"ingest / pandas.read_csv baseline" uses the medians. Targets: < 30 s, < 2 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


SPEC = """\
stages:
  - {code: NEW, name: New lead}
  - {code: QUAL, name: Qualified}
  - {code: DEMO, name: Demo}
  - {code: PROP, name: Proposal}
won: [WON]
lost: [LOST]
attributes: [region, campaign]
"""
STAGES = ["NEW", "QUAL", "DEMO", "PROP", "WON", "LOST"]


def generate(path: Path, rows: int, seed: int = 20240501) -> int:
    """Write a seeded stage history of exactly ``rows`` rows; return the row count."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(seed)
    n_leads = rows // 2 + 1                                    # mean depth 3: more rows than needed
    depth = rng.integers(1, 6, size=n_leads)                  # 1..5 stage changes per lead
    total = int(depth.sum())
    lead = np.repeat(np.arange(n_leads), depth)
    pos = np.arange(total) - np.repeat(np.cumsum(depth) - depth, depth)   # 0..depth-1
    last = pos == np.repeat(depth - 1, depth)
    closing = rng.random(total) < 0.4
    stage = np.where(last & closing & (pos > 0), np.where(rng.random(total) < 0.3, 4, 5), np.minimum(pos, 3))
    start = np.datetime64("2019-01-01") + rng.integers(0, 5 * 365, size=n_leads).astype("timedelta64[D]")
    gaps = rng.integers(1, 60, size=total) * (pos > 0)      # days since the previous change
    cum = np.cumsum(gaps)
    first = np.cumsum(depth) - depth                          # index of each lead's first row
    offset = (cum - np.repeat(cum[first], depth)).astype("timedelta64[D]")
    entered = np.repeat(start, depth) + offset
    df = pd.DataFrame({
        "lead_id": pd.Series(lead).map("L{:07d}".format),
        "stage": np.array(STAGES)[stage],
        "entered_at": pd.Series(entered).dt.strftime("%Y-%m-%d"),
        "region": np.array(["EU", "US", "APAC", "LATAM"])[rng.integers(0, 4, size=n_leads)][lead],
        "campaign": np.char.add("c", rng.integers(0, 40, size=n_leads).astype(str))[lead],
        "value": np.round(rng.lognormal(9, 1, size=n_leads), 2)[lead],
    })
    df = df.iloc[:rows]                                       # exactly `rows` (last history cut short)
    df.to_csv(path, index=False)
    return len(df)


def _child(mode: str, csv_path: str, spec_path: str, store_path: str) -> None:
    """Run one measurement inside a fresh process; print a JSON line."""
    import pandas as pd
    if mode == "generate":
        print(json.dumps({"rows": generate(Path(csv_path), int(spec_path))}))
        return
    if mode == "api":
        import warnings

        from funnel_models.data.readers import read_history
        from funnel_models.data.store import Store
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = read_history(csv_path, spec_path)
        t1 = time.perf_counter()
        report = Store(store_path).ingest(df, "history", source=csv_path)
        t2 = time.perf_counter()
        print(json.dumps({"wall": t2 - t0, "read": t1 - t0, "store": t2 - t1, "rows": report.rows}))
    elif mode == "pandas":
        t0 = time.perf_counter()
        df = pd.read_csv(csv_path)
        print(json.dumps({"wall": time.perf_counter() - t0, "rows": len(df)}))
    else:  # "pandas-validate": the pandas equivalent of read_history, without row-level messages
        t0 = time.perf_counter()
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        when = pd.to_datetime(df["entered_at"], format="ISO8601", errors="coerce")
        bad = (df["lead_id"].str.strip() == "") | when.isna() | ~df["stage"].isin(STAGES)
        bad |= pd.to_numeric(df["value"], errors="coerce").isna() & (df["value"] != "")
        assert not bad.any()
        df = df.assign(entered_at=when).sort_values(["lead_id", "entered_at"], kind="stable")
        print(json.dumps({"wall": time.perf_counter() - t0, "rows": len(df)}))


def _measure(cmd: list[str]) -> tuple[dict, float, float]:
    """Run ``cmd``; return (its JSON output or {}, wall seconds, peak RSS MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode}):\n{err}")
    last = [ln for ln in out.splitlines() if ln.startswith("{")]
    data = json.loads(last[-1]) if last else {}
    return data, wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def main(argv: list[str] | None = None) -> int:
    """Generate the data, run the measurements, print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=4, metavar=("MODE", "CSV", "SPEC", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        d = Path(tmp)
        csv_path, spec_path = d / "history.csv", d / "spec.yaml"
        spec_path.write_text(SPEC)
        t0 = time.perf_counter()
        me = [sys.executable, str(Path(__file__).resolve())]
        # generate in a child: the parent stays small, because on Linux an exec'd child's
        # ru_maxrss starts at the parent's RSS at fork time
        n = _measure(me + ["--child", "generate", str(csv_path), str(args.rows), "-"])[0]["rows"]
        print(f"generated {n:,} rows ({csv_path.stat().st_size / 2**20:.0f} MiB) in "
              f"{time.perf_counter() - t0:.1f} s; benchmark parent RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        res: dict[str, list[tuple[float, float]]] = {"api": [], "cli": [], "baseline": [], "validate": []}
        for i in range(args.repeats):
            data, _, rss = _measure(me + ["--child", "api", str(csv_path), str(spec_path), str(d / f"api{i}.duckdb")])
            assert data["rows"] == n, data
            res["api"].append((data["wall"], rss))
            print(f"  run {i + 1}: api {data['wall']:.2f} s (read {data['read']:.2f} + store "
                  f"{data['store']:.2f}), peak RSS {rss:.0f} MiB", flush=True)
            _, wall, rss = _measure([sys.executable, "-m", "funnel_models.cli", "ingest", str(csv_path),
                                     "--spec", str(spec_path), "--store", str(d / f"cli{i}.duckdb")])
            res["cli"].append((wall, rss))
            print(f"  run {i + 1}: cli {wall:.2f} s (incl. start-up), peak RSS {rss:.0f} MiB", flush=True)
            data, _, rss = _measure(me + ["--child", "pandas", str(csv_path), "-", "-"])
            res["baseline"].append((data["wall"], rss))
            print(f"  run {i + 1}: pandas.read_csv {data['wall']:.2f} s, peak RSS {rss:.0f} MiB", flush=True)
            data, _, rss = _measure(me + ["--child", "pandas-validate", str(csv_path), "-", "-"])
            res["validate"].append((data["wall"], rss))
            print(f"  run {i + 1}: pandas read_csv + to_datetime/isin checks + sort {data['wall']:.2f} s, "
                  f"peak RSS {rss:.0f} MiB", flush=True)
        med = {k: (statistics.median(w for w, _ in v), statistics.median(r for _, r in v)) for k, v in res.items()}
        print(f"\nmedian of {args.repeats} runs, {n:,} rows:")
        print(f"  ingest (Python API: read_history + Store.ingest): {med['api'][0]:6.2f} s, peak RSS {med['api'][1]:6.0f} MiB")
        print(f"  funnel ingest (CLI, end to end):                  {med['cli'][0]:6.2f} s, peak RSS {med['cli'][1]:6.0f} MiB")
        print(f"  baseline pandas.read_csv (default options):       {med['baseline'][0]:6.2f} s, peak RSS {med['baseline'][1]:6.0f} MiB")
        print(f"  pandas read_csv + validation + sort (2nd baseline): {med['validate'][0]:6.2f} s, peak RSS {med['validate'][1]:6.0f} MiB")
        print(f"  ingest / pandas.read_csv baseline = {med['api'][0] / med['baseline'][0]:.1f}x")
        print(f"  ingest / (pandas read_csv + validation + sort) = {med['api'][0] / med['validate'][0]:.1f}x")
        ok = med["cli"][0] < 30 and max(med["cli"][1], med["api"][1]) < 2048
        print(f"  target < 30 s and < 2 GB: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
