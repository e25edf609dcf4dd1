"""Hand-made event logs with exact expected funnels (issue 7)."""
from __future__ import annotations

import sys
from datetime import timedelta

import duckdb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from funnel_models.errors import FunnelDataError  # noqa: E402
from funnel_models.events import Step, funnel, parse_duration, synthetic_events  # noqa: E402
from funnel_models.events import plots  # noqa: E402
from funnel_models.events.synth import write_events_parquet  # noqa: E402
from funnel_models.data.spec import FunnelSpec  # noqa: E402
from funnel_models.events import engine as _engine  # noqa: E402
from funnel_models.events import scan as _scan  # noqa: E402
from conftest import spark_table  # noqa: E402

T0 = pd.Timestamp("2024-01-01")


@pytest.fixture(params=["duckdb", "duckdb-ibis", pytest.param("spark", marks=pytest.mark.spark)],
                autouse=True)
def engine(request, monkeypatch):
    """Every test runs on DuckDB (the tuned path where it applies), on DuckDB through the
    portable Ibis path only, and on Spark (DataFrame inputs become Spark tables)."""
    if request.param == "duckdb-ibis":
        monkeypatch.setattr(_scan, "supports", lambda q, backend: False)
    if request.param == "spark":
        spark = request.getfixturevalue("spark")

        def on_spark(events, *args, **kwargs):
            if isinstance(events, pd.DataFrame):
                events = spark_table(spark, events)
            return _engine.funnel(events, *args, **kwargs)

        monkeypatch.setattr(sys.modules[__name__], "funnel", on_spark)
    return request.param


def log(*rows):
    """Rows ``(user, seconds after T0, event[, props])`` -> event DataFrame."""
    recs = []
    for r in rows:
        u, s, e = r[:3]
        props = r[3] if len(r) > 3 else {}
        recs.append({"user_id": u, "timestamp": T0 + pd.Timedelta(seconds=s), "event": e, **props})
    return pd.DataFrame(recs)


def counts(res):
    return res.counts.tolist()


# a: a b c ; b: a c b ; c: b c (no a) ; d: a x b
BASIC = log(("A", 0, "a"), ("A", 10, "b"), ("A", 20, "c"),
            ("B", 0, "a"), ("B", 5, "c"), ("B", 10, "b"),
            ("C", 0, "b"), ("C", 1, "c"),
            ("D", 0, "a"), ("D", 1, "x"), ("D", 2, "b"))


# ---------------------------------------------------------------------------- orders
def test_ordered_counts():
    res = funnel(BASIC, ["a", "b", "c"], window="1h")
    assert counts(res) == [3, 3, 1]
    assert res.converted_users("c") == ["A"]
    assert res.converted_users(1) == ["A", "B", "D"]
    assert res.dropped_users(2) == ["B", "D"]
    assert res.dropped_users("b") == []


def test_strict_counts():
    res = funnel(BASIC, ["a", "b", "c"], window="1h", order="strict")
    # B: a then c (not b) -> 1; D: x between a and b -> 1
    assert counts(res) == [3, 1, 1]
    assert res.dropped_users(1) == ["B", "D"]


def test_unordered_counts():
    res = funnel(BASIC, ["a", "b", "c"], window="1h", order="unordered")
    # completed >=1, >=2, 3 of the steps in any order: C has b,c; D has a,b
    assert counts(res) == [4, 4, 2]
    assert res.converted_users(2) == ["A", "B"]


def test_unordered_window_and_repeated_step():
    ev = log(("A", 0, "b"), ("A", 100, "a"), ("A", 105, "c"),
             ("B", 0, "a"), ("B", 1, "a"),
             ("C", 0, "a"))
    res = funnel(ev, ["a", "b", "c"], window="10s", order="unordered")
    assert counts(res) == [3, 1, 0]          # A: {a, c} in a 10 s window
    res = funnel(ev, ["a", "a", "b"], window="10s", order="unordered")
    assert counts(res) == [3, 1, 0]          # B: two distinct a events fill both a-steps


# ---------------------------------------------------------------------------- windows
def test_window_edges_inclusive_limit():
    ev = log(("E", 0, "a"), ("E", 10, "b"),      # exactly at the limit: counts
             ("F", 0, "a"), ("F", 11, "b"),      # one second over: does not
             ("G", 0, "a"), ("G", 5, "b"), ("G", 11, "c"))  # timed from step 0, not step 1
    for order in ("ordered", "strict", "unordered"):
        res = funnel(ev, ["a", "b", "c"], window="10s", order=order)
        assert counts(res) == [3, 2, 0], order
        assert res.converted_users(1) == ["E", "G"]
    res = funnel(ev, ["a", "b", "c"], window=timedelta(seconds=11))
    assert counts(res) == [3, 3, 1]


