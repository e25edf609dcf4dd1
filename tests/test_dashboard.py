"""WhatIfDashboard without a browser: controls -> simulator arguments -> the simulator's numbers."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from funnel_models import simulate as S
from funnel_models.dashboard import DEFAULT_PARAMS, WhatIfDashboard, find_repo_file, load_params
from funnel_models.errors import ParameterError
from funnel_models.simulate.planning import plan_problem
from funnel_models.workflow import fit_model, load_data

REPO = Path(__file__).resolve().parents[1]
DRAWS = 400


@pytest.fixture(scope="module")
def data():
    return load_data("demo")


@pytest.fixture(scope="module")
def model(data):
    return fit_model(data, quick=True, factors=["region", "channel"])


@pytest.fixture()
def dash(model, data):
    return WhatIfDashboard(model, data=data, target=400, window=12, confidence=0.8, leads=250, draws=DRAWS,
                           forecast_draws=150, leverage_draws=100)


def expected(model, data, *, segment=None, conversion=None, stall=None, target=400.0, window=12,
             confidence=0.8, leads=250, unit="wins", draws=DRAWS, seed=0):
    """What the simulator says for the same arguments, computed independently of the dashboard."""
    post = model.posterior_funnel(segment or None).thin(draws, seed=seed)
    post = post.adjust(conversion=conversion or {}, stall=stall or {})
    pipe = data.pipeline()
    for f, lv in (segment or {}).items():
        pipe = pipe[pipe[f].astype(str) == lv].reset_index(drop=True)
    plan = S.leads_needed(post, target, window, pipeline=pipe, confidence=confidence, target_unit=unit, seed=seed)
    p_hit = float(plan_problem(post, target, window, pipeline=pipe, target_unit=unit, seed=seed).probability(leads)[0])
    return post, pipe, plan, p_hit


def kpi_value(widget) -> str:
    """The number shown in a KPI widget (data-value attribute)."""
    html = widget.value
    i = html.find('data-value="')
    return html[i + len('data-value="'): html.index('"', i + len('data-value="'))] if i >= 0 else ""


def test_initial_outputs_match_simulator(dash, model, data):
    post, pipe, plan, p_hit = expected(model, data)
    st = dash.state
    assert st.error is None
    assert st.plan.leads == plan.leads and plan.feasible
    assert st.plan.probability == pytest.approx(plan.probability)
    assert st.plan.naive_leads == plan.naive_leads
    assert st.p_hit == pytest.approx(p_hit)
    pd.testing.assert_frame_equal(st.plan.curve, plan.curve)
    assert kpi_value(dash.leads_needed_out) == f"{plan.leads:g}"
    assert kpi_value(dash.naive_out) == f"{plan.naive_leads:g}"
    assert float(kpi_value(dash.p_hit_out)) == pytest.approx(round(p_hit, 4))
    assert f"{plan.leads:,}" in dash.leads_needed_out.value
    assert np.array_equal(st.post.P, post.P)


def test_target_change_recomputes(dash, model, data):
    before = dash.state.plan.leads
    dash.target.value = 460
    _, _, plan, p_hit = expected(model, data, target=460)
    assert dash.state.target == 460
    assert dash.state.plan.leads == plan.leads != before
    assert dash.state.p_hit == pytest.approx(p_hit)
    assert kpi_value(dash.leads_needed_out) == f"{plan.leads:g}"


def test_every_control_maps_to_simulator_args(dash, model, data):
    stage = dash.stages[3]
    with dash.batch():
        dash.target.value = 120
        dash.window.value = 9
        dash.confidence.value = 0.9
        dash.leads.value = 80
        dash.conversion[stage].value = 1.2
        dash.stall[dash.stages[2]].value = 0.5
        dash.segment_controls["region"].value = "East"
    seg = {"region": "East"}
    conv, stall = {stage: 1.2}, {dash.stages[2]: 0.5}
    post, pipe, plan, p_hit = expected(model, data, segment=seg, conversion=conv, stall=stall, target=120,
                                       window=9, confidence=0.9, leads=80)
    st = dash.state
    assert st.error is None, st.error
    assert (st.segment, st.conversion, st.stall) == (seg, conv, stall)
    assert (st.window, st.confidence, st.leads) == (9, 0.9, 80)
    assert st.plan.leads == plan.leads
    assert st.plan.naive_leads == plan.naive_leads
    assert st.p_hit == pytest.approx(p_hit)
    assert len(dash.pipeline_for(seg)) == len(pipe) < len(data.pipeline())
    # forecast and leverage: the simulator on the thinned posteriors
    fc = S.forecast(post.thin(150, seed=0), pipe, 80, 9, seed=0, sims_per_draw=1)
    np.testing.assert_array_equal(st.forecast.wins, fc.wins)
    lev = S.leverage(post.thin(100, seed=0), pipe, 80, 9)
    pd.testing.assert_frame_equal(st.leverage, lev)
    assert lev["name"].iloc[0] in dash.leverage_out.value


def test_leads_change_only_changes_p_hit_and_forecast(dash, model, data):
    plan_before = dash.state.plan
    dash.leads.value = 400
    _, _, plan, p_hit = expected(model, data, leads=400)
    assert dash.state.plan is plan_before          # leads needed not recomputed (cached)
    assert "leads_needed" not in dash.state.meta["timings"]
    assert dash.state.p_hit == pytest.approx(p_hit)
    assert dash.state.forecast.new_leads.tolist() == [400] * 12


def test_revenue_toggle_converts_target(dash, model, data):
    mean_value = float(np.mean(dash.base_posterior({}).deal_value))
    dash.target_unit.value = "revenue"
    st = dash.state
    assert st.target_unit == "revenue"
    assert st.target == pytest.approx(400 * mean_value, rel=0.01)
    _, _, plan, p_hit = expected(model, data, target=st.target, unit="revenue")
    assert st.plan.leads == plan.leads and st.p_hit == pytest.approx(p_hit)
    assert "revenue" in dash.fan_out.value


def test_reset_restores_defaults(dash):
    first = dash.state
    with dash.batch():
        dash.target.value = 50
        dash.window.value = 3
        dash.leads.value = 10
        dash.confidence.value = 0.6
        dash.conversion[dash.stages[0]].value = 0.7
        dash.stall[dash.stages[1]].value = 1.5
        dash.segment_controls["channel"].value = "Web"
        dash.target_unit.value = "revenue"
    dash.reset.click()
    st = dash.state
    assert (st.target, st.target_unit, st.window, st.confidence, st.leads) == (400.0, "wins", 12, 0.8, 250)
    assert st.segment == {} and st.conversion == {} and st.stall == {}
    assert all(w.value == 1.0 for w in [*dash.conversion.values(), *dash.stall.values()])
    assert st.plan.leads == first.plan.leads and st.p_hit == first.p_hit


def test_infeasible_and_errors_are_shown_not_raised(dash):
    dash.window.value = 1                          # new leads cannot be won in their entry month here
    st = dash.state
    assert st.error is None
    assert not st.plan.feasible                    # demo: >= 3 months from entry to a win
    assert "not reachable" in dash.leads_needed_out.value
    assert st.plan.message.split(":")[0].lower() in dash.message.value.lower()
    dash.leads.value = 0
    dash.segment_controls["region"].value = "North"
    assert dash.state.error is None
    assert "Traceback" not in dash.error.value


def test_segment_posterior_is_cached(dash, model, monkeypatch):
    calls = []
    orig = model.posterior_funnel

    def spy(segment=None, **kw):
        calls.append(segment)
        return orig(segment, **kw)
    monkeypatch.setattr(model, "posterior_funnel", spy)
    dash.segment_controls["region"].value = "West"
    dash.segment_controls["region"].value = "all"
    dash.segment_controls["region"].value = "West"
    assert calls == [{"region": "West"}]
    assert "Updated" in dash.status.value


def test_status_and_css_classes(dash):
    classes = {c for w in (dash.target, dash.window, dash.confidence, dash.leads, dash.reset,
                           dash.leads_needed_out, dash.p_hit_out, dash.naive_out, dash.target_unit)
               for c in w._dom_classes}
    assert {"funnel-target", "funnel-window", "funnel-confidence", "funnel-leads", "funnel-reset",
            "funnel-leads-needed", "funnel-p-hit", "funnel-naive", "funnel-target-unit"} <= classes
    assert "funnel-dashboard" in dash.widget._dom_classes
    assert "<svg" in dash.curve_out.value and "<svg" in dash.fan_out.value
    snap = dash.snapshot_html()
    assert "funnel-kpi" in snap and "<svg" in snap


def test_from_params_defaults_and_file(tmp_path):
    p = tmp_path / "wi.yaml"
    p.write_text("source: demo\nfactors: [region]\nwindow: 9\ntarget: 300\nleads: 200\nconfidence: 0.7\n"
                 "draws: 300\nforecast_draws: 100\nleverage_draws: 100\n")
    params = load_params(p)
    assert params["quick"] is True and params["window"] == 9
    dash = WhatIfDashboard.from_params(p)
    assert list(dash.segment_controls) == ["region"]
    assert (dash.state.target, dash.state.window, dash.state.leads, dash.state.confidence) == (300, 9, 200, 0.7)
    assert dash.state.error is None
    assert load_params(None) == DEFAULT_PARAMS


@pytest.mark.parametrize("text, word", [("windw: 3\n", "unknown key"), ("window: 0\n", "window"),
                                        ("confidence: 1.5\n", "confidence"), ("- a\n- b\n", "mapping")])
def test_bad_params(tmp_path, text, word):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ParameterError, match=word):
        load_params(p)


def test_model_without_posterior_funnel_is_rejected():
    with pytest.raises(ParameterError, match="posterior_funnel"):
        WhatIfDashboard(object())


def test_notebook_pair_is_clean_and_parameterised():
    import nbformat
    nb = nbformat.read(REPO / "notebooks" / "what_if.ipynb", as_version=4)
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "params_path = None" in tagged[0].source
    import jupytext
    py = jupytext.read(REPO / "notebooks" / "what_if.py")
    assert [c.source for c in py.cells] == [c.source for c in nb.cells]
    assert find_repo_file("notebooks/what_if.ipynb") == REPO / "notebooks" / "what_if.ipynb"


def test_notebook_runs_under_papermill(tmp_path):
    import papermill as pm
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "what_if.ipynb"), str(out), parameters={"draws": 300},
                        cwd=str(REPO / "notebooks"), progress_bar=False, kernel_name="python3")
    nb = json.loads(out.read_text())
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    html_out = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    snapshot = "".join(html_out[-1])                # the static snapshot cell
    assert "Static snapshot" in snapshot and "<svg" in snapshot and "kpi-value" in snapshot


# ----------------------------------------------------------------------------- CLI
def _parse(argv):
    from funnel_models.cli import build_parser
    return build_parser().parse_args(argv)


def test_cli_defaults_and_voila_command(tmp_path):
    from funnel_models.commands.dashboard import voila_command
    args = _parse(["dashboard"])
    assert (args.params, args.port, args.host, args.debug, args.no_browser) == (None, 8866, "127.0.0.1", False, False)
    cmd = voila_command("nb.ipynb", port=9000)
    assert cmd[:3] == [sys.executable, "-m", "voila"] and "--Voila.ip=127.0.0.1" in cmd
    assert not any("0.0.0.0" in c for c in cmd) and not any("show_tracebacks" in c for c in cmd)
    dbg = voila_command("nb.ipynb", port=9000, host="0.0.0.0", debug=True, no_browser=True)
    assert "--show_tracebacks=True" in dbg and "--no-browser" in dbg and "--Voila.ip=0.0.0.0" in dbg


def test_cli_passes_params_through_env(tmp_path, monkeypatch, capsys):
    from funnel_models.commands import dashboard as cmd_mod
    p = tmp_path / "wi.yaml"
    p.write_text("window: 6\n")
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
    assert seen["env"]["FUNNEL_PARAMS"] == str(p.resolve())
    assert seen["env"]["FUNNEL_WORKDIR"] == str(tmp_path) and seen["env"]["FUNNEL_DEBUG"] == "1"
    assert seen["cmd"][-1] == "--show_tracebacks=True" and Path(seen["cwd"]).name == "notebooks"
    assert "http://127.0.0.1:9123/" in capsys.readouterr().out


def test_cli_missing_or_bad_params_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "funnel_models.cli", "dashboard", str(tmp_path / "nope.yaml")],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("confidence: 2\n")
    r = subprocess.run([sys.executable, "-m", "funnel_models.cli", "dashboard", str(bad)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and "confidence" in r.stderr


def test_report_parameter_files_are_accepted():
    """parameters/region_north.yaml (a report file with extends:) maps onto the what-if keys."""
    params = load_params(REPO / "parameters" / "region_north.yaml")
    assert (params["target"], params["window"], params["filters"], params["factors"]) == \
        (125, 6, {"region": "North"}, ["channel"])
    assert params["quick"] is False and params["change_points"]
    dash = WhatIfDashboard.from_params(REPO / "parameters" / "region_north.yaml", quick=True, draws=300,
                                       forecast_draws=100, leverage_draws=100)
    assert set(dash.data.history["region"].unique()) == {"North"}
    assert list(dash.segment_controls) == ["channel"] and dash.state.error is None
    assert dash.state.target == 125 and dash.state.window == 6
