"""Speed of the simulator: forecast and leads_needed on 4,000 posterior draws, 6 stages, 12 months.

Run: ``/work/venv/bin/python benchmarks/bench_simulate.py [--repeats 20]``

The posterior is Dirichlet draws around the demo truth (``synthetic_posterior``), the
pipeline is the demo's open pipeline at its cut-off and new leads are the recent monthly
volume. The "per-draw python loop baseline" is a straightforward forecast that loops over
draws, months and stages in Python with ``Generator.multinomial``.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from typing import Callable

import numpy as np

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.simulate import expected_wins, forecast, leads_from_history, leads_needed, synthetic_posterior
from funnel_models.simulate.core import pipeline_counts


def per_draw_python_loop_forecast(P: np.ndarray, entry: np.ndarray, x0: np.ndarray, leads: np.ndarray,
                                  horizon: int, seed: int) -> np.ndarray:
    """Per-draw python loop baseline: wins (draws, H) with one multinomial per draw, month and stage."""
    rng = np.random.default_rng(seed)
    D, S, _ = P.shape
    K = S - 2
    wins = np.zeros((D, horizon), dtype=np.int64)
    for d in range(D):
        x = x0[:K].astype(np.int64)
        for m in range(horizon):
            new = np.zeros(S, dtype=np.int64)
            for k in range(K):
                if x[k]:
                    new += rng.multinomial(x[k], P[d, k])
            new += rng.multinomial(int(leads[m]), entry[d])
            wins[d, m] = new[K]
            x = new[:K]
    return wins


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds over ``repeats`` calls.

    CPU time is printed too because a shared machine inflates wall-clock time.
    """
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--horizon", type=int, default=12)
    args = ap.parse_args()

    d = demo_data()
    truth = d.truth.posterior()
    post = synthetic_posterior(truth, args.draws, concentration=150.0, seed=1)
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    lead_rate = leads_from_history(derive.transitions(snaps, d.spec))
    H = args.horizon
    target = math.ceil(1.3 * expected_wins(truth, pipe, lead_rate, H)[0].sum())
    print(f"posterior: {post.n_draws} draws, {post.n_stages} stages; horizon {H} months; "
          f"pipeline {len(pipe)} open leads; {lead_rate:.0f} new leads/month; target {target} wins by month {H}")

    res = leads_needed(post, target, H, pipeline=pipe, seed=0)
    print(f"leads_needed answer: {res.message}")
    t_plan, c_plan = timed(lambda: leads_needed(post, target, H, pipeline=pipe, seed=0), args.repeats)
    t_curve, c_curve = timed(lambda: leads_needed(post, target, H, pipeline=pipe, seed=0).curve, args.repeats)
    t_fc, c_fc = timed(lambda: forecast(post, pipe, lead_rate, H, seed=0), args.repeats)
    x0 = pipeline_counts(post, pipe)
    leads = np.rint(np.full(H, lead_rate))
    t_base, c_base = timed(lambda: per_draw_python_loop_forecast(post.P, post.entry, x0, leads, H, 0),
                      args.baseline_repeats)
    # sanity: the baseline and the vectorised engine agree in distribution
    fc = forecast(post, pipe, lead_rate, H, seed=0)
    base_wins = per_draw_python_loop_forecast(post.P, post.entry, x0, leads, H, 1)
    print(f"mean total wins: vectorised {fc.wins.sum(1).mean():.2f}, baseline {base_wins.sum(1).mean():.2f}, "
          f"exact {fc.expected_wins.sum(1).mean():.2f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) {load:.1f} on {os.cpu_count()} CPUs; medians, wall / CPU:")
    print(f"  leads_needed                    {1e3 * t_plan:7.1f} / {1e3 * c_plan:7.1f} ms  (target < 50 ms; "
          f"{res.meta['evaluations']} exact P(hit) evaluations over {res.meta['sims']} simulations)")
    print(f"  leads_needed + .curve ({len(res.curve)} pts)   {1e3 * t_curve:7.1f} / {1e3 * c_curve:7.1f} ms")
    print(f"  forecast                        {1e3 * t_fc:7.1f} / {1e3 * c_fc:7.1f} ms  (target < 200 ms)")
    print(f"  per-draw python loop baseline   {1e3 * t_base:7.1f} / {1e3 * c_base:7.1f} ms  "
          f"(forecast, {args.baseline_repeats} repeats)")
    print(f"speed-up of forecast over the per-draw python loop baseline: {t_base / t_fc:.1f}x wall, "
          f"{c_base / c_fc:.1f}x CPU")


if __name__ == "__main__":
    main()
