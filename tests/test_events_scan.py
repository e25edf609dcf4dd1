"""The tuned DuckDB path (funnel_models.events.scan) against the plain-Python reference and
against the portable Ibis path, on the funnels it serves; and its dispatch.

The random logs (events_cases) are dense in ties, so they exercise the repairs of the sort:
ties on time and step resolved by breakdown value, and, with the hash replaced by one that
collides on purpose, keys sharing a hash. ``FUNNEL_DIFF_EXAMPLES`` raises the number of
examples as for tests/test_events_reference.py.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from events_cases import FIXED_SEED, batches, distinct_step_configs, n_examples, tied_logs
from events_reference import Config, to_frame
from funnel_models.events import funnel, scan, synthetic_events
from funnel_models.events.query import build_query
from test_events_reference import check

STEPS = ["ad_click", "landing_view", "signup", "demo_request", "purchase"]


def _colliding_hash(x, real=scan._hash):
    """A "hash" of the first four characters: the users of one generated log (ids
    ``L000u1``, ``L000u2``) share it, so their rows interleave in the sort."""
    return real(x.substr(0, 4))


def _examples(body, tied=False):
    """``body(cfg, events)`` on generated funnels the tuned path serves; ``tied``: logs
    within three seconds, so most events tie on time with another."""
    logs = dict(logs=tied_logs) if tied else {}

    @settings(max_examples=n_examples(4), deadline=None, database=None, derandomize=FIXED_SEED,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(batches("ordered", configs=distinct_step_configs, **logs))
    def run(case):
        body(*case)

    run()


def _uses_scan(cfg: Config) -> bool:
    kwargs = dict(window=f"{cfg.window}s", order=cfg.order, breakdown="c",
                  attribution=cfg.attribution)
    return scan.supports(build_query(cfg.steps, **kwargs), "duckdb")


@pytest.mark.parametrize("tied", [False, True], ids=["spread", "tied"])
@pytest.mark.parametrize("path", ["scan", "ibis"])
def test_both_paths_match_the_reference(path, tied, monkeypatch):
    if path == "ibis":
        monkeypatch.setattr(scan, "supports", lambda q, backend: False)

    def body(cfg, events):
        assert _uses_scan(cfg) == (path == "scan")
        check(events, cfg)

    _examples(body, tied)


def test_small_chunks_match_the_reference(monkeypatch):
    """Chunks of a few rows, users cut across Arrow batches."""
    monkeypatch.setattr(scan, "CHUNK_ROWS", 5)
    monkeypatch.setattr(scan, "BATCH_ROWS", 3)
    _examples(lambda cfg, events: check(events, cfg), tied=True)


def test_users_sharing_a_hash_match_the_reference(monkeypatch):
    monkeypatch.setattr(scan, "_hash", _colliding_hash)
    monkeypatch.setattr(scan, "CHUNK_ROWS", 7)
    clashes = []
    exact = scan.exact_groups

    def counting(tab, keys, hcols):
        out = exact(tab, keys, hcols)
        clashes.append(not out[0].equals(tab))
        return out

    monkeypatch.setattr(scan, "exact_groups", counting)
    _examples(lambda cfg, events: check(events, cfg), tied=True)
    assert any(clashes)                       # the repair ran


def test_ties_on_time_and_step_report_the_smallest_value():
    """Three step-0 events at one second with values h, None, g: first touch is g (values
    ascending, missing last), whichever row order the sort produced."""
    for events in ([("u", 1, "a", "h"), ("u", 1, "a", None), ("u", 1, "a", "g"), ("u", 2, "b", "h")],
                   [("u", 1, "a", None), ("u", 1, "a", "h"), ("u", 1, "a", "g")]):
        res = funnel(to_frame(events), ["a", "b"], window="5s", breakdown="c")
        assert res.users["breakdown"].tolist() == ["g"]
    res = funnel(to_frame([("u", 1, "a", None), ("u", 1, "a", None)]), ["a", "b"], window="5s",
                 breakdown="c")
    assert res.users["breakdown"].tolist() == ["(none)"]


def test_exact_groups_reorders_users_sharing_a_hash():
    tab = pa.table({"user_id": ["b", "a", "b", "a", "c", "d"], "h0": [7, 7, 7, 7, 9, 1],
                    "us": [1, 2, 3, 4, 5, 6]})
    out, new = scan.exact_groups(tab, ["user_id"], ["h0"])
    assert out.column("user_id").to_pylist() == ["a", "a", "b", "b", "c", "d"]
    assert out.column("us").to_pylist() == [2, 4, 1, 3, 5, 6]   # time order kept per user
    assert new.tolist() == [True, False, True, False, True, True]
    same, new = scan.exact_groups(tab.slice(4), ["user_id"], ["h0"])
    assert same.equals(tab.slice(4)) and new.tolist() == [True, True]


OPTIONS = [dict(breakdown="campaign"), dict(breakdown="campaign", attribution="last_touch"),
           dict(breakdown="campaign", attribution="step:1"),
           dict(breakdown="campaign", attribution="all"),
           dict(breakdown="region", breakdown_limit=2, window="1h"),
           dict(properties=["region", "keyword"], window="2d"),
           dict(filters={"region": "EU"}, start="2024-02-01", end="2024-04-01"),
           dict(filters={"region": "nowhere"})]


@pytest.mark.parametrize("kwargs", OPTIONS)
def test_scan_equals_the_ibis_path_on_synthetic_logs(kwargs, monkeypatch):
    ev = synthetic_events(1500, seed=5)
    ev["timestamp"] = ev["timestamp"].dt.floor("h")          # plenty of ties
    for steps in (STEPS, STEPS[1:4], ["signup", "ad_click"]):
        fast = funnel(ev, steps, **kwargs)
        with monkeypatch.context() as m:
            m.setattr(scan, "supports", lambda q, backend: False)
            slow = funnel(ev, steps, **kwargs)
        keys = ["user_id", "breakdown"]
        assert (fast.users.sort_values(keys).reset_index(drop=True)
                .equals(slow.users.sort_values(keys).reset_index(drop=True)))
        assert (fast.n_events, fast.data_start, fast.data_end, fast.n_excluded) == \
               (slow.n_events, slow.data_start, slow.data_end, slow.n_excluded)


@pytest.mark.parametrize("kwargs, backend, served", [
    (dict(), "duckdb", True),
    (dict(breakdown="c", attribution="all"), "duckdb", True),
    (dict(), "pyspark", False),
    (dict(order="strict"), "duckdb", False),
    (dict(order="unordered"), "duckdb", False),
    (dict(exclusions=[("x", 0, 1)]), "duckdb", False),
    (dict(optional_steps=[1]), "duckdb", False),
])
def test_dispatch(kwargs, backend, served):
    assert scan.supports(build_query(["a", "b", "c"], **kwargs), backend) is served
    repeated = build_query([{"event": "a", "where": {"c": "g"}}, "a", "b"])
    assert not scan.supports(repeated, "duckdb")


def test_no_events_and_parquet_input(tmp_path):
    ev = synthetic_events(300, seed=2)
    path = tmp_path / "ev.parquet"
    ev.to_parquet(path)
    on_file = funnel(str(path), STEPS, breakdown="campaign")
    in_memory = funnel(ev, STEPS, breakdown="campaign")
    assert on_file.counts.equals(in_memory.counts) and on_file.n_events == in_memory.n_events
    empty = funnel(ev, STEPS, start="2030-01-01")
    assert empty.users.empty and empty.n_events == 0 and empty.data_start is None
    assert list(empty.users.columns) == list(in_memory.users.columns)
    assert np.all(empty.counts.to_numpy() == 0)
    assert isinstance(in_memory.users["user_id"].dtype, pd.StringDtype)
