"""End-to-end time of ``funnel report`` on the demo (the default monthly report, MCMC).

Each repetition uses a fresh, empty fit cache folder (``FUNNEL_CACHE_DIR``):

- first run: kernel start, data, model compile + sampling, all sections, HTML export
  (target < 90 s);
- second run: the same with the fit loaded from the cache (target < 30 s).

Prints every run, the medians and the ratio second/first. Usage::

    python benchmarks/bench_report.py [--repeat N]

Run from the repository root (it calls the ``funnel`` next to this Python).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNNEL = str(Path(sys.executable).with_name("funnel"))


def run_once(cache: Path, out: Path, date: str) -> float:
    env = dict(os.environ, FUNNEL_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    r = subprocess.run([FUNNEL, "report", "--quiet", "--output-dir", str(out), "--date", date],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"funnel report failed ({r.returncode}):\n{r.stderr}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    firsts, seconds = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cache, out = Path(tmp) / "cache", Path(tmp) / "reports"
            a = run_once(cache, out, "2026-01-01")
            b = run_once(cache, out, "2026-01-02")
        firsts.append(a)
        seconds.append(b)
        print(f"run {i + 1}: first (empty cache) {a:6.1f} s   second (cached fit) {b:6.1f} s   ratio {b / a:.2f}",
              flush=True)
    f, s = statistics.median(firsts), statistics.median(seconds)
    print(f"median of {args.repeat}: first {f:.1f} s (target < 90 s), second {s:.1f} s (target < 30 s), "
          f"ratio second/first {s / f:.2f}")
    return 0 if f < 90 and s < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
