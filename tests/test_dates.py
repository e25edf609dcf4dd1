"""The cut-off rule and month arithmetic, at their boundaries."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.data.dates import (cutoff_day, cutoff_end, from_month_index, month_index, month_start,
                                      parse_month, through_cutoff)
from funnel_models.data.spec import FunnelSpec
from funnel_models.errors import FunnelDataError

SPEC = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
LAST_MS = "2024-03-31 23:59:59.999"    # the last millisecond of the cut-off day: in
NEXT_DAY = "2024-04-01 00:00:00.000"   # midnight after it: out


def test_through_cutoff_keeps_the_whole_cutoff_day_and_nothing_after() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-03-30 12:00:00.000", LAST_MS, NEXT_DAY, "2024-04-01 00:00:00.001"])})
    for cutoff in ("2024-03-31", "2024-03-31 08:15", pd.Timestamp("2024-03-31 23:59")):
        kept = through_cutoff(df, "t", cutoff)["t"].tolist()
        assert kept == [pd.Timestamp("2024-03-30 12:00"), pd.Timestamp(LAST_MS)], cutoff
    assert cutoff_end("2024-03-31 15:00") == pd.Timestamp("2024-04-01")
    assert cutoff_day("2024-03-31 15:00") == pd.Timestamp("2024-03-31")
    assert through_cutoff(df, "t", None) is df
    with pytest.raises(FunnelDataError, match="not a date"):
        cutoff_day("someday")


def test_derivations_apply_the_same_rule() -> None:
    """A stage entered at 00:00 on C+1 is future data for every derivation at cut-off C."""
    h = pd.DataFrame({"lead_id": ["x", "x", "y", "y"], "stage": ["A", "B", "A", "W"],
                      "entered_at": pd.to_datetime(["2024-03-02 00:00:00.000", LAST_MS,
                                                    "2024-03-05 00:00:00.000", NEXT_DAY])})
    snaps = derive.snapshots_from_history(h, SPEC, cutoff="2024-03-31")
    assert snaps.set_index("lead_id")["stage"].to_dict() == {"x": "B", "y": "A"}
    pipe = derive.open_pipeline(h, SPEC, cutoff="2024-03-31").set_index("lead_id")
    assert pipe["stage"].to_dict() == {"x": "B", "y": "A"}
    tis = derive.time_in_stage(h, SPEC, cutoff="2024-03-31")
    assert bool(tis.loc[tis.lead_id == "y", "censored"].iloc[0])       # y's win is not known yet
    assert set(derive.filter_frame(h, end="2024-03-31")["lead_id"]) == {"x", "y"}
    firsts = pd.DataFrame({"lead_id": ["p", "q"], "stage": ["A", "A"],
                           "entered_at": pd.to_datetime([LAST_MS, NEXT_DAY])})
    assert derive.filter_frame(firsts, end="2024-03-31")["lead_id"].tolist() == ["p"]
    assert derive.filter_frame(firsts, start="2024-04-01")["lead_id"].tolist() == ["q"]
    assert derive.open_pipeline(h, SPEC, cutoff="2024-04-01").set_index("lead_id")["stage"].to_dict() == {"x": "B"}


def test_month_helpers() -> None:
    s = pd.Series(pd.to_datetime(["2023-12-31 23:59", "2024-01-01 00:00", "2024-02-29 12:00"]))
    idx = month_index(s)
    assert idx.tolist() == [2023 * 12 + 11, 2024 * 12, 2024 * 12 + 1]
    back = from_month_index(idx)
    assert back.tolist() == [pd.Timestamp("2023-12-01"), pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")]
    assert str(back.dtype) == "datetime64[ns]"
    assert month_start(s).tolist() == back.tolist()
    assert month_start("2024-02-29 12:00") == pd.Timestamp("2024-02-01")
    rng = np.random.default_rng(0)
    many = rng.integers(1900 * 12, 2100 * 12, 500)
    np.testing.assert_array_equal(month_index(from_month_index(many)), many)


def test_parse_month() -> None:
    assert parse_month("2024-03") == pd.Timestamp("2024-03-01")
    assert parse_month("2024-03-31") == pd.Timestamp("2024-03-01")
    for bad in ("2024/03", "2024-3", "March", "2024-13"):
        with pytest.raises(FunnelDataError, match="YYYY-MM"):
            parse_month(bad)
