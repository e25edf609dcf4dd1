"""Differential tests: the same random logs give identical funnels on DuckDB and on Spark,
and both agree with the plain-Python reference (per user: breakdown value and the time of
every filled step, hence counts, conversion times and breakdowns).

Each generated example is one funnel definition plus 40 small logs of disjoint users, run
as one query per engine. ``FUNNEL_DIFF_EXAMPLES`` sets the examples per ordering: 1 in the
default suite (40 logs), 5 in ``.ci/run`` (200 logs per ordering).
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from conftest import spark_table
from events_cases import FIXED_SEED, batches, n_examples
from test_events_reference import check


@pytest.mark.parametrize("order", ["ordered", "strict", "unordered"])
def test_spark_duckdb_and_reference_agree(spark, order):
    @settings(max_examples=n_examples(1), deadline=None, database=None, derandomize=FIXED_SEED,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batches(order))
    def run(case):
        cfg, events = case
        on_duckdb = check(events, cfg)
        on_spark = check(events, cfg, source=lambda df: spark_table(spark, df))
        keys = ["user_id", "breakdown"]
        assert (on_spark.users.sort_values(keys).reset_index(drop=True)
                .equals(on_duckdb.users.sort_values(keys).reset_index(drop=True)))

    run()