def test_furthest_attempt_and_conversion_times():
    ev = log(("H", 0, "a"), ("H", 100, "a"), ("H", 105, "b"), ("H", 108, "c"),
             ("I", 0, "a"), ("I", 20, "b"), ("I", 60, "c"))
    res = funnel(ev, ["a", "b", "c"], window="1min")
    assert counts(res) == [2, 2, 2]
    t = res.users.set_index("user_id")
    assert t.loc["H", "a"] == T0 + pd.Timedelta(seconds=100)   # the attempt that converted
    ct = res.conversion_times
    assert ct.loc["b", "mean"] == pytest.approx((5 + 20) / 2)
    assert ct.loc["c", "median"] == pytest.approx((3 + 40) / 2)
    assert ct.loc["c", "count"] == 2
    h = res.time_to_convert("c", "a", bins=[0, 10, 100])
    assert h["users"].tolist() == [1, 1]       # 8 s and 60 s


def test_each_event_fills_one_step_and_ties():
    ev = log(("I", 0, "a"), ("I", 1, "b"),
             ("J", 0, "a"), ("J", 1, "a"), ("J", 2, "b"),
             ("K", 5, "b"), ("K", 5, "a"))           # same timestamp: a is ordered first
    res = funnel(ev, ["a", "a", "b"], window="1min")
    assert counts(res) == [3, 1, 1]
    res = funnel(ev, ["a", "b"], window="1min", order="strict")
    assert counts(res) == [3, 3]      # J: the second a starts a fresh attempt; K: tie -> a first


def test_optional_step():
    ev = log(("R", 0, "a"), ("R", 5, "c"),
             ("S", 0, "a"), ("S", 2, "b"), ("S", 5, "c"),
             ("T", 0, "a"), ("T", 5, "c"), ("T", 6, "b"))   # b after c: not between
    res = funnel(ev, ["a", "b", "c"], window="1min", optional_steps=[1])
    assert counts(res) == [3, 1, 3]
    conv = res.conversion.set_index("step")
    assert conv.loc["c", "conversion_from_previous"] == 1.0     # from a, the previous required
    assert res.dropped_users("c") == []


# ---------------------------------------------------------------------------- exclusions
def test_exclusions():
    ev = log(("A", 0, "a"), ("A", 1, "b"), ("A", 2, "c"),
             ("D", 0, "a"), ("D", 1, "x"), ("D", 2, "b"), ("D", 3, "c"),
             ("L", 0, "a"), ("L", 1, "b"), ("L", 2, "x"), ("L", 3, "c"),
             ("M", 0, "a"), ("M", 1, "x"),                 # b never reached, x in window
             ("N", 0, "a"), ("N", 20, "x"))                # x after the window
    res = funnel(ev, ["a", "b", "c"], window="10s", exclusions=[("x", 0, 1)])
    assert counts(res) == [3, 2, 2]                         # D and M removed entirely
    assert res.n_excluded == 2
    assert "D" not in res.converted_users(0)
    res = funnel(ev, ["a", "b", "c"], window="10s", exclusions=[("x", 1, 2)])
    assert counts(res) == [4, 2, 2]          # only L (x between b and c) removed
    assert res.converted_users(0) == ["A", "D", "M", "N"]   # M never reached b: not checked
    res = funnel(ev, ["a", "b", "c"], window="10s",
                 exclusions=[({"event": "x"}, 0, 2)], order="strict")
    assert res.converted_users(0) == ["A", "N"]


# ---------------------------------------------------------------------------- breakdown
BD = log(("P", 0, "a", {"c": "g"}), ("P", 1, "b", {"c": "h"}), ("P", 2, "c", {"c": "k"}),
         ("Q", 0, "a", {"c": "g"}), ("Q", 1, "b", {"c": "g"}),
         ("V", 0, "a", {}), ("V", 1, "b", {"c": "h"}))


def _bd(res):
    return {k: v.tolist() for k, v in res.counts.iterrows()}


def test_breakdown_first_touch():
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c")
    assert _bd(res) == {"(none)": [1, 1, 0], "g": [2, 2, 1]}


def test_breakdown_last_touch():
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", attribution="last_touch")
    assert _bd(res) == {"g": [1, 1, 0], "h": [1, 1, 0], "k": [1, 1, 1]}


