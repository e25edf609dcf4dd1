"""Report notebooks end to end: papermill runs, summary numbers, HTML, escaping, failure contract.

Most runs use ``model: conjugate`` (exact, seconds); the MCMC end-to-end runs (the default
demo report, Olist, aggregate counts) are marked ``slow``. Every rendered report is checked
by :func:`assert_clean_html`: no code, no traceback, no stderr block, no path of this
machine, no 'WARNING: WARNING', no negative zero.
"""
from __future__ import annotations

import json
from html import escape as html_escape
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from funnel_models.datasets.demo import DEMO_SPEC, demo_data
from funnel_models.datasets.olist import OLIST_LEADS_FILE, olist_dir
from funnel_models.errors import ReportError
from funnel_models.params import load_parameter_file
from funnel_models.reports.runner import run_report

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = ROOT / "parameters"
FUNNEL = str(Path(sys.executable).with_name("funnel"))
DATE = "2026-01-31"

pytestmark = pytest.mark.timeout(600)


def visible_text(html: str) -> str:
    """The HTML without its style and script blocks (what a reader can see)."""
    return re.sub(r"<(style|script)[^>]*>.*?</\1>", "", html, flags=re.S | re.I)


def assert_clean_html(html: str, *machine_paths: Path | str) -> None:
    """What a manager should not see in a rendered report."""
    body = visible_text(html)
    assert "Traceback" not in body
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html and "stderr" not in body
    assert "WARNING: WARNING" not in body and "Warning:" not in body and "UserWarning" not in body
    assert "from funnel_models" not in body and "fr.show(" not in body          # no code cells
    assert "&lt;DataFrame&gt;" not in body and "<DataFrame>" not in body
    assert not re.search(r"(?<![\w.])-0(\.0+)?%", body) and not re.search(r">-0\.0+<", body)
    for p in (ROOT, Path.home(), sys.prefix, *machine_paths):
        s = str(p)
        if len(s) > 1:
            assert s not in body, f"machine path {s} in the report"
    assert 'src="http' not in html                                               # self-contained


def _html(folder: Path) -> str:
    return next(folder.glob("*.html")).read_text(encoding="utf-8")


def _params(tmp: Path, name: str, **values: object) -> Path:
    f = tmp / name
    f.write_text(yaml.safe_dump({"extends": str(PARAMETERS / "default.yaml"), **values}, sort_keys=False))
    return f


