"""PostHog parity: cases derived from PostHog's own funnel tests, written as our own logs.

The expected counts are the ones PostHog's test suite asserts for the same journeys
(posthog/hogql_queries/insights/funnels/test/test_funnel.py: exclusion tests; and
funnel_validation_rules.py), plus the issue's examples.
"""
from __future__ import annotations

import pickle

import pandas as pd
import pytest

from funnel_models.errors import FunnelDataError
from funnel_models.events import compare_periods, funnel

T0 = pd.Timestamp("2021-05-01")


def log(*rows):
    """Rows ``(user, seconds after T0, event[, props])`` -> event DataFrame."""
    recs = []
    for r in rows:
        props = r[3] if len(r) > 3 else {}
        recs.append({"user_id": r[0], "timestamp": T0 + pd.Timedelta(seconds=r[1]),
                     "event": r[2], "c": None, **props})
    return pd.DataFrame(recs)


H = 3600


# ---------------------------------------------------------------------------- exclusions
def test_exclusion_without_end_event():
    ev = log(("p1", 1 * H, "signup"), ("p1", 2 * H, "paid"),
             ("p2", 3 * H, "signup"), ("p2", 3.5 * H, "x"), ("p2", 4 * H, "paid"),
             ("p3", 5 * H, "signup"), ("p3", 6 * H, "x"),          # x in window, no end: out
             ("p4", 7 * H, "signup"), ("p4", 32 * H, "x"))         # x after the 1-day window
    res = funnel(ev, ["signup", "paid"], window="1d", exclusions=[("x", 0, 1)])
    assert res.counts.tolist() == [2, 1]
    assert res.converted_users(0) == ["p1", "p4"]
    assert res.converted_users(1) == ["p1"]
    assert res.n_excluded == 2


@pytest.mark.parametrize("rows, expected", [
    # first attempt excluded, a later clean attempt still counts (PostHog: [1, 0])
    ([(0, "one"), (1, "x"), (31, "one")], [1, 0]),
    # the excluded attempt is the later one; the first stays clean
    ([(0, "one"), (31, "one"), (32, "x")], [1, 0]),
    # both attempts see the exclusion inside their window
    ([(0, "one"), (1, "one"), (2, "x")], [0, 0]),
    # the case: the second attempt converts cleanly
    ([(0, "one"), (1, "x"), (31, "one"), (35, "two")], [1, 1]),
])
def test_exclusion_drops_the_attempt_not_the_user(rows, expected):
    ev = log(*[("u", s, e) for s, e in rows])
    for order in ("ordered", "strict"):
        res = funnel(ev, ["one", "two"], window="10s", order=order, exclusions=[("x", 0, 1)])
        assert res.counts.tolist() == expected, order


ADVANCED = log(
    ("p1", 1 * H, "signup"), ("p1", 2 * H, "pageview"), ("p1", 3 * H, "x"),
    ("p1", 4 * H, "insight"), ("p1", 4.5 * H, "x"), ("p1", 5 * H, "invite"),
    ("p1", 5.5 * H, "x"), ("p1", 6 * H, "pageview2"),
    ("p2", 1 * H, "signup"), ("p2", 2 * H, "pageview"), ("p2", 4 * H, "insight"),
    ("p2", 4.5 * H, "x"), ("p2", 5 * H, "invite"), ("p2", 5.5 * H, "x"),
    ("p2", 6 * H, "pageview2"),
    ("p3", 1 * H, "signup"), ("p3", 1.5 * H, "x"), ("p3", 2 * H, "pageview"),
    ("p3", 4 * H, "insight"), ("p3", 5 * H, "invite"), ("p3", 5.5 * H, "x"),
    ("p3", 6 * H, "pageview2"))
STEPS5 = ["signup", "pageview", "insight", "invite", "pageview2"]


@pytest.mark.parametrize("a, b, users", [
    (0, 1, ["p1", "p2"]), (1, 2, ["p2", "p3"]), (2, 3, ["p3"]), (3, 4, []), (1, 3, ["p3"]),
])
def test_exclusions_between_steps(a, b, users):
    res = funnel(ADVANCED, STEPS5, exclusions=[("x", a, b)])
    assert res.converted_users(0) == users
    assert res.counts.tolist() == [len(users)] * 5


def test_exclusion_at_the_same_time_as_a_step_is_ignored():
    ev = log(("u", 0, "one"), ("u", 0, "x"), ("u", 5, "two"),
             ("v", 0, "one"), ("v", 5, "x"), ("v", 5, "two"))
    res = funnel(ev, ["one", "two"], window="10s", exclusions=[("x", 0, 1)])
    assert res.counts.tolist() == [2, 2]


