"""The what-if dashboard without a browser: controls -> questions -> the simulator's own numbers.

Every expectation is computed here independently: the simulator called directly with the
same arguments, counts taken from the demo's stage history, or hand-worked arithmetic.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from funnel_models import simulate as S
from funnel_models.dashboard import WhatIfDashboard, dashboard_settings, load_dashboard_parameters
from funnel_models.dashboard.charts import curve_marks, fan_series
from funnel_models.dashboard.engine import CURVE_POINTS, Question, curve_domain, nice_ceil
from funnel_models.dashboard.explain import headline_facts, lever_text
from funnel_models.data import derive
from funnel_models.errors import ParameterError
from funnel_models.params import parse_parameters
from funnel_models.workflow import fit_model, load_data

REPO = Path(__file__).resolve().parents[1]
DRAWS = 400
FACTORS = ["region", "channel"]


@pytest.fixture(scope="module")
def data():
    return load_data("demo")


@pytest.fixture(scope="module")
def model(data):
    return fit_model(data, model="conjugate", factors=FACTORS)


@pytest.fixture(scope="module")
def transitions(data):
    return derive.transitions(data.snapshots(), data.spec, by=FACTORS)


@pytest.fixture()
def dash(model, data):
    return WhatIfDashboard(model, data, target=400, window=12, confidence=0.8, leads=250, draws=DRAWS,
                           forecast_draws=150, leverage_draws=100)


def seg_pipeline(data, segment):
    pipe = data.pipeline()
    for f, lv in (segment or {}).items():
        pipe = pipe[pipe[f].astype(str) == lv]
    return pipe.reset_index(drop=True)


def expected(model, data, *, segment=None, conversion=None, stall=None, target=400.0, window=12,
             confidence=0.8, leads=250, unit="wins", draws=DRAWS, seed=0):
    """The simulator for the same arguments, with the per-lead pipeline frame."""
    post = model.posterior_funnel(segment or None, draws=draws, seed=seed)
    post = post.adjust(conversion=conversion or {}, stall=stall or {})
    pipe = seg_pipeline(data, segment)
    plan = S.leads_needed(post, target, window, pipeline=pipe, confidence=confidence, target_unit=unit,
                          seed=seed, start=data.cutoff_month)
    return post, pipe, plan, float(plan.problem.probability(leads)[0])


def kpi_value(widget) -> str:
    html = widget.value
    i = html.find('data-value="')
    return html[i + len('data-value="'): html.index('"', i + len('data-value="'))] if i >= 0 else ""


# ----------------------------------------------------------------------------- answers
def test_initial_outputs_match_simulator(dash, model, data):
    post, pipe, plan, p_hit = expected(model, data)
    st = dash.state
    assert st.error is None
    assert st.plan.leads == plan.leads and plan.feasible
    assert st.plan.probability == pytest.approx(plan.probability)
    assert st.plan.naive_leads == plan.naive_leads
    assert st.p_hit == pytest.approx(p_hit)
    assert kpi_value(dash.leads_needed_out) == f"{plan.leads:g}"
    assert kpi_value(dash.naive_out) == f"{plan.naive_leads:g}"
    assert float(kpi_value(dash.p_hit_out)) == pytest.approx(round(p_hit, 4))
    assert st.pipeline_leads == len(pipe)


def test_target_change_reruns_only_the_plan(dash, model, data):
    before = dash.state.plan.leads
    dash.target.value = 460
    _, _, plan, p_hit = expected(model, data, target=460)
    st = dash.state
    assert st.plan.leads == plan.leads != before
    assert st.p_hit == pytest.approx(p_hit)
    assert "forecast" not in st.timings and "leads_needed" in st.timings
    assert "plan_sims" not in st.timings                 # the simulations do not depend on the target


def test_every_control_maps_to_simulator_args(dash, model, data):
    stage = dash.engine.stages[3]
    with dash.batch():
        dash.target.value = 120
        dash.window.value = 9
        dash.confidence.value = 0.9
        dash.conversion[stage].value = 1.2
        dash.stall[dash.engine.stages[2]].value = 0.5
        dash.segment_controls["region"].value = "East"
        dash.leads.value = 80
    seg, conv, stall = {"region": "East"}, {stage: 1.2}, {dash.engine.stages[2]: 0.5}
    post, pipe, plan, p_hit = expected(model, data, segment=seg, conversion=conv, stall=stall, target=120,
                                       window=9, confidence=0.9, leads=80)
    st = dash.state
    assert st.error is None, st.error
    assert st.question == Question(target=120.0, window=9, confidence=0.9, leads=80).with_(
        segment=seg, conversion=conv, stall=stall)
    assert st.plan.leads == plan.leads and st.plan.naive_leads == plan.naive_leads
    assert st.p_hit == pytest.approx(p_hit)
    fc = S.forecast(post.thin(150, seed=0), pipe, 80, 9, seed=0, start=data.cutoff_month, sims_per_draw=1)
    np.testing.assert_allclose(st.fan["mean"], np.cumsum(fc.wins, axis=1).mean(0))
    dash.tabs.selected_index = 1
    lev = S.leverage(post.thin(100, seed=0), pipe, 80, 9, start=data.cutoff_month)
    pd.testing.assert_frame_equal(dash.state.leverage, lev)
    assert lev["name"].iloc[0] in dash.leverage_out.value


def test_planned_leads_change_does_not_rerun_the_search(dash, model, data):
    plan_before = dash.state.plan
    dash.leads.value = 400
    _, _, _, p_hit = expected(model, data, leads=400)
    assert dash.state.plan is plan_before and "leads_needed" not in dash.state.timings
    assert dash.state.p_hit == pytest.approx(p_hit)


def test_revenue_toggle_converts_target(dash, model, data):
    mean_value = float(np.mean(dash.engine.posterior(()).deal_value))
    dash.target_unit.value = "revenue"
    st = dash.state
    assert st.question.target_unit == "revenue"
    assert st.question.target == pytest.approx(400 * mean_value, rel=0.01)
    _, _, plan, p_hit = expected(model, data, target=st.question.target, unit="revenue")
    assert st.plan.leads == plan.leads and st.p_hit == pytest.approx(p_hit)
    assert dash.charts.fan.layout.yaxis.title.text == "cumulative revenue"


def test_reset_restores_defaults(dash):
    first = dash.state
    with dash.batch():
        dash.target.value = 50
        dash.window.value = 3
        dash.conversion[dash.engine.stages[0]].value = 0.7
        dash.segment_controls["channel"].value = "Web"
        dash.target_unit.value = "revenue"
    dash.reset.click()
    st = dash.state
    assert st.question == first.question
    assert st.plan.leads == first.plan.leads and st.p_hit == first.p_hit


def test_infeasible_and_errors_are_shown_not_raised(dash):
    dash.window.value = 1                          # demo: new leads need >= 3 months to a win
    st = dash.state
    assert st.error is None and not st.plan.feasible
    assert "not reachable" in dash.leads_needed_out.value
    dash.leads.value = 0
    dash.segment_controls["region"].value = "North"
    assert dash.state.error is None and "Traceback" not in dash.error.value


# ----------------------------------------------------------------------------- segments
def test_segment_rescales_planned_leads_and_offers_its_target(dash, transitions, data):
    """Planned leads follow the segment's share of the last 3 months' new leads; a given
    company target is split by the segment's share of the last 12 months' wins."""
    t = transitions
    month = pd.to_datetime(t["month"])
    recent = month > data.cutoff_month - pd.DateOffset(months=3)
    ent = t[(t["from_stage"] == "ENTRY") & recent]
    share = ent.loc[ent["region"] == "East", "n"].sum() / ent["n"].sum()
    won = t[(t["to_stage"] == "WON") & (month > data.cutoff_month - pd.DateOffset(months=12))]
    win_share = won.loc[won["region"] == "East", "n"].sum() / won["n"].sum()
    dash.segment_controls["region"].value = "East"
    q = dash.state.question
    assert q.leads == round(250 * share) and 0 < q.leads < 250
    assert q.target == math.ceil(400 * win_share)
    assert dash.state.p_hit > 0.01                 # no longer the company plan measured on one region
    dash.segment_controls["region"].value = "all"
    assert (dash.state.question.leads, dash.state.question.target) == (250, 400)


def test_segment_target_uses_the_default_rule_when_derived(model, data, transitions):
    dash = WhatIfDashboard(model, data, window=6, draws=DRAWS, forecast_draws=100, leverage_draws=50)
    ent = transitions[transitions["from_stage"] == "ENTRY"]
    volume = S.leads_from_history(transitions)
    assert dash.state.question.leads == round(volume)
    full = model.posterior_funnel(None)
    assert dash.state.question.target == S.default_target(full, data.pipeline(), round(volume), 6,
                                                          start=data.cutoff_month)
    dash.segment_controls["channel"].value = "Partner"
    vol_p = S.leads_from_history(ent[ent["channel"] == "Partner"])
    leads = round(round(volume) * vol_p / volume)
    assert dash.state.question.leads == leads
    assert dash.state.question.target == S.default_target(
        model.posterior_funnel({"channel": "Partner"}), seg_pipeline(data, {"channel": "Partner"}), leads, 6,
        start=data.cutoff_month)


def test_segment_posterior_is_drawn_once(dash, model, monkeypatch):
    calls = []
    orig = model.posterior_funnel

    def spy(segment=None, *a, **kw):
        calls.append(segment)
        return orig(segment, *a, **kw)
    monkeypatch.setattr(model, "posterior_funnel", spy)
    for lv in ("West", "all", "West"):
        dash.segment_controls["region"].value = lv
    assert calls == [{"region": "West"}]


# ----------------------------------------------------------------------------- curve and words
def test_nice_ceil_and_curve_domain_by_hand():
    assert [nice_ceil(x) for x in (7, 10, 11, 26, 2409 * 2)] == [8, 10, 15, 30, 5000]
    assert curve_domain(5, (310,)) == 10        # 310 is beyond 5 x 5: shown at the edge
    assert curve_domain(5, (20,)) == 25         # 1.1 x 20 = 22 -> 25
    assert curve_domain(None, (300,)) == 400     # no answer: the marks set the axis (1.1 x 300 -> 400)
    assert curve_domain(0, (4,)) == 10


def test_small_target_curve_spans_the_axis_and_marks_lie_inside(model, data):
    """The defect of the first release: a small target drew the curve from 0 to ~10 leads
    on an axis to 310, with the planned-leads dot alone. Now the axis follows the answer."""
    dash = WhatIfDashboard(model, data, target=5, window=12, leads=310, draws=DRAWS, forecast_draws=100,
                           leverage_draws=50)
    a = dash.state
    fig = dash.charts.curve
    lo, hi = fig.layout.xaxis.range
    xs = np.asarray(fig.data[0].x, float)
    assert (lo, hi) == (0, a.domain) and xs.min() == 0 and xs.max() == a.domain
    assert len(np.unique(xs)) >= min(CURVE_POINTS, a.domain + 1) - 1
    for tr in fig.data[2:5]:
        for x, y in zip(tr.x or (), tr.y or ()):
            assert 0 <= x <= hi and 0 <= y <= 1
    marks = {m.kind: m for m in curve_marks(a)}
    if a.plan.leads is not None and a.plan.leads > 0:
        assert marks["needed"].inside
    assert not marks["planned"].inside              # far beyond the answer: an arrow at the edge
    assert any("planned 310" in ann.text for ann in fig.layout.annotations)


def test_fan_geometry(dash):
    a = dash.state
    s = fan_series(a.fan)
    fig = dash.charts.fan
    assert list(fig.layout.xaxis.range) == [0, a.question.window]
    top = fig.layout.yaxis.range[1]
    assert top >= max(s["hi_95"].max(), a.question.target)
    for tr in fig.data:
        assert all(0 <= y <= top for y in tr.y)
    assert np.all(s["lo_95"] <= s["lo_50"]) and np.all(s["hi_50"] <= s["hi_95"])
    assert fig.data[7].y[0] == a.question.target


def test_charts_updated_in_place_equal_charts_drawn_afresh(dash):
    """Only changed properties are sent to the figures; after any sequence of answers
    they must hold exactly what new charts drawing the last answer hold."""
    from funnel_models.dashboard.charts import PlotlyCharts
    first = dash.state
    dash.window.value = 6                         # fewer months, other ticks and ranges
    dash.stall[dash.engine.stages[2]].value = 1.5
    dash.charts.show(first)
    dash.charts.show(dash.state)
    dash.charts.fan.layout.xaxis.range = [2, 3]   # a zoom in the browser comes back as a relayout
    dash.charts.show(dash.state)
    fresh = PlotlyCharts(dash.engine.start)
    fresh.show(dash.state)
    def state(fig):
        js = fig.to_plotly_json()
        return [{k: v for k, v in tr.items() if k != "uid"} for tr in js["data"]], js["layout"]
    for got, want in zip(dash.charts.widgets, fresh.widgets):
        assert state(got) == state(want)
    dash.charts.clear()
    assert all(len(tr.x or ()) == 0 for fig in dash.charts.widgets for tr in fig.data)


def test_explanation_states_the_answer_s_numbers(dash):
    a = dash.state
    f = headline_facts(a)
    assert f.pipeline_wins == pytest.approx(a.plan.expected_pipeline_wins)
    assert f.pipeline_share == pytest.approx(a.plan.expected_pipeline_wins / 400)
    assert f.ratio_to_volume == pytest.approx(a.plan.leads / a.volume)
    text = dash.why.value
    for s in (f"{a.volume:,.0f}", f"{a.plan.expected_pipeline_wins:,.0f}", f"{a.plan.naive_leads:,}",
              f"{a.cycle_months:.0f} month"):
        assert s in text
    assert "relative" in lever_text("conversion +10%") and "absolute" in lever_text("stall 1 month shorter")
    assert "How to read this" in dash.widget.children[2].children[1].children[-1].value


# ----------------------------------------------------------------------------- flows
def test_flows_tab_counts_moves_from_the_history(dash, data):
    """Wins and new leads in the last 12 months, counted straight from the stage history."""
    dash.tabs.selected_index = 2
    table = dash.flows.table
    h = data.history
    month = h["entered_at"].dt.to_period("M").dt.to_timestamp()
    since = data.cutoff_month - pd.DateOffset(months=11)
    won = h[(data.spec.canonical_states(h["stage"]) == "WON").to_numpy() & (month >= since) & (month <= data.cutoff_month)]
    first = h.groupby("lead_id")["entered_at"].min().dt.to_period("M").dt.to_timestamp()
    assert table.set_index("stage").loc["WON", "leads"] == won["lead_id"].nunique()
    assert table.set_index("stage").loc["ENTRY", "leads"] == int(((first >= since) & (first <= data.cutoff_month)).sum())
    links = dash.flows.sankey.data[0].link
    assert sum(links.value) == dash.engine.flows((), 12).total
    assert list(dash.flows.funnel.data[0].x) == table["leads"].tolist()
    dash.segment_controls["region"].value = "East"
    east = won[won["region"] == "East"]["lead_id"].nunique()
    assert dash.flows.table.set_index("stage").loc["WON", "leads"] == east
    assert "region=East" in dash.flows.sankey.layout.title.text


# ----------------------------------------------------------------------------- parameter files
def write_params(path: Path, body: dict) -> Path:
    path.write_text(yaml.safe_dump(body))
    return path


def test_settings_fall_back_to_the_monthly_report():
    p = parse_parameters({"source": "demo", "monthly_report": {"target_wins": 120, "window_months": 4,
                                                               "confidence": 0.7}})
    s = dashboard_settings(p)
    assert (s.target, s.target_from, s.window, s.confidence) == (120.0, "monthly_report", 4, 0.7)
    p = parse_parameters({"source": "demo", "monthly_report": {"target_wins": 120},
                          "dashboard": {"target": 90, "window_months": 3, "confidence": 0.9}})
    s = dashboard_settings(p)
    assert (s.target, s.target_from, s.window, s.confidence) == (90.0, "dashboard", 3, 0.9)
    s = dashboard_settings(parse_parameters({"source": "demo"}))
    assert (s.target, s.target_from, s.window) == (None, "data", 6)


def test_from_params_reads_the_same_file_as_the_report(tmp_path, monkeypatch):
    """No file: ./parameters/default.yaml, as funnel report; same target, window, confidence."""
    (tmp_path / "parameters").mkdir()
    write_params(tmp_path / "parameters" / "default.yaml", {
        "source": "demo", "model": "conjugate", "factors": ["region"],
        "monthly_report": {"target_wins": 300, "window_months": 9, "confidence": 0.7},
        "dashboard": {"draws": 300, "forecast_draws": 100, "leverage_draws": 50}})
    monkeypatch.chdir(tmp_path)
    dash = WhatIfDashboard.from_params()
    q = dash.state.question
    assert (q.target, q.window, q.confidence) == (300, 9, 0.7)
    assert list(dash.segment_controls) == ["region"] and dash.state.error is None
    assert "default.yaml" in dash.header.value and "conjugate" in dash.subtitle


@pytest.mark.parametrize("body, word", [({"source": "demo", "dashboard": {"windw": 3}}, "window_months"),
                                        ({"source": "demo", "dashboard": {"confidence": 1.5}}, "confidence"),
                                        ({"source": "demo", "quick": True}, "model: conjugate")])
def test_bad_parameter_files_name_the_problem(tmp_path, body, word):
    p = write_params(tmp_path / "bad.yaml", body)
    with pytest.raises(ParameterError, match=word):
        load_dashboard_parameters(p)


def test_revenue_without_deal_values_is_refused(tmp_path):
    h = load_data("demo", demo_months=12).table.drop(columns=["value"])
    data = load_data("demo", demo_months=12)
    data = type(data)(table=h, kind=data.kind, spec=data.spec, cutoff=data.cutoff, source="x.csv")
    model = fit_model(data, model="conjugate")
    with pytest.raises(ParameterError, match="deal values"):
        WhatIfDashboard(model, data, target_unit="revenue", draws=100)


# ----------------------------------------------------------------------------- notebook
def test_notebook_pair_and_template_are_the_same_clean_notebook():
    import jupytext
    import nbformat
    nb = nbformat.read(REPO / "notebooks" / "what_if.ipynb", as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "params_path = None" in tagged[0].source
    py = jupytext.read(REPO / "notebooks" / "what_if.py")
    assert [c.source for c in py.cells] == [c.source for c in nb.cells]
    shipped = nbformat.read(REPO / "funnel_models" / "templates" / "what_if.ipynb", as_version=4)
    assert [c.source for c in shipped.cells] == [c.source for c in nb.cells]


def test_notebook_runs_under_papermill_with_plotly_embedded_once(tmp_path):
    import papermill as pm
    params = write_params(tmp_path / "p.yaml", {"source": "demo", "model": "conjugate", "factors": ["region"],
                                                "dashboard": {"draws": 200, "forecast_draws": 60,
                                                              "leverage_draws": 30}})
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "what_if.ipynb"), str(out), parameters={"params_path": str(params)},
                        cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    snapshot = "".join([o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})][-1])
    assert "Static snapshot" in snapshot and "kpi-value" in snapshot
    assert snapshot.count("Plotly.newPlot") == 2
    assert snapshot.count("plotly.js v") == 1                       # embedded once ...
    assert "<script src=" not in snapshot and 'src="http' not in snapshot  # ... and never loaded from a CDN


# ----------------------------------------------------------------------------- CLI
def _parse(argv):
    from funnel_models.cli import build_parser
    return build_parser().parse_args(argv)


def test_cli_defaults_and_voila_command():
    from funnel_models.commands.dashboard import voila_command
    args = _parse(["dashboard"])
    assert (args.params, args.port, args.host, args.debug, args.no_browser) == (None, 8866, "127.0.0.1", False, False)
    cmd = voila_command("nb.ipynb", port=9000)
    assert cmd[:3] == [sys.executable, "-m", "voila"] and "--Voila.ip=127.0.0.1" in cmd
    dbg = voila_command("nb.ipynb", port=9000, host="0.0.0.0", debug=True, no_browser=True)
    assert "--show_tracebacks=True" in dbg and "--no-browser" in dbg and "--Voila.ip=0.0.0.0" in dbg


def test_cli_finds_the_shipped_notebook_from_any_directory(tmp_path, monkeypatch, capsys):
    """From a directory without notebooks/, the packaged template is served."""
    from funnel_models.commands import dashboard as cmd_mod
    write_params(tmp_path / "wi.yaml", {"source": "demo", "model": "conjugate"})
    seen = {}

    class FakePopen:
        def __init__(self, cmd, env, cwd, start_new_session):
            seen.update(cmd=cmd, env=env, cwd=cwd)
            self.pid = -1

        def wait(self, timeout=None):
            return 0
    monkeypatch.setattr(cmd_mod.subprocess, "Popen", FakePopen)
    monkeypatch.chdir(tmp_path)
    rc = cmd_mod.handler(argparse.Namespace(params="wi.yaml", port=9123, host="127.0.0.1", debug=True,
                                            no_browser=True))
    assert rc == 0
    assert seen["env"]["FUNNEL_PARAMS"] == str((tmp_path / "wi.yaml").resolve())
    assert seen["env"]["FUNNEL_WORKDIR"] == str(tmp_path) and seen["env"]["FUNNEL_DEBUG"] == "1"
    import funnel_models
    assert seen["cmd"][3] == str(Path(funnel_models.__file__).parent / "templates" / "what_if.ipynb")
    assert "http://127.0.0.1:9123/" in capsys.readouterr().out


def test_cli_missing_or_bad_params_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "funnel_models.cli", "dashboard", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    bad = write_params(tmp_path / "bad.yaml", {"source": "demo", "dashboard": {"confidence": 2}})
    r = subprocess.run([sys.executable, "-m", "funnel_models.cli", "dashboard", str(bad)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "confidence" in r.stderr and "Traceback" not in r.stderr
