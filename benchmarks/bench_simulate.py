"""Speed of the simulator: forecast and leads_needed on 4,000 posterior draws, 6 stages, 12 months.

Run: ``python benchmarks/bench_simulate.py [--repeats 10]``

Three posteriors are timed in one process: the memoryless chain (A = 1 age), the
(stage, months in stage) chain with A = 13 ages whose hazards fall with age
(``aged_posterior``), and the same with month shocks (``shock_sd`` 0.2, drawn afresh for
every simulated future and, in leads_needed, one path per simulation). Each is Dirichlet
draws around the demo truth (``synthetic_posterior``); the pipeline is the demo's open
pipeline at its cut-off, by age, and new leads are the recent monthly volume.

The baseline, "per-draw python loop", is a straightforward forecast that loops over
draws, months and occupied (stage, age) states in Python with ``Generator.multinomial``;
it runs on the same posterior in the same process. Medians of wall-clock and CPU time.

Last, the "conversion +10%" lever on a stage that records no losses (``scale_forward``
takes the extra from leads that would stay and go cold, by bisection per draw): timed
against the same bisection run on the whole chain (each step copying every stage's
rates, as before the one-stage view), on the aged posterior with its first stage's
losses removed; both reach the same conversions.
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
from funnel_models import chain
from funnel_models.posterior import PosteriorFunnel, _onward_from, scale_forward
from funnel_models.simulate import expected_wins, forecast, leads_from_history, leads_needed, synthetic_posterior
from funnel_models.simulate.core import aged_posterior, pipeline_state


def per_draw_python_loop_forecast(post: PosteriorFunnel, x0: np.ndarray, leads: np.ndarray, horizon: int,
                                  seed: int) -> np.ndarray:
    """Per-draw python loop baseline: wins (draws, H), one multinomial per draw, month and
    occupied (stage, age); no month shocks."""
    rng = np.random.default_rng(seed)
    D, K, A = post.n_draws, post.n_stages, post.n_ages
    wins = np.zeros((D, horizon), dtype=np.int64)
    for d in range(D):
        x = x0.astype(np.int64)
        for m in range(horizon):
            nxt = np.zeros((K, A), dtype=np.int64)
            for k, a in zip(*np.nonzero(x)):
                flow = rng.multinomial(x[k, a], post.rates[d, k, a])
                nxt[k, min(a + 1, A - 1)] += flow[k]
                nxt[k + 1:, 0] += flow[k + 1:K]
                wins[d, m] += flow[K]
            new = rng.multinomial(int(leads[m]), post.entry[d])
            nxt[:, 0] += new[:K]
            wins[d, m] += new[K]
            x = nxt
    return wins


def whole_chain_scale_forward(rates: np.ndarray, k: int, factor: float) -> np.ndarray:
    """Baseline of the conversion lever: the bisection of ``scale_forward`` on copies of the whole chain."""
    f = np.full(rates.shape[0], factor)
    R = _onward_from(rates, k, f, lost=True)
    target = np.minimum(chain.forward_share(rates)[:, k] * f, 1.0)
    short = chain.forward_share(R)[:, k] < target - 1e-9
    lo, hi = np.zeros(len(f)), np.full(len(f), 30.0)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = chain.forward_share(_onward_from(R, k, np.exp(mid), lost=False))[:, k] < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where(short[:, None, None, None], _onward_from(R, k, np.exp(hi), lost=False), R)


def bench_lever(post: PosteriorFunnel, repeats: int) -> None:
    """Print the conversion lever on a stage without losses next to its whole-chain baseline."""
    K = post.n_stages
    rates = post.rates.copy()
    rates[:, 0, :, K + 1] = 0.0                       # stage 0 records no losses: leads go cold
    rates[:, 0] /= rates[:, 0].sum(-1, keepdims=True)
    ours = scale_forward(rates, 0, np.full(post.n_draws, 1.1))
    base = whole_chain_scale_forward(rates, 0, 1.1)
    gap = np.abs(chain.forward_share(ours)[:, 0] - chain.forward_share(base)[:, 0]).max()
    t_ours, c_ours = timed(lambda: scale_forward(rates, 0, np.full(post.n_draws, 1.1)), repeats)
    t_base, c_base = timed(lambda: whole_chain_scale_forward(rates, 0, 1.1), repeats)
    print(f"\nconversion +10% at a stage without losses: {post.n_draws} draws, {K} stages, {post.n_ages} ages "
          f"(largest conversion difference to the baseline {gap:.1e})")
    print(f"  scale_forward (one-stage view)  {1e3 * t_ours:8.1f} / {1e3 * c_ours:8.1f} ms")
    print(f"  whole-chain bisection baseline  {1e3 * t_base:8.1f} / {1e3 * c_base:8.1f} ms")
    print(f"  speed-up over the whole-chain baseline: {t_base / t_ours:.1f}x wall, {c_base / c_ours:.1f}x CPU")


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


def bench(name: str, post: PosteriorFunnel, pipe: object, lead_rate: float, target: int, H: int,
          repeats: int, baseline_repeats: int) -> None:
    """Print the timings of one posterior next to the per-draw python loop baseline."""
    res = leads_needed(post, target, H, pipeline=pipe, seed=0)
    t_plan, c_plan = timed(lambda: leads_needed(post, target, H, pipeline=pipe, seed=0), repeats)
    t_curve, c_curve = timed(lambda: leads_needed(post, target, H, pipeline=pipe, seed=0).curve, repeats)
    t_fc, c_fc = timed(lambda: forecast(post, pipe, lead_rate, H, seed=0), repeats)
    x0 = pipeline_state(post, pipe)
    leads = np.rint(np.full(H, lead_rate))
    t_base, c_base = timed(lambda: per_draw_python_loop_forecast(post, x0, leads, H, 0), baseline_repeats)
    fc = forecast(post, pipe, lead_rate, H, seed=0)
    base_wins = per_draw_python_loop_forecast(post, x0, leads, H, 1)
    print(f"\n{name}: {post.n_draws} draws, {post.n_stages} stages, {post.n_ages} age(s); {res.message}")
    print(f"  mean total wins: vectorised {fc.wins.sum(1).mean():.2f}, baseline {base_wins.sum(1).mean():.2f}, "
          f"exact (no shocks) {fc.expected_wins.sum(1).mean():.2f}")
    print("  medians, wall / CPU:")
    print(f"  leads_needed                    {1e3 * t_plan:8.1f} / {1e3 * c_plan:8.1f} ms  "
          f"({res.meta['evaluations']} exact P(hit) evaluations over {res.meta['sims']} simulations)")
    print(f"  leads_needed + .curve ({len(res.curve)} pts)   {1e3 * t_curve:8.1f} / {1e3 * c_curve:8.1f} ms")
    print(f"  forecast                        {1e3 * t_fc:8.1f} / {1e3 * c_fc:8.1f} ms")
    print(f"  per-draw python loop baseline   {1e3 * t_base:8.1f} / {1e3 * c_base:8.1f} ms  "
          f"(forecast, {baseline_repeats} repeats)")
    print(f"  speed-up of forecast over the per-draw python loop baseline: {t_base / t_fc:.1f}x wall, "
          f"{c_base / c_fc:.1f}x CPU")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--baseline-repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=4000)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--ages", type=int, default=13)
    args = ap.parse_args()

    d = demo_data()
    truth = d.truth.posterior()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    lead_rate = leads_from_history(derive.transitions(snaps, d.spec))
    H = args.horizon
    K = truth.n_stages
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"horizon {H} months; pipeline {len(pipe)} open leads; {lead_rate:.0f} new leads/month; "
          f"load average (1 min) {load:.1f} on {os.cpu_count()} CPUs")
    old = aged_posterior(truth, args.ages, decay=0.85)
    cases = [("memoryless chain", truth), (f"(stage, age) chain, A = {args.ages}", old),
             (f"(stage, age) chain, A = {args.ages}, month shocks sd 0.2",
              aged_posterior(truth, args.ages, decay=0.85, shock_sd=np.full((1, K + 1), 0.2)))]
    for name, centre in cases:
        post = synthetic_posterior(centre, args.draws, concentration=150.0, seed=1)
        target = math.ceil(1.3 * expected_wins(centre, pipe, lead_rate, H)[0].sum())
        bench(name, post, pipe, lead_rate, target, H, args.repeats, args.baseline_repeats)
    bench_lever(synthetic_posterior(old, args.draws, concentration=150.0, seed=1), args.repeats)


if __name__ == "__main__":
    main()
