"""End-to-end time of ``funnel report`` on the demo (the default monthly report, MCMC).

Each repetition uses a fresh, empty fit cache folder (``FUNNEL_CACHE_DIR``):

- first run: kernel start, data, model compile + sampling (every variant the model
  compares), the inflow model, all sections, HTML export (target < 90 s on 2 cores);
- second run: the same with the fit loaded from the cache (target < 30 s);
- quick run: the same report with ``model: conjugate`` (exact, no MCMC): what the report
  costs without the sampler;
- baseline: the first run again with ``sampler: {processes: 1}``, every chain in the
  ``funnel`` process (before the second sampling process of ``models/chainsplit.py``).

Prints every run, the medians and the ratios second/first, quick/first and
first/baseline. Usage::

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


def run_once(cache: Path, out: Path, date: str, params: Path | None = None) -> float:
    env = dict(os.environ, FUNNEL_CACHE_DIR=str(cache))
    t0 = time.perf_counter()
    r = subprocess.run([FUNNEL, "report", *([str(params)] if params else []), "--quiet", "--output-dir", str(out),
                        "--date", date], cwd=ROOT, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"funnel report failed ({r.returncode}):\n{r.stderr}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    firsts, seconds, quicks, ones = [], [], [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cache, out = Path(tmp) / "cache", Path(tmp) / "reports"
            quick, one = Path(tmp) / "quick.yaml", Path(tmp) / "one.yaml"
            quick.write_text(f"extends: {ROOT / 'parameters' / 'default.yaml'}\nmodel: conjugate\n")
            one.write_text(f"extends: {ROOT / 'parameters' / 'default.yaml'}\nsampler: {{processes: 1}}\n")
            a = run_once(cache, out, "2026-01-01")
            b = run_once(cache, out, "2026-01-02")
            q = run_once(cache, out, "2026-01-03", quick)
            o = run_once(Path(tmp) / "cache_one", out, "2026-01-04", one)
        firsts.append(a)
        seconds.append(b)
        quicks.append(q)
        ones.append(o)
        print(f"run {i + 1}: first (empty cache) {a:6.1f} s   second (cached fit) {b:6.1f} s   quick (conjugate) "
              f"{q:6.1f} s   baseline (empty cache, one sampling process) {o:6.1f} s", flush=True)
    f, s, q, o = (statistics.median(x) for x in (firsts, seconds, quicks, ones))
    print(f"median of {args.repeat}: first {f:.1f} s (target < 90 s), second {s:.1f} s (target < 30 s), quick "
          f"{q:.1f} s, baseline {o:.1f} s; ratio second/first {s / f:.2f}, quick/first {q / f:.2f}, "
          f"first/baseline {f / o:.2f}")
    return 0 if f < 90 and s < 30 else 1


if __name__ == "__main__":
    sys.exit(main())
