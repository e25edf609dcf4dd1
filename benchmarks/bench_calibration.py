"""Simulation-based calibration of leads_needed on the demo funnel with known truth.

For each scenario (window, target) the plan at 80% confidence is computed from the true
parameters (the demo truth replicated to 500 draws, so there is no parameter
uncertainty), then 200 synthetic futures are simulated from the truth with fresh seeds
(real multinomial moves of the open pipeline and of the planned new leads). The plan must
hit the target in 80% +- 7% of them. The naive spreadsheet plan (target / product of
stage conversions, spread over the window) is simulated the same way.

A second block checks posterior-predictive calibration with parameter uncertainty: the
posterior is Dirichlet draws around the truth, and each future first draws its
parameters from that posterior. A third runs on one segment. The last block uses the
(stage, months in stage) chain with 13 ages whose hazards fall with age and month shocks
(sd 0.2): the pipeline enters by age, and every future draws its own months.

Run: ``python benchmarks/bench_calibration.py [--futures 200]``
"""
from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd

from funnel_models.data import derive
from funnel_models.datasets.demo import demo_data
from funnel_models.posterior import PosteriorFunnel
from funnel_models.simulate import expected_wins, leads_from_history, leads_needed, synthetic_posterior
from funnel_models.simulate.core import aged_posterior, calendar_months, pipeline_state, sampled_run

CONFIDENCE = 0.8
TOLERANCE = 0.07
#: (window, target as a multiple of the expected wins at the recent lead volume)
SCENARIOS = [((1, 6), 1.25), ((1, 12), 1.25), ((1, 12), 1.5), ((4, 9), 1.3), ((7, 12), 1.2), ((1, 9), 1.1)]


def hit_rate(post: PosteriorFunnel, x0: np.ndarray, plan: np.ndarray, target: float, window: tuple[int, int],
             n: int, seed: int) -> float:
    """Share of ``n`` futures (parameters drawn from ``post``) with >= target wins in the window."""
    a, T = window
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, post.n_draws, n)
    ent, _, _ = sampled_run(post.take(idx), x0, np.asarray(plan, dtype=np.int64), calendar_months(None, T), rng)
    return float(np.mean(ent[:, a - 1:T, post.n_stages].sum(1) >= target))


def run_block(name: str, plan_post: PosteriorFunnel, world: PosteriorFunnel, pipe: pd.DataFrame, rate: float,
              truth: PosteriorFunnel, futures: int, seed0: int) -> pd.DataFrame:
    x0 = pipeline_state(world, pipe)
    rows = []
    for i, (window, mult) in enumerate(SCENARIOS):
        a, T = window
        target = math.ceil(mult * expected_wins(truth, pipe, rate, T)[0, a - 1:T].sum())
        res = leads_needed(plan_post, target, window, pipeline=pipe, confidence=CONFIDENCE, seed=seed0 + i)
        row = {"block": name, "window": f"{a}-{T}", "target": target, "leads": res.leads,
               "P_model": round(res.probability, 3)}
        if res.feasible:
            row["hit_rate"] = hit_rate(world, x0, res.monthly_leads, target, window, futures, 10_000 + seed0 + i)
            row["ok"] = abs(row["hit_rate"] - CONFIDENCE) <= TOLERANCE
        row["naive_leads"] = res.naive_leads
        row["naive_P_model"] = round(res.naive_probability, 3)
        if res.naive_leads is not None:
            row["naive_hit_rate"] = hit_rate(world, x0, np.full(T, res.naive_leads), target, window, futures,
                                             20_000 + seed0 + i)
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--futures", type=int, default=200)
    args = ap.parse_args()
    d = demo_data()
    truth = d.truth.posterior()
    pipe = derive.open_pipeline(d.history, d.spec, cutoff=d.cutoff)
    snaps = derive.snapshots_from_history(d.history, d.spec, cutoff=d.cutoff)
    rate = leads_from_history(derive.transitions(snaps, d.spec))
    print(f"demo truth, pipeline {len(pipe)} open leads, recent volume {rate:.0f} leads/month; "
          f"{args.futures} futures per plan; pass = hit rate within {CONFIDENCE:.0%} +- {TOLERANCE:.0%}")

    known = synthetic_posterior(truth, 500)
    t1 = run_block("known truth", known, truth, pipe, rate, truth, args.futures, 0)
    uncertain = synthetic_posterior(truth, 2000, concentration=150.0, seed=3)
    t2 = run_block("posterior (Dirichlet, c=150)", uncertain, uncertain, pipe, rate, truth, args.futures, 100)
    seg = {"region": "North", "channel": "Partner"}
    seg_truth = d.truth.posterior(seg)
    seg_pipe = pipe[(pipe["region"] == seg["region"]) & (pipe["channel"] == seg["channel"])]
    seg_rate = rate * d.truth.shares["region"]["North"] * d.truth.shares["channel"]["Partner"]
    t3 = run_block("segment North/Partner", synthetic_posterior(seg_truth, 500), seg_truth, seg_pipe, seg_rate,
                   seg_truth, args.futures, 200)
    K = truth.n_stages
    old = aged_posterior(truth, 13, decay=0.85, shock_sd=np.full((1, K + 1), 0.2))
    t4 = run_block("13 ages, month shocks", synthetic_posterior(old, 500), old, pipe, rate, old, args.futures, 300)
    table = pd.concat([t1, t2, t3, t4], ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False))
    feasible = table.dropna(subset=["hit_rate"])
    print(f"\nplans at {CONFIDENCE:.0%}: mean hit rate {feasible['hit_rate'].mean():.3f} over {len(feasible)} plans; "
          f"{int(feasible['ok'].sum())}/{len(feasible)} within +-{TOLERANCE:.0%}")
    print(f"naive plans: hit rates {', '.join(f'{x:.2f}' for x in table['naive_hit_rate'])} "
          f"(mean {table['naive_hit_rate'].mean():.2f})")


if __name__ == "__main__":
    main()
