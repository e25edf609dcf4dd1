"""The Ibis funnel on DuckDB agrees with the plain-Python reference on random logs.

Each generated example is one funnel definition (steps, window, optional step, exclusion,
attribution) and 40 small logs of disjoint users; per user, the breakdown value and the time
of every filled step must be identical. ``FUNNEL_DIFF_EXAMPLES`` raises the number of
examples (``.ci/run`` runs 5, i.e. 200 logs per ordering; the Spark differential test in
``test_events_spark.py`` uses the same cases).
"""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from events_cases import FIXED_SEED, batches, funnel_kwargs, n_examples
from events_reference import Config, engine_table, reference, to_frame
from funnel_models.events import funnel

ORDERS = ["ordered", "strict", "unordered"]


def norm(df):
    out = df.copy()
    for c in out.columns:
        out[c] = out[c].astype("Int64") if c.startswith("s") else out[c].astype(str)
    return out


def check(events, cfg, source=None):
    res = funnel(to_frame(events) if source is None else source(to_frame(events)),
                 cfg.steps, **funnel_kwargs(cfg))
    got = norm(engine_table(res, len(cfg.steps)))
    want = norm(reference(events, cfg))
    diff = got.merge(want, how="outer", indicator=True).query("_merge != 'both'")
    if len(diff):
        bad = set(diff["user_id"])
        mine = sorted((e for e in events if e[0] in bad), key=str)
        raise AssertionError(f"{cfg}\nengine vs reference:\n{diff}\nevents: {mine}")
    return res


@pytest.mark.parametrize("order", ORDERS)
def test_engine_matches_reference(order):
    # no shrinking: a failure prints the definition, the differing users and their events
    @settings(max_examples=n_examples(4), deadline=None, database=None, derandomize=FIXED_SEED,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batches(order))
    def run(case):
        check(case[1], case[0])

    run()


@pytest.mark.parametrize("events, cfg", [
    ([("u1", 0, "a"), ("u1", 1, "x"), ("u1", 2, "b")], Config(["a", "b"], 5, "strict")),
    ([("u1", 0, "a"), ("u1", 5, "b")], Config(["a", "b"], 5, "ordered")),          # at limit
    ([("u1", 0, "a"), ("u1", 6, "b")], Config(["a", "b"], 5, "ordered")),          # 1 s over
    ([("u1", 3, "b"), ("u1", 3, "a"), ("u1", 3, "x")], Config(["a", "b"], 1, "strict")),
    ([("u1", 0, "a"), ("u1", 1, "a"), ("u1", 2, "b")], Config(["a", "a", "b"], 5, "ordered")),
    ([("u2", 5, "a"), ("u2", 5, "b"), ("u2", 8, "c")], Config(["a", "c"], 4, "strict")),
    ([("u1", 0, "a"), ("u1", 1, "x"), ("u1", 31, "a")],
     Config(["a", "b"], 10, "ordered", exclusions=[("x", 0, 1)])),
])
def test_reference_examples(events, cfg):
    check(events, cfg)


def test_tied_starts_share_one_completion_in_unordered_funnels():
    """Found by the random logs: three step events at t=5 all start windows that complete at
    t=8 with an exclusion event at t=7 in between, so every one of them is excluded; only the
    attempt starting at t=8 counts (one step). The engine once let the later tied starts
    through because it counted their window's events from the row, not from the time."""
    cfg = Config(steps=["b", "c", "b", "b"], window=5, order="unordered", exclusions=[("x", 0, 3)],
                 optional=[], attribution="step:0")
    events = [("u", 2, "a", None), ("u", 4, "x", None), ("u", 5, "b", None), ("u", 5, "b", None),
              ("u", 5, "c", None), ("u", 7, "x", "g"), ("u", 8, "b", None)]
    counts = check(events, cfg).counts
    counts = counts.sum() if isinstance(counts, pd.DataFrame) else counts
    assert counts.tolist() == [1, 0, 0, 0]
