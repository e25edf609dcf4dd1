"""The monthly report's pictures in process: per-segment repeats, plotly.js once, readable tables.

The numbers behind the charts are checked against hand counts in ``test_charts_data.py``;
the rendered page in Chromium in ``test_report_browser.py``. Here: the sections' wiring on
the demo with the quick conjugate model.
"""
from __future__ import annotations

import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.params import ParameterFile
from funnel_models.reports import analysis as fr
from funnel_models.reports.render import Section, human_column, plotly_html


@pytest.fixture(scope="module")
def ctx():
    p = ParameterFile.model_validate({"source": "demo", "model": "conjugate", "factors": ["region"], "new_leads": 250,
                                      "monthly_report": {"charts_by_segment": True, "flow_months": 6}})
    return fr.prepare("monthly_report", p)


def test_pictures_repeat_per_segment_level(ctx):
    levels = sorted(ctx.data.table["region"].astype(str).unique())
    flows = fr.flows_section(ctx)
    assert len(flows.figure) == 2 * (1 + len(levels))                 # a Sankey and a funnel each
    titles = [f.layout.title.text for f in flows.figure]
    assert all(any(f"region={lv}" in t for t in titles) for lv in levels)
    # the East Sankey counts East's moves only: its new leads are East's entries of the last 6 months
    tr = derive.transitions(ctx.data.snapshots(), ctx.spec, by=["region"])
    since = ctx.cutoff_month - pd.DateOffset(months=5)
    east = tr[(tr["region"] == "East") & (tr["from_stage"] == "ENTRY") & (pd.to_datetime(tr["month"]) >= since)]
    east_sankey = next(f for f in flows.figure if f.data[0].type == "sankey" and "region=East" in f.layout.title.text)
    entry_links = [v for s, v in zip(east_sankey.data[0].link.source, east_sankey.data[0].link.value) if s == 0]
    assert sum(entry_links) == int(east["n"].sum())
    assert len(fr.cohort_section(ctx).figure) == 1 + len(levels)
    assert len(fr.time_to_convert_section(ctx).figure) == 2 * (1 + len(levels))
    assert "Stage flows over the last 6 months" == flows.title


def test_plotly_js_is_embedded_once_per_report(ctx):
    fig = fr.flows_section(ctx).figure[0]
    class Page:                                                     # a fresh report context
        plotlyjs_embedded = False
    page = Page()
    first, second = plotly_html(page, fig), plotly_html(page, fig)
    assert "window.PlotlyConfig" in first and "window.PlotlyConfig" not in second
    assert len(second) < len(first) / 20 and "cdn.plot.ly/plotly" not in first + second


def test_tables_have_readable_columns_and_no_empty_ones():
    s = Section("t", table=pd.DataFrame({"extra_wins_mean": [1.0], "coverage_80": [0.8], "lo_80": [0.1],
                                         "empty_col": [float("nan")]}))
    html = s.table_html()
    assert "extra wins mean" in html and "80% interval coverage" in html and "lo 80%" in html
    assert "empty" not in html and "_" not in html.split("<tbody>")[0]
    assert human_column("MAE") == "MAE"


def test_leads_section_explains_the_headline(ctx):
    s = fr.leads_section(ctx)
    labels = [k for k, _ in s.points]
    assert labels == ["Today", "Pipeline", "Time to win", "Spreadsheet"]
    today = ctx.recent_leads()
    assert f"{today:,.0f}" in dict(s.points)["Today"]
    assert ("today's volume (mean of the last 3 months)" in s.table["plan"].tolist())
    ln = ctx.summary["leads_needed"]
    assert ln["today_leads"] == pytest.approx(today) and 0 <= ln["today_probability"] <= 1
    b = fr.bottleneck_section(ctx)
    assert set(b.table["kind"]) <= {"relative", "absolute"} and ("relative" in b.text or "absolute" in b.text)