def test_breakdown_step_n():
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", attribution="step:1")
    assert _bd(res) == {"g": [1, 1, 0], "h": [2, 2, 1]}
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", attribution="step:2")
    assert _bd(res) == {"(none)": [2, 2, 0], "k": [1, 1, 1]}


def test_breakdown_all():
    # P's events split by value: only 'a' carries g -> enters g; V has no value on 'a'
    res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", attribution="all")
    assert _bd(res) == {"g": [2, 1, 0]}
    conv = res.conversion
    assert conv.columns.tolist() == ["c", "step", "count", "conversion_from_previous",
                                     "conversion_from_first", "dropped"]
    with pytest.raises(FunnelDataError, match="attribution='all'"):
        res.to_stage_history()


def test_breakdown_unordered_and_strict_run():
    for order in ("strict", "unordered"):
        res = funnel(BD, ["a", "b", "c"], window="1h", breakdown="c", order=order)
        assert _bd(res)["g"] == [2, 2, 1]


# ---------------------------------------------------------------------------- tables
def test_conversion_table_and_dropoff():
    res = funnel(BASIC, ["a", "b", "c"], window="1h")
    conv = res.conversion
    assert conv["count"].tolist() == [3, 3, 1]
    assert conv["dropped"].tolist() == [0, 0, 2]
    assert conv["conversion_from_previous"].tolist() == pytest.approx([1.0, 1.0, 1 / 3])
    assert conv["conversion_from_first"].tolist() == pytest.approx([1.0, 1.0, 1 / 3])


def test_trend_by_entry_period():
    ev = log(("A", 0, "a"), ("A", 5, "b"),
             ("B", 3600, "a"),
             ("C", 86400 * 8, "a"), ("C", 86400 * 8 + 1, "b"),
             ("D", 86400 * 40, "a"))
    res = funnel(ev, ["a", "b"], window="1d")
    day = res.trend("day")
    assert day["entered"].tolist() == [2, 1, 1]
    assert day["converted"].tolist() == [1, 1, 0]
    week = res.trend("week")
    assert week["period"].tolist() == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08"),
                                       pd.Timestamp("2024-02-05")]
    month = res.trend("month")
    assert month["entered"].tolist() == [3, 1]
    assert month["conversion"].tolist() == pytest.approx([2 / 3, 0.0])
    with pytest.raises(FunnelDataError, match="period"):
        res.trend("year")


def test_skipped_stages():
    res = funnel(BASIC, ["a", "b", "c"], window="1h")
    sk = res.skipped.set_index("step")
    assert sk.loc["b", "users_did_step"] == 4
    assert sk.loc["b", "skipped_previous"] == 1        # C did b without a
    assert sk.loc["c", "skipped_previous"] == 0
    assert sk.loc["c", "skipped_first"] == 1           # C did c without a
    assert sk.loc["b", "reached_in_funnel"] == 3


def test_filters_and_time_frame():
    ev = log(("A", 0, "a", {"region": "EU"}), ("A", 5, "b", {"region": "EU"}),
             ("B", 0, "a", {"region": "US"}), ("B", 5, "b", {"region": "US"}),
             ("C", 100, "a", {"region": "EU"}))
    assert counts(funnel(ev, ["a", "b"], filters={"region": "EU"})) == [2, 1]
    assert counts(funnel(ev, ["a", "b"], filters={"region": ["EU", "US"]})) == [3, 2]
    assert counts(funnel(ev, ["a", "b"], start=T0 + pd.Timedelta(seconds=50))) == [1, 0]
    assert counts(funnel(ev, ["a", "b"], end=T0 + pd.Timedelta(seconds=5))) == [2, 0]


def test_step_matchers_with_properties():
    ev = log(("A", 0, "pageview", {"page": "/"}), ("A", 5, "pageview", {"page": "/pricing"}),
             ("B", 0, "pageview", {"page": "/"}), ("B", 5, "pageview", {"page": "/about"}))
    steps = [Step("pageview", name="Any page"),
             {"event": "pageview", "where": {"page": "/pricing"}, "name": "Pricing"}]
    res = funnel(ev, steps, window="1h")
    assert res.steps == ["Any page", "Pricing"]
    assert counts(res) == [2, 1]
    dup = funnel(ev, ["pageview", "pageview"], window="1h")
    assert dup.steps == ["pageview", "pageview #2"]
    assert counts(dup) == [2, 2]


