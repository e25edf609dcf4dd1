"""Contracts of the canonical tables (pandera): what readers, store and derive hand over."""
from __future__ import annotations

import warnings

import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.data.readers import read_history
from funnel_models.data.schemas import (COUNTS, HISTORY, PIPELINE, SNAPSHOTS, TRANSITIONS, counts_schema,
                                        history_schema, pipeline_schema, snapshots_schema, transitions_schema,
                                        validate)
from funnel_models.data.spec import FunnelSpec
from funnel_models.datasets.demo import demo_data
from funnel_models.errors import FunnelDataError, FunnelWarning


@pytest.fixture(scope="module")
def demo():
    return demo_data(seed=5, months=12, leads_per_month=120)


def test_derive_outputs_keep_their_contracts(demo) -> None:
    spec, attrs = demo.spec, list(demo.spec.attributes)
    validate(demo.history, history_schema(spec, attrs), "demo history")
    snaps = derive.snapshots_from_history(demo.history, spec, cutoff=demo.cutoff)
    validate(snaps, snapshots_schema(spec, attrs), "snapshots")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FunnelWarning)
        tr = derive.transitions(snaps, spec, by=attrs)
    validate(tr, transitions_schema(spec, attrs), "transitions")
    assert (tr["age"] > 0).any() and tr["age"].dtype == "int64"
    entries = derive.stage_entries(tr)
    validate(entries, counts_schema(None), "stage entries")
    for frame in (demo.history, snaps):
        validate(derive.open_pipeline(frame, spec, cutoff=demo.cutoff), pipeline_schema(spec), "pipeline")


def test_pipeline_from_snapshots_matches_pipeline_from_history(demo) -> None:
    """Two routes to the open pipeline: last stage change (history) and run of monthly
    statuses (snapshots) give the same leads, stages and ages in months."""
    spec = demo.spec
    for cutoff in (demo.cutoff, demo.cutoff - pd.DateOffset(months=4)):
        from_h = derive.open_pipeline(demo.history, spec, cutoff=cutoff)
        snaps = derive.snapshots_from_history(demo.history, spec, cutoff=cutoff)
        from_s = derive.open_pipeline(snaps, spec, cutoff=cutoff)
        assert len(from_h) > 100
        cols = ["lead_id", "stage", "age_months", "region", "channel"]
        pd.testing.assert_frame_equal(from_h[cols].sort_values("lead_id").reset_index(drop=True),
                                      from_s[cols].sort_values("lead_id").reset_index(drop=True))
        assert from_s["entered_at"].isna().all() and from_s["age_days"].isna().all()


def test_pipeline_from_snapshots_by_hand() -> None:
    """a: A in Jan-Mar (age 2 in March); b: A Jan, B Feb-Mar (age 1); c: won in March (not
    open); d: last seen in February (not in March's snapshot: not open at the cut-off)."""
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
    m = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])
    s = pd.DataFrame({"month": list(m) * 4, "lead_id": ["a"] * 3 + ["b"] * 3 + ["c"] * 3 + ["d"] * 3,
                      "stage": ["A", "A", "A", "A", "B", "B", "A", "B", "W", "A", "A", "A"]})
    s = s[~((s.lead_id == "d") & (s.month == m[2]))]
    p = derive.open_pipeline(s, spec, cutoff="2024-03-31").set_index("lead_id")
    assert p[["stage", "age_months"]].to_dict("index") == {"a": {"stage": "A", "age_months": 2},
                                                           "b": {"stage": "B", "age_months": 1}}
    assert derive.open_pipeline(s, spec, cutoff="2024-02-10").set_index("lead_id")["age_months"].to_dict() == \
        {"a": 1, "b": 0, "c": 0, "d": 1}


@pytest.mark.parametrize("schema,frame,fragment", [
    (HISTORY, pd.DataFrame({"lead_id": ["a", "a"], "stage": ["N", "N"],
                            "entered_at": pd.to_datetime(["2024-01-01", "2024-01-01"])}), "repeat the key"),
    (HISTORY, pd.DataFrame({"lead_id": ["a"], "stage": ["N"],
                            "entered_at": pd.to_datetime(["2024-01-01"]).tz_localize("UTC")}), "naive"),
    (SNAPSHOTS, pd.DataFrame({"month": pd.to_datetime(["2024-01-15"]), "lead_id": ["a"], "stage": ["N"]}),
     "first day of a month"),
    (COUNTS, pd.DataFrame({"month": pd.to_datetime(["2024-01-01"]), "stage": ["N"], "count": [-1]}),
     "greater_than_or_equal_to(0)"),
    (TRANSITIONS, pd.DataFrame({"month": pd.to_datetime(["2024-01-01"]), "from_stage": ["A"], "to_stage": ["A"],
                                "age": [-1], "n": [1]}), "'age'"),
    (PIPELINE, pd.DataFrame({"lead_id": ["a", "a"], "stage": ["A", "A"], "entered_at": pd.NaT,
                             "age_days": [1.0, 2.0], "age_months": [0, 0]}), "'lead_id'"),
])
def test_contract_violations_are_named(schema, frame, fragment) -> None:
    with pytest.raises(FunnelDataError) as info:
        validate(frame, schema, "test table")
    msg = str(info.value)
    assert msg.startswith("test table: the ") and fragment in msg and "Fix:" in msg


def test_reader_output_is_checked_against_the_spec(tmp_path) -> None:
    f = tmp_path / "h.csv"
    f.write_text("lead_id,stage,entered_at\na,NEW,2024-01-02\n")
    spec = {"stages": ["NEW"], "won": ["WON"]}
    out = read_history(f, spec)
    validate(out, history_schema(), "history")
    with pytest.raises(FunnelDataError, match="isin"):
        validate(out.assign(stage="OTHER"), history_schema(FunnelSpec.from_dict(spec)), "history")
