"""Report notebooks end to end: papermill runs, summary numbers, HTML, escaping, failure contract.

One MCMC fit of the demo is shared by the whole module through a fit cache folder (the
first run compiles and samples, ~30 s; the others load it). Quick-mode runs use overrides.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from funnel_models.data import derive
from funnel_models.datasets.demo import DEMO_SPEC, demo_data
from funnel_models.errors import ReportError
from funnel_models.reports.runner import run_report
from funnel_models.simulate import forecast, leads_from_history, leads_needed, leverage
from funnel_models.workflow import fit_model, load_data

ROOT = Path(__file__).resolve().parents[1]
PARAMETERS = ROOT / "parameters"
FUNNEL = str(Path(sys.executable).with_name("funnel"))
DATE = "2026-01-31"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fitcache")
    old = os.environ.get("FUNNEL_CACHE_DIR")
    os.environ["FUNNEL_CACHE_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("FUNNEL_CACHE_DIR", None)
    else:
        os.environ["FUNNEL_CACHE_DIR"] = old


@pytest.fixture(scope="module")
def default_report(cache_dir, tmp_path_factory):
    """`funnel report` with no arguments (demo, MCMC) run from the repository root."""
    out = tmp_path_factory.mktemp("reports")
    r = subprocess.run([FUNNEL, "report", "--output-dir", str(out), "--date", DATE], cwd=ROOT,
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stderr
    return out, r


def _html(folder: Path) -> str:
    return next(folder.glob("*.html")).read_text(encoding="utf-8")


def test_default_report_writes_notebook_html_summary_and_latest(default_report):
    out, r = default_report
    folder = out / "monthly_report" / DATE
    assert sorted(p.name for p in folder.iterdir()) == ["monthly_report.html", "monthly_report.ipynb", "summary.json"]
    latest = out / "monthly_report" / "latest"
    assert latest.is_symlink() and os.readlink(latest) == DATE
    assert not list((out / "monthly_report").glob(".tmp-*"))
    s = json.loads((folder / "summary.json").read_text())
    assert s["data"]["model"] == "mcmc" and s["run"]["parameters_file"].endswith("default.yaml")
    assert s["parameters"]["target_wins"] == 240 and s["diagnostics"]["ok"] is True
    # the terminal paragraph
    assert "new leads per month" in r.stdout and "Focus here" in r.stdout and str(folder) in r.stdout
    nb = nbformat.read(str(folder / "monthly_report.ipynb"), as_version=4)
    assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))


def test_summary_numbers_equal_the_library_called_directly(default_report):
    out, _ = default_report
    s = json.loads((out / "monthly_report" / DATE / "summary.json").read_text())
    p = s["parameters"]
    data = load_data("demo")
    model = fit_model(data, factors=p["factors"], change_points=p["change_points"],
                      sampler_config={"draws": p["draws"], "tune": p["tune"], "chains": p["chains"], "seed": p["seed"]})
    assert "cache_load" in model.timings  # the very fit the notebook made
    post = model.posterior_funnel(seed=p["seed"])
    tr = derive.transitions(data.snapshots(), data.spec, by=p["factors"])
    L = leads_from_history(tr, 3)
    pipe = data.pipeline()
    assert s["data"]["new_leads_per_month"] == pytest.approx(L)
    res = leads_needed(post, p["target_wins"], p["window_months"], pipeline=pipe, confidence=p["confidence"],
                       seed=p["seed"])
    ln = s["leads_needed"]
    assert ln["leads"] == res.leads and ln["naive_leads"] == res.naive_leads
    assert ln["probability"] == pytest.approx(res.probability)
    assert ln["naive_probability"] == pytest.approx(res.naive_probability)
    fc = forecast(post, pipe, L, p["horizon"], seed=p["seed"], start=data.cutoff_month)
    w = fc.intervals((0.8,)).query("quantity == 'wins'")
    assert [f["wins_mean"] for f in s["forecast"]] == pytest.approx(w["mean"].tolist())
    assert [f["wins_lo_80"] for f in s["forecast"]] == pytest.approx(w["lo_80"].tolist())
    assert [f["wins_hi_80"] for f in s["forecast"]] == pytest.approx(w["hi_80"].tolist())
    lev = leverage(post, pipe, L, p["horizon"], level=p["interval_level"])
    assert s["bottleneck"]["stage"] == lev["stage"].iloc[0] and s["bottleneck"]["lever"] == lev["lever"].iloc[0]
    d = model.diagnostics(warn=False)
    assert s["diagnostics"]["r_hat_max"] == pytest.approx(d["r_hat_max"])


def test_html_has_no_code_no_traceback_and_the_key_numbers(default_report):
    out, _ = default_report
    folder = out / "monthly_report" / DATE
    html = _html(folder)
    s = json.loads((folder / "summary.json").read_text())
    assert "Traceback" not in html and "ParameterError" not in html and 'data-mime-type="application/vnd.jupyter.stderr"' not in html
    assert "analysis.prepare" not in html and "from funnel_models" not in html  # no code cells
    assert html.count("data:image/png;base64") >= 8  # figures embedded
    assert 'src="http' not in html  # self-contained
    ln = s["leads_needed"]
    assert f"{ln['leads']:,} new leads per month" in html
    assert f"naive spreadsheet answer of {ln['naive_leads']:,}" in html
    assert f"P = {ln['naive_probability']:.2f}" in html
    for f in s["forecast"]:
        assert f">{f['month']}<" in html and f">{f['wins_mean']:.1f}<" in html
        assert f">{f['wins_lo_80']:.0f}<" in html and f">{f['wins_hi_80']:.0f}<" in html
    assert f"Focus here: {s['bottleneck']['lever']} at {s['bottleneck']['stage']}" in html
    assert "Diagnostics OK" in html


def test_runs_outside_the_repository_from_the_packaged_templates(cache_dir, default_report, tmp_path):
    """No ./notebooks or ./parameters here: funnel_models/templates/ is used (as after pip install .)."""
    r = subprocess.run([FUNNEL, "report", "--output-dir", "out", "--date", DATE, "--quiet"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=250)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "out" / "monthly_report" / DATE / "summary.json").read_text())
    assert "templates" in s["run"]["parameters_file"] and s["data"]["model"] == "mcmc"


@pytest.mark.parametrize("notebook, overrides, key", [
    ("lead_planning", None, "plan_periods"),
    ("process_change", {"quick": True}, "process_change"),
])
def test_other_notebooks_run_on_their_defaults(cache_dir, default_report, tmp_path, notebook, overrides, key):
    folder = run_report(notebook, None, tmp_path, date=DATE, overrides=overrides)
    assert folder == tmp_path / notebook / DATE
    s = json.loads((folder / "summary.json").read_text())
    assert key in s
    html = _html(folder)
    assert "Traceback" not in html
    if notebook == "lead_planning":  # MCMC (fit loaded from the shared cache)
        assert s["data"]["model"] == "mcmc"
        first = s["plan_periods"][0]
        assert f"{first['leads per month']} leads/month" in html
        assert len(s["plan_segments"]) == 3
    else:
        pc = s["process_change"]
        assert pc["stage"] == "DEMO" and pc["p_improved"] > 0.95 and pc["rate_after"] > pc["rate_before"]
        assert f"P(improved) = {pc['p_improved']:.2f}" in html


def test_process_change_mcmc_matches_change_point_effects(cache_dir, default_report, tmp_path):
    folder = run_report("process_change", None, tmp_path, date=DATE)
    pc = json.loads((folder / "summary.json").read_text())["process_change"]
    data = load_data("demo")
    model = fit_model(data, factors=["region", "channel"],
                      change_points=[{"stage": "DEMO", "month": "2025-01", "name": "sales training"}],
                      sampler_config={"draws": 500, "tune": 400, "chains": 4, "seed": 0})
    eff = model.change_point_effects().iloc[0]
    assert pc["rate_before"] == pytest.approx(eff["before_mean"])
    assert pc["rate_after"] == pytest.approx(eff["after_mean"])
    assert pc["p_improved"] == pytest.approx(eff["p_improved"])


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
    params.write_text(yaml.safe_dump({"source": str(csv), "spec": str(spec), "quick": True,
                                      "title": "Report for <b>bold</b> & co"}), encoding="utf-8")
    folder = run_report("monthly_report", params, tmp_path / "out", date=DATE)
    html = _html(folder)
    assert evil not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert "Traceback" not in html


def _good_quick(tmp_path: Path, name: str = "p.yaml", **extra) -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump({"extends": str(PARAMETERS / "default.yaml"), "quick": True, **extra}))
    return f


def test_failing_cell_keeps_failed_notebook_and_leaves_last_good_report(tmp_path):
    out = tmp_path / "out"
    params = _good_quick(tmp_path)
    good = run_report("monthly_report", params, out, date=DATE)
    before = (good / "summary.json").read_bytes()
    # valid YAML and schema, but the stage code is unknown: the conversion cell raises
    params.write_text(yaml.safe_dump({"extends": str(PARAMETERS / "default.yaml"), "quick": True,
                                      "benchmarks": {"NOPE": 0.5}}))
    r = subprocess.run([FUNNEL, "report", str(params), "--output-dir", str(out), "--date", DATE,
                        "--log-file", str(tmp_path / "log.txt")], cwd=ROOT, capture_output=True, text=True,
                       timeout=200)
    assert r.returncode == 1, r.stderr
    assert "analysis.show(analysis.conversion_section(ctx))" in r.stderr
    assert "ParameterError" in r.stderr and "NOPE" in r.stderr and "cell " in r.stderr
    root = out / "monthly_report-p"
    assert (good / "summary.json").read_bytes() == before
    assert os.readlink(root / "latest") == DATE
    failed = root / f"{DATE}.failed"
    nb = nbformat.read(str(failed / "monthly_report.ipynb"), as_version=4)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ParameterError"
    assert "NOPE" in (failed / "error.txt").read_text()
    assert not (failed / "summary.json").exists()
    assert "FAILED" in (tmp_path / "log.txt").read_text()
    assert not list(root.glob(".tmp-*"))
    # the library call raises ReportError carrying the result
    with pytest.raises(ReportError) as ei:
        run_report("monthly_report", params, out, date="2026-02-01")
    assert ei.value.result.failed == root / "2026-02-01.failed"
    assert not (root / "2026-02-01").exists() and os.readlink(root / "latest") == DATE


def test_killed_run_leaves_no_partial_report(tmp_path):
    out = tmp_path / "out"
    params = _good_quick(tmp_path, "k.yaml")
    run_report("monthly_report", params, out, date=DATE)
    root = out / "monthly_report-k"
    # a slow run: MCMC with an empty cache folder (compile + sample, ~30 s)
    params.write_text(yaml.safe_dump({"extends": str(PARAMETERS / "default.yaml"), "quick": False}))
    env = dict(os.environ, FUNNEL_CACHE_DIR=str(tmp_path / "empty-cache"))
    proc = subprocess.Popen([FUNNEL, "report", str(params), "--output-dir", str(out), "--date", "2026-02-28",
                             "--quiet"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not list(root.glob(".tmp-2026-02-28-*")) and time.time() < deadline:
            time.sleep(0.2)
        assert list(root.glob(".tmp-2026-02-28-*")), "the run never started"
        time.sleep(4)
        assert proc.poll() is None, "finished before it could be killed"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0
    assert not (root / "2026-02-28").exists() and not (root / "2026-02-28.failed").exists()
    assert not list(root.glob(".tmp-*"))
    assert os.readlink(root / "latest") == DATE and (root / DATE / "summary.json").exists()


def test_stale_temp_folder_of_a_killed_process_is_removed(tmp_path):
    out = tmp_path / "out"
    root = out / "monthly_report-s"
    root.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = root / f".tmp-{DATE}-{dead.pid}-deadbeef"
    stale.mkdir()
    (stale / "half.ipynb").write_text("{}")
    run_report("monthly_report", _good_quick(tmp_path, "s.yaml"), out, date=DATE)
    assert not stale.exists() and (root / DATE / "summary.json").exists()


def test_batch_runs_each_file_with_its_own_folder(tmp_path):
    a = _good_quick(tmp_path, "north.yaml", segment_filters={"region": "North"}, factors=["channel"])
    b = _good_quick(tmp_path, "partner.yaml", segment_filters={"channel": "Partner"}, factors=["region"],
                    benchmarks={"NOPE": 0.1})
    out = tmp_path / "out"
    r = subprocess.run([FUNNEL, "report", str(a), str(b), "--output-dir", str(out), "--date", DATE],
                       cwd=ROOT, capture_output=True, text=True, timeout=250)
    assert r.returncode == 1, r.stderr
    assert "1 of 2 report(s) ok" in r.stderr and "FAILED" in r.stderr and "reports:" in r.stderr  # tqdm bar
    s = json.loads((out / "monthly_report-north" / DATE / "summary.json").read_text())
    assert s["parameters"]["segment_filters"] == {"region": "North"} and s["data"]["factors"] == ["channel"]
    assert (out / "monthly_report-partner" / f"{DATE}.failed").is_dir()
    assert not (out / "monthly_report-partner" / "latest").exists()