# ---------------------------------------------------------------------------- bridge
def test_to_stage_history_and_spec():
    ev = log(("A", 0, "a", {"c": "g"}), ("A", 10, "b", {"c": "g"}), ("A", 20, "c", {"c": "g"}),
             ("B", 0, "a", {"c": "h"}), ("B", 10, "b", {"c": "h"}),
             ("Z", 86400 * 30, "a", {"c": "h"}))      # data end is day 30
    res = funnel(ev, ["a", "b", "c"], window="1h", breakdown="c")
    h = res.to_stage_history()
    assert h.columns.tolist() == ["lead_id", "stage", "entered_at", "c"]
    assert h["entered_at"].dtype == "datetime64[ns]"
    assert h[h.lead_id == "A"]["stage"].tolist() == ["a", "b", "WON"]
    assert h[h.lead_id == "B"]["stage"].tolist() == ["a", "b"]      # left open
    assert h[h.lead_id == "A"]["c"].tolist() == ["g"] * 3
    lost = res.to_stage_history(stage_codes=["NEW", "QUAL", "DEAL"], lost_after="7d")
    b = lost[lost.lead_id == "B"]
    assert b["stage"].tolist() == ["NEW", "QUAL", "LOST"]
    assert b["entered_at"].iloc[-1] == T0 + pd.Timedelta(seconds=10) + pd.Timedelta(days=7)
    assert "LOST" not in lost[lost.lead_id == "Z"]["stage"].tolist()   # not stale yet
    won1 = res.to_stage_history(won_step=1)
    assert won1[won1.lead_id == "A"]["stage"].tolist() == ["a", "WON"]
    spec = res.spec(stage_codes=["NEW", "QUAL", "DEAL"])
    assert isinstance(spec, FunnelSpec)
    assert spec.codes == ("NEW", "QUAL") and spec.won == ("WON",) and spec.lost == ("LOST",)
    assert spec.attributes == ("c",)
    assert set(lost["stage"]) <= set(spec.all_codes)


def test_properties_carried_into_history():
    ev = log(("A", 0, "a", {"region": "EU"}), ("A", 10, "b", {"region": "US"}))
    res = funnel(ev, ["a", "b"], properties=["region"])
    h = res.to_stage_history()
    assert h["region"].tolist() == ["EU", "EU"]
    assert res.spec().attributes == ("region",)


# ---------------------------------------------------------------------------- inputs
def test_input_kinds(tmp_path):
    pq = tmp_path / "ev.parquet"
    csv = tmp_path / "ev.csv"
    BASIC.to_parquet(pq)
    BASIC.to_csv(csv, index=False)
    expect = [3, 3, 1]
    assert counts(funnel(str(pq), ["a", "b", "c"], window="1h")) == expect
    assert counts(funnel(csv, ["a", "b", "c"], window="1h")) == expect
    con = duckdb.connect()
    con.register("tmp_df", BASIC)
    con.execute("CREATE TABLE evlog AS SELECT user_id AS uid, timestamp AS ts, event AS name FROM tmp_df")
    kw = dict(window="1h", user_col="uid", time_col="ts", event_col="name")
    assert counts(funnel((con, "evlog"), ["a", "b", "c"], **kw)) == expect
    res = funnel("evlog", ["a", "b", "c"], con=con, **kw)
    assert counts(res) == expect
    assert res.journey("B")["event"].tolist() == ["a", "c", "b"]
    # string timestamps are parsed
    s = BASIC.assign(timestamp=BASIC["timestamp"].astype(str))
    assert counts(funnel(s, ["a", "b", "c"], window="1h")) == expect


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=[]), "steps is empty"),
    (dict(window="0s"), "must be positive"),
    (dict(window="-5min"), "not a duration"),
    (dict(window=timedelta(seconds=-1)), "must be positive"),
    (dict(window="14 fortnights"), "not a duration"),
    (dict(attribution="middle_touch", breakdown="c"), "attribution='middle_touch'"),
    (dict(attribution="step:7", breakdown="c"), "0-based step index"),
    (dict(order="sideways"), "order='sideways' is unknown"),
    (dict(breakdown="nope"), "missing column.*'nope'"),
    (dict(user_col="uid"), "missing column.*user_col='uid'"),
    (dict(exclusions=[("x", 2, 1)]), "from_step < to_step"),
    (dict(optional_steps=[0]), "step 0 cannot be optional"),
    (dict(optional_steps=[1], order="unordered"), "not allowed in unordered"),
    (dict(steps=[{"evnt": "a"}]), "needs 'event'"),
])
def test_bad_arguments(kwargs, match):
    args = dict(steps=["a", "b", "c"], window="1h")
    args.update(kwargs)
    with pytest.raises(FunnelDataError, match=match):
        funnel(BD, **args)