def test_unordered_exclusion_over_the_whole_funnel():
    ev = log(("u", 0, "b"), ("u", 1, "x"), ("u", 2, "a"),          # x inside: excluded
             ("v", 0, "b"), ("v", 1, "a"), ("v", 2, "x"))          # completed before x
    res = funnel(ev, ["a", "b"], window="10s", order="unordered", exclusions=[("x", 0, 1)])
    assert res.converted_users(1) == ["v"]
    assert res.converted_users(0) == ["u", "v"]    # u's window starting at 'a' stays clean
    ev = log(("w", 0, "b"), ("w", 1, "x"), ("w", 2, "a"),
             ("z", 0, "a"), ("z", 1, "x"))                          # z's only window: excluded
    res = funnel(ev, ["b", "a"], window="10s", order="unordered", exclusions=[("x", 0, 1)])
    assert res.counts.tolist() == [1, 0] and res.n_excluded == 1


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, match", [
    (dict(exclusions=[("b", 0, 2)]), "matches the same events as step 1"),
    (dict(exclusions=[({"event": "b"}, 1, 2)]), "matches the same events as step 1"),
    (dict(exclusions=[("x", 0, 1)], order="unordered"), "only take exclusions over the whole"),
    (dict(optional_steps=[1], order="unordered"), "not allowed in unordered"),
    (dict(steps=["a", "b", "b"], optional_steps=[1]), "followed by the identical required"),
    (dict(attribution="step:1", breakdown="c", order="unordered"), "unordered funnels have no"),
    (dict(breakdown_limit=0, breakdown="c"), "positive integer"),
])
def test_posthog_validation_rules(kwargs, match):
    args = dict(steps=["a", "b", "c"], window="1h")
    args.update(kwargs)
    with pytest.raises(FunnelDataError, match=match):
        funnel(log(("u", 0, "a")), **args)


def test_exclusion_outside_its_range_may_match_a_step():
    ev = log(("u", 0, "a"), ("u", 1, "c"), ("u", 2, "b"), ("u", 3, "c"))
    res = funnel(ev, ["a", "b", "c"], window="1h", exclusions=[("c", 0, 1)])
    assert res.counts.tolist() == [0, 0, 0]        # c between a and b excludes the attempt


def test_optional_steps_in_strict_funnels():
    ev = log(("R", 0, "a"), ("R", 5, "c"),                         # skips b
             ("S", 0, "a"), ("S", 2, "b"), ("S", 5, "c"),
             ("T", 0, "a"), ("T", 1, "z"), ("T", 5, "c"))          # z breaks the chain
    res = funnel(ev, ["a", "b", "c"], window="1min", order="strict", optional_steps=[1])
    assert res.counts.tolist() == [3, 1, 2]
    assert res.converted_users("c") == ["R", "S"]


# ---------------------------------------------------------------------------- ties
@pytest.mark.parametrize("order", ["ordered", "strict", "unordered"])
def test_ten_steps_at_one_timestamp_reach_step_ten(order):
    steps = [f"s{i}" for i in range(10)]
    ev = log(*[("u", 0, s) for s in reversed(steps)])
    assert funnel(ev, steps, window="1min", order=order).counts.tolist() == [1] * 10


# ---------------------------------------------------------------------------- features
def test_correlation_odds_ratio_and_fisher():
    ev = log(("A", 0, "a"), ("A", 1, "docs", {"c": "p"}), ("A", 2, "b"),
             ("B", 0, "a"), ("B", 1, "docs", {"c": "p"}), ("B", 3, "b"),
             ("C", 0, "a"), ("C", 5, "docs", {"c": "q"}),
             ("D", 0, "a"), ("D", 1, "spam"),
             ("E", 0, "a"), ("E", 20, "spam"))                      # after E's window
    res = funnel(ev, ["a", "b"], window="10s")
    tab = res.correlation(["c"]).set_index("name")
    docs = tab.loc["docs"]
    assert (docs["success_count"], docs["failure_count"]) == (2, 1)
    assert docs["odds_ratio"] == pytest.approx((3 / 2) / (1 / 3))
    assert docs["p_value"] == pytest.approx(0.4)     # hypergeometric 0.1 + 0.3
    assert docs["correlation"] == "success"
    spam = tab.loc["spam"]
    assert (spam["success_count"], spam["failure_count"]) == (0, 1)
    assert spam["odds_ratio"] == pytest.approx((1 / 2) / (3 / 3))
    assert tab.loc["c=p", "success_count"] == 2 and tab.loc["c=q", "failure_count"] == 1
    assert "a" not in tab.index and "b" not in tab.index            # funnel steps left out


BD = log(("P", 0, "a", {"c": "g"}), ("P", 1, "b", {"c": "h"}), ("P", 2, "c", {"c": "k"}),
         ("Q", 0, "a", {"c": "g"}), ("Q", 1, "b", {"c": "g"}),
         ("V", 0, "a", {}), ("V", 1, "b", {"c": "h"}))


def test_breakdown_limit_groups_the_rest_as_other():
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", breakdown_limit=1)
    assert {k: v.tolist() for k, v in res.counts.iterrows()} == {"Other": [1, 1, 0],
                                                                 "g": [2, 2, 1]}


def test_compare_with_previous_period():
    ev = log(("A", 0, "a"), ("A", 5, "b"), ("B", 10, "a"),
             ("C", 86400 + 0, "a"), ("C", 86400 + 5, "b"), ("D", 86400 + 7, "a"),
             ("E", 86400 + 9, "a"), ("E", 86400 + 10, "b"))
    t = compare_periods(ev, ["a", "b"], start=T0 + pd.Timedelta(days=1),
                        end=T0 + pd.Timedelta(days=2), window="1h")
    assert t["count_current"].tolist() == [3, 2] and t["count_previous"].tolist() == [2, 1]
    assert t["conversion_change"].tolist() == pytest.approx([0.0, 2 / 3 - 1 / 2])


def test_result_is_plain_data_and_reopens_its_source(tmp_path):
    path = tmp_path / "ev.parquet"
    BD.to_parquet(path)
    for src in (BD, str(path)):
        res = funnel(src, ["a", "b", "c"], window="1h", breakdown="c")
        back = pickle.loads(pickle.dumps(res))
        pd.testing.assert_frame_equal(back.counts, res.counts)
        assert back.journey("P")["event"].tolist() == ["a", "b", "c"]
        assert back.skipped["users_did_step"].tolist() == [3, 3, 1]
