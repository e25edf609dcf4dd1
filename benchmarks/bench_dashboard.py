"""Latency of the what-if dashboard's recompute handler (issue 6: < 100 ms p95).

Builds the dashboard on the demo data in quick mode (default parameters), then sets each
control programmatically about 50 times (cycling through a few values so the simulator's
result caches are hit as they would be by a user going back and forth, plus fresh values
that miss them) and records the wall time of the handler triggered by the change
(``recompute``: simulator calls + rendering of every output).

Baseline, in the same run: "recompute from scratch" -- for the same control values,
``model.posterior_funnel(segment)`` (2000 draws, no thinning), the segment's open
pipeline derived again from the history (``data.pipeline()``), ``adjust``, and every
simulator call (leads_needed, plan_problem, forecast, leverage) with no caching.

Run:  python benchmarks/bench_dashboard.py [--n 50] [--draws 1000]
"""
from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="changes per control")
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--baseline-n", type=int, default=15, help="from-scratch recomputes per control")
    args = ap.parse_args()

    from funnel_models import simulate as S
    from funnel_models.dashboard import WhatIfDashboard
    from funnel_models.simulate.planning import plan_problem

    t0 = time.perf_counter()
    dash = WhatIfDashboard.from_params(None, draws=args.draws)
    print(f"startup (load demo, quick fit, first recompute): {time.perf_counter() - t0:.2f} s")
    d = dash.defaults
    stage = dash.stages[3]
    seg_factor = next(iter(dash.segment_controls), None)
    controls = {
        "target": (dash.target, [d["target"] * f for f in (0.9, 1.0, 1.1, 1.2, 0.95)]),
        "confidence": (dash.confidence, [0.7, 0.8, 0.9, 0.95, 0.85]),
        "window": (dash.window, [d["window"] - 2, d["window"], d["window"] + 2, d["window"] - 1]),
        "leads": (dash.leads, [int(d["leads"] * f) for f in (0.8, 1.0, 1.2, 1.5, 0.9)]),
        f"conversion[{stage}]": (dash.conversion[stage], [0.8, 1.0, 1.2, 1.1, 0.9]),
        f"stall[{stage}]": (dash.stall[stage], [0.5, 1.0, 1.5, 0.75]),
    }
    if seg_factor:
        controls[f"segment[{seg_factor}]"] = (dash.segment_controls[seg_factor],
                                             ["all", *dash.segments[seg_factor]])
    fresh = {  # never-seen values: only the simulator calls depending on the control rerun
        "target": lambda i: round(d["target"] * (0.8 + 0.008 * i), 1),
        "confidence": lambda i: round(0.5 + 0.0098 * i, 4),
        "leads": lambda i: int(d["leads"] * 0.7) + 3 * i,
    }

    compute: dict[bool, list[float]] = {}

    def run(cold: bool) -> dict[str, list[float]]:
        """Wall time of each control change (observer -> simulator -> rendering of every output).

        cold: every change needs fresh simulator results -- target, confidence and leads take
        values never seen before (only the calls that depend on them rerun); for window,
        stage multipliers and segment, which every output depends on, the result caches are
        emptied before each change. The per-segment thinned posterior and pipeline stay
        cached (the "cached posterior"). warm: values cycle and caches are kept (a user
        going back and forth).
        """
        out: dict[str, list[float]] = {}
        compute[cold] = []
        for name, (w, values) in controls.items():
            ts = []
            cyc = itertools.cycle(values)
            i = 0
            while len(ts) < args.n:
                i += 1
                v = fresh[name](i) if cold and name in fresh else next(cyc)
                if w.value == v:
                    continue
                if cold and name not in fresh:
                    dash._results.clear()
                t = time.perf_counter()
                w.value = v                     # the observer runs recompute synchronously
                ts.append(time.perf_counter() - t)
                compute[cold].append(dash.state.meta["compute_seconds"])
                assert dash.state.error is None, dash.state.error
            out[name] = ts
            dash.reset_controls()
        return out

    cold = run(cold=True)
    warm = run(cold=False)
    # baseline: from scratch, no caches, no thinning
    def from_scratch() -> float:
        a = dash.simulator_args()
        t = time.perf_counter()
        post = dash.model.posterior_funnel(a["segment"] or None)
        pipe = dash.data.pipeline()
        for f, lv in a["segment"].items():
            pipe = pipe[pipe[f].astype(str) == lv]
        post = post.adjust(conversion=a["conversion"], stall=a["stall"])
        S.leads_needed(post, a["target"], a["window"], pipeline=pipe, confidence=a["confidence"],
                       target_unit=a["target_unit"], seed=0)
        plan_problem(post, a["target"], a["window"], pipeline=pipe, target_unit=a["target_unit"],
                     seed=0).probability(a["leads"])
        S.forecast(post, pipe, a["leads"], a["window"], seed=0)
        S.leverage(post, pipe, a["leads"], a["window"])
        return time.perf_counter() - t

    base: list[float] = []
    for name, (w, values) in controls.items():
        dash._suspend += 1                   # set controls without triggering the handler
        try:
            for v in values[: max(1, args.baseline_n // len(values) + 1)]:
                w.value = v
                base.append(from_scratch())
        finally:
            dash._suspend -= 1
        dash.reset_controls()

    print(f"\nrecompute handler latency, wall time of one control change incl. rendering (ms); "
          f"draws={dash.draws}, forecast_draws={dash.forecast_draws}, leverage_draws={dash.leverage_draws}, "
          f"window={d['window']} months")
    summary = {}
    for label, timings, comp in (("COLD (fresh simulator results; posterior cached)", cold, compute[True]),
                                 ("WARM (result caches kept)", warm, compute[False])):
        print(f"\n{label}")
        print(f"{'control':<22}{'n':>4}{'p50':>9}{'p95':>9}{'max':>9}")
        for name, ts in timings.items():
            print(f"{name:<22}{len(ts):>4}{pct(ts, 50):>9.1f}{pct(ts, 95):>9.1f}{1000 * max(ts):>9.1f}")
        allt = [x for ts in timings.values() for x in ts]
        summary[label] = (pct(allt, 50), pct(allt, 95))
        print(f"{'ALL':<22}{len(allt):>4}{pct(allt, 50):>9.1f}{pct(allt, 95):>9.1f}{1000 * max(allt):>9.1f}")
        print(f"{'  of which simulator':<22}{len(comp):>4}{pct(comp, 50):>9.1f}{pct(comp, 95):>9.1f}"
              f"{1000 * max(comp):>9.1f}")
    b50, b95 = pct(base, 50), pct(base, 95)
    print(f"\nbaseline 'recompute from scratch incl. posterior_funnel() (2000 draws, no thinning), "
          f"pipeline derivation, no caches' ({len(base)} runs): p50 {b50:.1f} ms, p95 {b95:.1f} ms")
    c50, c95 = summary["COLD (fresh simulator results; posterior cached)"]
    print(f"ratio COLD dashboard / baseline: p50 {c50 / b50:.2f}, p95 {c95 / b95:.2f} "
          f"({b50 / c50:.1f}x faster at p50)")
    print(f"target p95 < 100 ms (COLD): {'met' if c95 < 100 else 'NOT met'}")
    print(f"load average during the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