def test_bad_timestamps():
    bad = BASIC.assign(timestamp=BASIC["timestamp"].astype(str))
    bad.loc[4, "timestamp"] = "yesterday-ish"
    with pytest.raises(FunnelDataError, match=r"'timestamp'.*row 4 \('yesterday-ish'\)"):
        funnel(bad, ["a", "b"])
    nat = BASIC.copy()
    nat.loc[2, "timestamp"] = pd.NaT
    with pytest.raises(FunnelDataError, match=r"missing timestamps \(row\(s\) \[2\]\)"):
        funnel(nat, ["a", "b"])
    ints = BASIC.assign(timestamp=np.arange(len(BASIC)))
    with pytest.raises(FunnelDataError, match="not a timestamp"):
        funnel(ints, ["a", "b"])


def test_bad_result_queries():
    res = funnel(BASIC, ["a", "b", "c"], window="1h")
    with pytest.raises(FunnelDataError, match="nobody drops off"):
        res.dropped_users(0)
    with pytest.raises(FunnelDataError, match="unknown step 'z'"):
        res.converted_users("z")
    with pytest.raises(FunnelDataError, match="one code per step"):
        res.to_stage_history(stage_codes=["X"])
    with pytest.raises(FunnelDataError, match="missing file|not found"):
        funnel("/no/such/file.parquet", ["a"])


def test_parse_duration():
    assert parse_duration("14d") == timedelta(days=14)
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("5min") == timedelta(minutes=5)
    assert parse_duration("90 s") == timedelta(seconds=90)
    assert parse_duration("2w") == timedelta(weeks=2)


# ---------------------------------------------------------------------------- synth + plots
def test_synthetic_events_properties():
    a = synthetic_events(400, seed=5)
    b = synthetic_events(400, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not synthetic_events(400, seed=6).equals(a)
    assert list(a.columns) == ["user_id", "timestamp", "event", "campaign", "region",
                               "keyword", "landing_page"]
    assert not a["timestamp"].is_monotonic_increasing          # rows are shuffled
    assert {"ad_click", "landing_view", "signup", "demo_request", "purchase",
            "pageview"} <= set(a["event"])
    big = synthetic_events(6000, seed=1)
    res = funnel(big, ["landing_view", "signup"], window="30d", breakdown="campaign")
    rate = res.counts["signup"] / res.counts["landing_view"]
    assert rate["brand_search"] > 2 * rate["display"]          # conversion differs by campaign
    assert res.skipped.set_index("step").loc["signup", "skipped_previous"] == 0
    res2 = funnel(big, ["ad_click", "landing_view"], window="1d")
    assert res2.skipped.set_index("step").loc["landing_view", "users_did_step"] > res2.counts.iloc[1]


def test_write_events_parquet(tmp_path):
    p = tmp_path / "big.parquet"
    n = write_events_parquet(p, 25_000, seed=3, users_per_chunk=1000)
    assert n == 25_000
    assert len(pd.read_parquet(p)) == 25_000
    assert pd.read_parquet(p)["user_id"].nunique() > 2000     # several chunks, disjoint ids
    res = funnel(str(p), ["ad_click", "signup"], window="14d")
    assert res.counts.iloc[0] > res.counts.iloc[1] > 0


def test_plots_return_labelled_axes():
    ev = synthetic_events(800, seed=2)
    res = funnel(ev, ["ad_click", "landing_view", "signup", "purchase"], window="30d",
                 breakdown="campaign")
    for ax in (plots.plot_funnel(res), plots.plot_breakdown(res),
               plots.plot_time_to_convert(res), plots.plot_trend(res, "month"),
               plots.plot_journey(res, res.converted_users("purchase")[0])):
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    pooled = pd.Series(0.1, index=res.counts.index)
    ax = plots.plot_breakdown(res, pooled=pooled)
    assert ax.get_legend() is not None
    plt.close("all")


def test_eb_shrinkage():
    k = pd.Series([0, 10, 30, 60], index=list("abcd"))
    n = pd.Series([5, 100, 100, 100], index=list("abcd"))
    s = plots.eb_shrinkage(k, n)
    raw = k / n
    pooled = k.sum() / n.sum()
    # shrunk toward the pooled mean, the small group the most
    assert ((s - pooled).abs() <= (raw - pooled).abs() + 1e-12).all()
    assert abs(s["a"] - raw["a"]) > abs(s["b"] - raw["b"])
    same = plots.eb_shrinkage(pd.Series([10, 11]), pd.Series([100, 100]))
    assert same.tolist() == pytest.approx([0.105, 0.105])