# ---------------------------------------------------------------------------- the quick demo report
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`funnel report` on the demo with the conjugate model (the inflow model gives the new leads)."""
    tmp = tmp_path_factory.mktemp("quick")
    params = _params(tmp, "quick.yaml", model="conjugate")
    out = tmp / "out"
    r = subprocess.run([FUNNEL, "report", str(params), "--output-dir", str(out), "--date", DATE], cwd=ROOT,
                       capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr
    return out / "monthly_report-quick", r, params, tmp


def test_report_writes_notebook_html_summary_and_latest(quick):
    root, r, params, _ = quick
    folder = root / DATE
    assert sorted(p.name for p in folder.iterdir()) == ["monthly_report.html", "monthly_report.ipynb", "summary.json"]
    assert os.readlink(root / "latest") == DATE and not list(root.glob(".tmp-*"))
    s = json.loads((folder / "summary.json").read_text())
    assert s["data"]["model"] == "conjugate" and s["run"]["parameters_file"] == "quick.yaml"
    assert s["data"]["new_leads_from"] == "inflow model" and s["diagnostics"]["ok"] is True
    for key in ("funnel", "outlook", "forecast", "forecast_total", "leads_needed", "bottleneck", "early_warning",
                "inflow", "conversion", "stall_longest", "segments", "model_choice", "diagnostics", "notes"):
        assert key in s, key
    assert "new leads per month" in r.stdout and "Focus here" in r.stdout and str(folder) in r.stdout
    assert "cell" in r.stderr                                   # progress: cells done / total on stderr
    nb = nbformat.read(str(folder / "monthly_report.ipynb"), as_version=4)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert not any(o.get("output_type") == "error" for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs)


def test_summary_numbers_equal_the_library_called_directly(quick):
    from funnel_models import simulate
    from funnel_models.workflow import fit_inflow, fit_model, load_data
    root, _, params_path, _ = quick
    s = json.loads((root / DATE / "summary.json").read_text())
    p, _ = load_parameter_file(params_path)
    data = load_data("demo")
    model = fit_model(data, model="conjugate", factors=p.factors, model_config=p.settings)
    post = model.posterior_funnel(seed=p.seed)
    pipe = model.pipeline(data)
    inflow = fit_inflow(data, p, factors=p.factors)
    H, T = p.monthly_report.horizon, p.monthly_report.window_months
    fc = simulate.forecast(post, pipe, inflow.forecast(H, seed=p.seed), H, seed=p.seed, start=data.cutoff_month)
    w = fc.intervals((0.8,)).query("quantity == 'wins'")
    assert [f["wins_mean"] for f in s["forecast"]] == pytest.approx(w["mean"].tolist())
    assert [f["wins_hi_80"] for f in s["forecast"]] == pytest.approx(w["hi_80"].tolist())
    res = simulate.leads_needed(post, p.monthly_report.target_wins, T, pipeline=pipe,
                                confidence=p.monthly_report.confidence, seed=p.seed, start=data.cutoff_month)
    ln = s["leads_needed"]
    assert ln["leads"] == res.leads and ln["naive_leads"] == res.naive_leads
    assert ln["probability"] == pytest.approx(res.probability)
    base = simulate.leads_needed(post, p.monthly_report.target_wins, T, pipeline=pipe, confidence=0.8, seed=p.seed,
                                 start=data.cutoff_month, baseline=inflow.forecast(T, seed=p.seed))
    assert ln["baseline_probability"] == pytest.approx(base.baseline_probability)
    out = simulate.pipeline_outlook(post, pipe, months=H, start=data.cutoff_month, level=p.interval_level)
    assert s["outlook"]["new_lead_win_rate"]["mean"] == pytest.approx(float(post.lead_win_rate().mean()))
    assert s["outlook"]["pipeline"]["eventual_win_rate"] == pytest.approx(float(out["win_rate_mean"].iloc[-1]))
    lev = simulate.leverage(post, pipe, inflow.forecast(H, seed=p.seed), H, level=p.interval_level,
                            start=data.cutoff_month)
    assert (s["bottleneck"]["stage"], s["bottleneck"]["lever"]) == (lev["stage"].iloc[0], lev["lever"].iloc[0])


def test_html_has_the_key_numbers_and_nothing_a_manager_should_not_see(quick):
    root, _, _, tmp = quick
    html = _html(root / DATE)
    assert_clean_html(html, tmp)
    s = json.loads((root / DATE / "summary.json").read_text())
    assert html.count("data:image/png;base64") >= 11
    ln = s["leads_needed"]
    assert f"{ln['leads']:,} new leads per month" in html and f"naive spreadsheet answer of {ln['naive_leads']:,}" in html
    for f in s["forecast"]:
        assert f">{f['month']}<" in html and f">{f['wins_mean']:.1f}<" in html
    lever = s["bottleneck"]["lever"]
    kind = "relative" if lever.startswith("conversion") else "absolute"
    assert f"Focus here: {html_escape(lever)} ({kind}: " in html and f") at {s['bottleneck']['stage']}" in html
    for picture in ("Stage flows over the last 12 months", "Entry cohorts", "Time to convert, from the data"):
        assert picture in html
    assert html.count("window.PlotlyConfig") == 1                       # plotly.js inline, once
    w = s["outlook"]["new_lead_win_rate"]["mean"]
    assert f"A new lead is eventually won with probability {100 * w:.1f}%" in html
    assert "Every number in this report comes from one model: quick mode" in html      # which model
    assert "inflow model" in html and "Model diagnostics" in html


@pytest.mark.parametrize("notebook, key", [("lead_planning", "plan_periods"), ("process_change", "process_change"),
                                           ("backtest", "backtest")])
def test_every_other_notebook_runs_as_a_report(quick, tmp_path, notebook, key):
    _, _, params, _ = quick
    folder = run_report(notebook, params, tmp_path, date=DATE, overrides={"backtest": {"n_windows": 3}})
    assert folder == tmp_path / f"{notebook}-quick" / DATE
    s = json.loads((folder / "summary.json").read_text())
    assert key in s
    html = _html(folder)
    assert_clean_html(html, tmp_path)
    if notebook == "lead_planning":
        assert len(s["plan_periods"]) == 2 and len(s["plan_segments"]) == 3      # by channel
    elif notebook == "process_change":
        pc = s["process_change"]                      # the demo's sales training raised DEMO's conversion
        assert pc["stage"] == "DEMO" and pc["p_improved"] > 0.95 and pc["rate_after"] > pc["rate_before"]
        assert f"P(improved) = {pc['p_improved']:.2f}" in html
    else:
        assert s["backtest"]["cutoffs"] == 3 and {m["mode"] for m in s["backtest"]["metrics"]} == \
            {"conditional", "unconditional"}
        assert "Bayesian forecasts from: quick mode" in html
        cov = {r["nominal"]: r for r in s["backtest"]["coverage"]["conditional"]}
        assert cov[0.8]["n"] == 9 and cov[0.8]["months"] == 5                 # 3 cut-offs x 3 months ahead
        assert cov[0.8]["months_lo"] <= cov[0.8]["pairs_lo"] <= cov[0.8]["pairs_hi"] <= cov[0.8]["months_hi"]
        assert "intervals that are right give" in html


def _tiny_csv(tmp_path: Path, region: str) -> tuple[Path, Path]:
    d = demo_data(seed=5, months=8, leads_per_month=60)
    h = d.history.copy()
    h["region"] = np.where(h["region"].astype(str) == "North", region, h["region"].astype(str))
    csv = tmp_path / "tiny.csv"
    h.to_csv(csv, index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(DEMO_SPEC), encoding="utf-8")
    return csv, spec


def test_data_strings_are_escaped_in_the_html(tmp_path):
    evil = "<script>alert(1)</script>"
    csv, spec = _tiny_csv(tmp_path, evil)
    params = tmp_path / "evil.yaml"
    params.write_text(yaml.safe_dump({"source": str(csv), "spec": str(spec), "model": "conjugate", "factors": ["region"],
                                      "new_leads": 60, "monthly_report": {"title": "Report for <b>bold</b> & co"}}))
    folder = run_report("monthly_report", params, tmp_path / "out", date=DATE)
    html = _html(folder)
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert_clean_html(html, tmp_path)


def test_a_stage_without_data_is_reported_as_such(tmp_path):
    """A stage declared in the spec that no lead ever reaches: 'no data', not 0.500 [0.500, 0.500]."""
    csv, _ = _tiny_csv(tmp_path, "North")
    stages = DEMO_SPEC["stages"]
    spec = tmp_path / "spec_trial.yaml"
    spec.write_text(yaml.safe_dump({**DEMO_SPEC, "stages": [*stages[:5], {"code": "TRIAL", "name": "Trial"},
                                                             stages[5]]}))
    params = tmp_path / "trial.yaml"
    params.write_text(yaml.safe_dump({"source": str(csv), "spec": str(spec), "model": "conjugate", "new_leads": 60}))
    folder = run_report("monthly_report", params, tmp_path / "out", date=DATE)
    s = json.loads((folder / "summary.json").read_text())
    assert s["conversion"]["TRIAL"] is None and s["conversion"]["PROP"] is not None
    assert any("TRIAL" in n and "never appear in the data" in n for n in s["notes"])
    html = _html(folder)
    assert "no data" in html and "0.500" not in html and s["stall_longest"]["stage"] != "TRIAL"
    assert_clean_html(html, tmp_path)


def test_a_failing_cell_keeps_the_failed_notebook_and_the_last_good_report(tmp_path):
    out = tmp_path / "out"
    params = _params(tmp_path, "p.yaml", model="conjugate", new_leads=300)
    good = run_report("monthly_report", params, out, date=DATE)
    before = (good / "summary.json").read_bytes()
    # valid and preflighted, but no lead is in region Nowhere: the first cell raises
    _params(tmp_path, "p.yaml", model="conjugate", new_leads=300, segment_filters={"region": "Nowhere"})
    r = subprocess.run([FUNNEL, "report", str(params), "--output-dir", str(out), "--date", DATE, "--quiet",
                        "--log-file", str(tmp_path / "log.txt")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "open_report" in r.stderr and "FunnelDataError" in r.stderr and "Nowhere" in r.stderr
    assert "Traceback" not in r.stderr
    root = out / "monthly_report-p"
    assert (root / DATE / "summary.json").read_bytes() == before and os.readlink(root / "latest") == DATE
    failed = root / f"{DATE}.failed"
    nb = nbformat.read(str(failed / "monthly_report.ipynb"), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "FunnelDataError"
    assert "Nowhere" in (failed / "error.txt").read_text() and not (failed / "summary.json").exists()
    assert "FAILED" in (tmp_path / "log.txt").read_text() and not list(root.glob(".tmp-*"))
    with pytest.raises(ReportError) as ei:
        run_report("monthly_report", params, out, date="2026-02-01")
    assert ei.value.result.failed == root / "2026-02-01.failed"
    assert not (root / "2026-02-01").exists() and os.readlink(root / "latest") == DATE


def test_batch_runs_each_file_into_its_own_folder(tmp_path):
    a = _params(tmp_path, "north.yaml", model="conjugate", new_leads=100, segment_filters={"region": "North"},
                factors=["channel"])
    b = _params(tmp_path, "nowhere.yaml", model="conjugate", new_leads=100, segment_filters={"region": "Nowhere"})
    out = tmp_path / "out"
    r = subprocess.run([FUNNEL, "report", str(a), str(b), "--output-dir", str(out), "--date", DATE], cwd=ROOT,
                       capture_output=True, text=True, timeout=400)
    assert r.returncode == 1, r.stderr
    assert "1 of 2 report(s) ok" in r.stderr and "FAILED" in r.stderr and "reports:" in r.stderr   # progress bar
    # the models are fitted first, in one process (so fits of one structure share the compiled graph)
    assert "fit 1/2 monthly_report-north: fitted without a sampler" in r.stderr
    assert "fit 2/2 monthly_report-nowhere: failed (FunnelDataError); its report will say why" in r.stderr
    s = json.loads((out / "monthly_report-north" / DATE / "summary.json").read_text())
    assert s["parameters"]["segment_filters"] == {"region": "North"} and s["data"]["factors"] == ["channel"]
    assert (out / "monthly_report-nowhere" / f"{DATE}.failed").is_dir()
    assert not (out / "monthly_report-nowhere" / "latest").exists()


# ---------------------------------------------------------------------------- MCMC end to end (slow)
@pytest.mark.slow
def test_default_report_with_no_arguments_from_a_folder_without_templates(tmp_path):
    """`funnel report` in an empty folder: the packaged templates and the demo, MCMC."""
    r = subprocess.run([FUNNEL, "report", "--output-dir", "out", "--date", DATE], cwd=tmp_path, capture_output=True,
                       text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "out" / "monthly_report" / DATE
    s = json.loads((folder / "summary.json").read_text())
    assert s["data"]["model"] == "markov" and s["run"]["parameters_file"] == "default.yaml"
    assert s["model_choice"]["rule"] and len(s["model_choice"]["comparisons"]) >= 2       # ELPD differences
    html = _html(folder)
    assert_clean_html(html, tmp_path)
    assert "ELPD difference to best" in html and "Bayesian Markov model" in html


@pytest.mark.slow
@pytest.mark.skipif(not (olist_dir() / OLIST_LEADS_FILE).is_file(), reason="Olist data not found")
def test_olist_report_is_plausible_and_readable(tmp_path):
    folder = run_report("monthly_report", PARAMETERS / "olist.yaml", tmp_path, date=DATE, cwd=ROOT)
    s = json.loads((folder / "summary.json").read_text())
    w = s["outlook"]["new_lead_win_rate"]["mean"]
    assert 0.05 < w < 0.25 and s["outlook"]["median_months_to_win"] < 12
    html = _html(folder)
    assert_clean_html(html, tmp_path, olist_dir())
    assert "MQL" in html and html.count("data:image/png;base64") >= 10


@pytest.mark.slow
def test_aggregate_counts_give_a_report_through_the_lag_model(tmp_path):
    from funnel_models.data import derive
    d = demo_data(seed=3, months=18, leads_per_month=150)
    tr = derive.transitions(derive.snapshots_from_history(d.history, d.spec), d.spec)
    entries = tr[tr["to_stage"] != tr["from_stage"]].groupby(["month", "to_stage"], as_index=False)["n"].sum()
    counts = entries.rename(columns={"to_stage": "stage", "n": "count"})
    counts = counts[counts["stage"] != "LOST"]
    csv = tmp_path / "counts.csv"
    counts.to_csv(csv, index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**DEMO_SPEC, "attributes": []}))
    params = tmp_path / "counts.yaml"
    params.write_text(yaml.safe_dump({"source": str(csv), "spec": str(spec)}))
    folder = run_report("monthly_report", params, tmp_path / "out", date=DATE)
    s = json.loads((folder / "summary.json").read_text())
    assert s["data"]["model"] == "lag" and s["data"]["kind"] == "counts"
    html = _html(folder)
    assert_clean_html(html, tmp_path)
    assert "aggregate monthly counts" in html and "lead-level data" in html
