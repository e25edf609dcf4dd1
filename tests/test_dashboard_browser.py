"""The what-if dashboard in a real browser: ``funnel dashboard`` serves it, Chromium drives it.

Needs /usr/bin/chromium (Playwright's own browser download is not used); Chromium runs
with no access to the internet, so the page must load everything (Plotly included) from
the installed packages. Screenshots at 1366 px are written to ``$FUNNEL_SCREENSHOTS``
(default: the test's temporary folder) and their paths printed.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
FACTORS = ["region", "channel"]
PARAMS = {"source": "demo", "model": "conjugate", "factors": FACTORS, "seed": 0,
          "monthly_report": {"target_wins": 400, "window_months": 12, "confidence": 0.8},
          "new_leads": 250, "dashboard": {"draws": 1000}}
#: Console messages of a page without internet access (fonts, source maps, MathJax), not errors of ours.
OFFLINE = ("net::ERR_", "Failed to load resource", "ERR_INTERNET_DISCONNECTED", "ERR_NAME_NOT_RESOLVED")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: the browser test drives a "
                       "system Chromium (Playwright's browser download is not used)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``funnel dashboard PARAMS --no-browser --port P`` started in ``cwd``."""

    def __init__(self, params: Path, cwd: Path, env: dict | None = None) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = cwd / "dashboard.log"
        self.log = open(self.log_path, "w")
        env = {**os.environ, **(env or {})}
        env.pop("FUNNEL_DEBUG", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "funnel_models.cli", "dashboard", str(params),
                                      "--no-browser", f"--port={self.port}"], cwd=cwd, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_listening(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"funnel dashboard exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the dashboard did not listen in time") from None
                time.sleep(0.3)

    def stop(self) -> int:
        """SIGTERM to the command (it stops Voila); returns its exit status."""
        try:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return -9
        finally:
            self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash")
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    s = Served(params, tmp)
    try:
        s.wait_listening()
        yield s
    finally:
        assert s.stop() == 0, s.log_path.read_text()[-2000:]


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("FUNNEL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _expected() -> dict:
    """Leads needed for two targets and East's planned leads, computed in the test process."""
    from funnel_models import simulate as S
    from funnel_models.data import derive
    from funnel_models.workflow import fit_model, load_data
    data = load_data("demo")
    model = fit_model(data, model="conjugate", factors=FACTORS)
    post = model.posterior_funnel(None, draws=1000, seed=0)
    out = {}
    for target in (400, 460):
        r = S.leads_needed(post, target, 12, pipeline=data.pipeline(), confidence=0.8, seed=0, start=data.cutoff_month)
        out[target] = int(r.leads)
    t = derive.transitions(data.snapshots(), data.spec, by=FACTORS)
    ent = t[t["from_stage"] == "ENTRY"]
    share = S.leads_from_history(ent[ent["region"] == "East"]) / S.leads_from_history(t)
    out["east_leads"] = int(round(250 * share))
    return out


def _kpi(page, name: str) -> str:
    return page.locator(f".funnel-{name} .kpi-value").get_attribute("data-value") or ""


def _wait_kpi(page, name: str, value: object, timeout: int = 60_000) -> None:
    page.wait_for_function(f"() => document.querySelector('.funnel-{name} .kpi-value')"
                           f"?.getAttribute('data-value') === '{value}'", timeout=timeout)


def test_dashboard_in_chromium(served, shots):
    from playwright.sync_api import sync_playwright
    exp = _expected()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(served.url, timeout=180_000)
            page.wait_for_selector(".funnel-leads-needed .kpi-value[data-value]", timeout=180_000)
            page.wait_for_selector(".funnel-curve .main-svg", timeout=60_000)
            page.wait_for_selector(".funnel-fan .main-svg", timeout=60_000)
            assert int(_kpi(page, "leads-needed")) == exp[400]
            page.screenshot(path=str(shots / "dashboard_plan.png"), full_page=True)

            target = page.locator(".funnel-target input")
            target.fill("460")
            target.press("Enter")
            _wait_kpi(page, "leads-needed", exp[460])

            page.locator(".funnel-segment-region select").select_option("East")
            page.wait_for_function(f"() => document.querySelector('.funnel-leads input')?.value === "
                                   f"'{exp['east_leads']}'", timeout=60_000)
            page.wait_for_function(f"() => document.querySelector('.funnel-p-hit .kpi-note')?.textContent"
                                   f".startsWith('{exp['east_leads']:,} new leads')", timeout=60_000)
            assert exp["east_leads"] < 250
            page.screenshot(path=str(shots / "dashboard_segment_east.png"), full_page=True)

            page.locator(".lm-TabBar-tabLabel", has_text="Where to act").click()
            page.wait_for_selector(".funnel-leverage table", timeout=60_000)
            assert "relative" in page.locator(".funnel-leverage").inner_text()
            page.screenshot(path=str(shots / "dashboard_where_to_act.png"), full_page=True)

            page.locator(".lm-TabBar-tabLabel", has_text="Stage flows").click()
            page.wait_for_selector(".funnel-sankey .main-svg", timeout=60_000)
            page.wait_for_selector(".funnel-funnel .main-svg", timeout=60_000)
            page.screenshot(path=str(shots / "dashboard_flows.png"), full_page=True)

            body = page.inner_text("body")
            assert "Error displaying widget" not in body and "Traceback" not in body
        except Exception:
            page.screenshot(path=str(shots / "dashboard_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    print(f"screenshots: {sorted(str(p) for p in shots.glob('dashboard_*.png'))}")
    ours = [e for e in errors if not any(o in e for o in OFFLINE)]
    assert not ours, ours


#: True when the forecast fan's target line is labelled with the target in the target box.
_FAN_SHOWS_TARGET = ("() => { const t = document.querySelector('.funnel-target input')?.value;"
                     " return !!t && [...document.querySelectorAll('.funnel-fan .legendtext')]"
                     ".some(e => e.textContent.replace(/,/g, '') === 'target ' + t); }")


@pytest.mark.xfail(strict=False, reason="known bug, open: in about half the runs on a loaded 2-core machine the "
                   "forecast fan's view in the browser misses every Plotly update after its first drawing (it keeps "
                   "the first target and forecast) while the curve beside it updates; no browser error is logged")
def test_the_forecast_fan_follows_the_controls_in_chromium(served, shots):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        try:
            page.goto(served.url, timeout=180_000)
            page.wait_for_function(_FAN_SHOWS_TARGET, timeout=180_000)        # the first drawing is done
            target = page.locator(".funnel-target input")
            target.fill("460")
            target.press("Enter")
            page.wait_for_function(_FAN_SHOWS_TARGET.replace("=== 'target ' + t", "=== 'target 460'"),
                                   timeout=60_000)
            page.locator(".funnel-segment-region select").select_option("East")
            page.wait_for_function("() => document.querySelector('.funnel-target input')?.value !== '460'",
                                   timeout=60_000)
            page.wait_for_function(_FAN_SHOWS_TARGET, timeout=60_000)        # the segment's own target
        except Exception:
            page.screenshot(path=str(shots / "dashboard_fan_failure.png"), full_page=True)
            raise
        finally:
            browser.close()


# ----------------------------------------------------------------------------- a stage history that is not the demo's
def _olist_files(tmp: Path) -> Path:
    from funnel_models.datasets.olist import OLIST_SPEC, olist_dir, olist_stage_history
    try:
        history = olist_stage_history(olist_dir())
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"the Olist files are not available here: {exc}")
    history.to_csv(tmp / "history.csv", index=False)
    (tmp / "funnel.yaml").write_text(yaml.safe_dump(OLIST_SPEC))
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"source": "history.csv", "spec": "funnel.yaml", "factors": ["origin"]}))
    return params


@pytest.mark.slow
def test_olist_history_with_only_source_spec_factors_serves_from_a_plain_install(tmp_path):
    """A parameter file with only source, spec and factors, on a stage history written from
    the Olist files, served by a non-editable copy of the package from a directory with
    no notebooks/: the shipped template is found, the page serves, and the command exits 0."""
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", str(site), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (site / "funnel_models" / "templates" / "what_if.ipynb").is_file()
    work = tmp_path / "work"
    work.mkdir()
    params = _olist_files(work)
    s = Served(params, work, env={"PYTHONPATH": str(site)})
    try:
        s.wait_listening()
        with urllib.request.urlopen(s.url, timeout=900) as resp:   # Voila answers once the notebook ran
            page = resp.read().decode("utf-8", "replace")
        assert resp.status == 200
        assert "application/vnd.jupyter.widget-view+json" in page
        assert "Traceback" not in page and "There was an error when executing cell" not in page
        log = s.log_path.read_text()
        assert str(site / "funnel_models" / "templates") in log or "parameters:" in log
    finally:
        rc = s.stop()
    assert rc == 0, s.log_path.read_text()[-3000:]
