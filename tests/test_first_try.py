"""A user's first try: one parameter file with only source, spec and factors works with every
command, on a stage history that is not the demo's.

The history is written from the Olist files with its own stage codes, status codes, column
names and attribute name (nothing the demo uses), into a temporary folder, and the real
``funnel`` command runs from there (not from the repository).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from funnel_models.datasets.olist import OLIST_LEADS_FILE, olist_dir, olist_stage_history
from funnel_models.errors import ParameterError
from funnel_models.reports.runner import plan_run

FUNNEL = str(Path(sys.executable).with_name("funnel"))

pytestmark = [pytest.mark.skipif(not (olist_dir() / OLIST_LEADS_FILE).is_file(), reason="Olist data not found"),
              pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("first_try")
    h = olist_stage_history(olist_dir())
    h = h.rename(columns={"mql_id": "deal", "status": "step", "changed_on": "when", "origin": "lead_source"})
    h["step"] = h["step"].map({"MQL": "CONTACTED", "WON": "CLOSED_WON", "LOST": "CLOSED_LOST"})
    h[["deal", "step", "when", "lead_source"]].to_csv(d / "crm_history.csv", index=False)
    spec = {"stages": [{"code": "CONTACTED", "name": "Contacted"}], "won": ["CLOSED_WON"], "lost": ["CLOSED_LOST"],
            "columns": {"lead_id": "deal", "stage": "step", "entered_at": "when"}, "attributes": ["lead_source"]}
    (d / "crm.spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (d / "mine.yaml").write_text("source: crm_history.csv\nspec: crm.spec.yaml\nfactors: [lead_source]\n")
    return d


def run(workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    r = subprocess.run([FUNNEL, *args], cwd=workdir, capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def test_quick_fit_backtest_and_report_plan_with_the_minimal_file(workdir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    r = run(workdir, "fit", "mine.yaml", "--quick")
    assert r.returncode == 0, r.stderr
    assert "a new lead is eventually won with probability" in r.stdout and "open pipeline" in r.stdout
    r = run(workdir, "backtest", "mine.yaml", "--quick", "--no-progress", "--windows", "3")
    assert r.returncode == 0, r.stderr
    assert "conditional forecasts" in r.stdout and "Bayesian forecasts from: quick mode" in r.stdout
    assert "80% intervals held" in r.stdout and "forecast months; intervals that are right give" in r.stdout
    monkeypatch.chdir(workdir)
    assert plan_run("monthly_report", "mine.yaml", None, "2026-01-31").params.factors == ["lead_source"]
    with pytest.raises(ParameterError, match="process_change.change_stage"):     # this notebook needs more
        plan_run("process_change", "mine.yaml", None, "2026-01-31")


@pytest.mark.slow
def test_the_minimal_file_runs_fit_report_and_backtest(workdir: Path) -> None:
    """The issue's acceptance test: MCMC (model: auto) fit, the report, the quick backtest, exit 0 each."""
    r = run(workdir, "fit", "mine.yaml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Bayesian Markov model" in r.stdout
    r = run(workdir, "report", "mine.yaml", "--output-dir", "out", "--date", "2026-01-31", "--quiet")
    assert r.returncode == 0, r.stderr
    s = json.loads((workdir / "out" / "monthly_report-mine" / "2026-01-31" / "summary.json").read_text())
    assert s["data"]["factors"] == ["lead_source"] and s["data"]["model"] == "markov"
    assert 0.05 < s["outlook"]["new_lead_win_rate"]["mean"] < 0.25
    r = run(workdir, "backtest", "mine.yaml", "--quick", "--no-progress")
    assert r.returncode == 0, r.stderr
