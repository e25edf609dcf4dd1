"""The what-if dashboard in a real browser: Voila serves notebooks/what_if.ipynb, Chromium drives it.

Run with ``pytest -m browser tests/test_dashboard_browser.py``. Needs /usr/bin/chromium
(Playwright's own browser download is not used).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PARAMS = {"source": "demo", "factors": ["region", "channel"], "quick": True, "target": 400, "window": 12,
          "confidence": 0.8, "leads": 250, "draws": 1000, "seed": 0}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: the browser test drives a "
                       "system Chromium (Playwright's browser download is not used)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import yaml
    tmp = tmp_path_factory.mktemp("voila")
    params = tmp / "what_if.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    port = _free_port()
    log = open(tmp / "voila.log", "w")
    env = {**os.environ, "FUNNEL_PARAMS": str(params)}
    env.pop("FUNNEL_DEBUG", None)
    proc = subprocess.Popen([sys.executable, "-m", "voila", "notebooks/what_if.ipynb", "--no-browser",
                             f"--port={port}", "--Voila.ip=127.0.0.1"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}: {(tmp / 'voila.log').read_text()[-2000:]}")
            try:  # listening? (GET / would already start a kernel)
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("voila did not start within 60 s") from None
                time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        log.close()


def _expected_leads(target: float) -> int:
    """Leads needed by the simulator for the served parameters, computed in the test process."""
    from funnel_models import simulate as S
    from funnel_models.workflow import fit_model, load_data
    data = load_data("demo")
    model = fit_model(data, quick=True, factors=PARAMS["factors"])
    post = model.posterior_funnel(None).thin(PARAMS["draws"], seed=PARAMS["seed"])
    res = S.leads_needed(post, target, PARAMS["window"], pipeline=data.pipeline(), confidence=PARAMS["confidence"],
                         seed=PARAMS["seed"])
    assert res.feasible
    return int(res.leads)


def test_change_target_in_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright
    shot = tmp_path / "dashboard_failure.png"
    expected_start, expected_new = _expected_leads(PARAMS["target"]), _expected_leads(460)
    assert expected_start != expected_new
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        try:
            page.goto(server, timeout=120_000)
            page.wait_for_selector(".funnel-target input", timeout=120_000)
            value = page.locator(".funnel-leads-needed .kpi-value")
            value.wait_for(timeout=60_000)
            page.wait_for_function("e => e.textContent.trim() !== ''", arg=value.element_handle(), timeout=30_000)
            assert int(value.get_attribute("data-value")) == expected_start
            assert value.inner_text().replace(",", "") == str(expected_start)

            target = page.locator(".funnel-target input")
            target.fill("460")
            target.press("Enter")
            page.wait_for_function(f"() => document.querySelector('.funnel-leads-needed .kpi-value')"
                                   f"?.getAttribute('data-value') === '{expected_new}'", timeout=30_000)
            assert value.inner_text().replace(",", "") == str(expected_new)
            assert "460 wins" in page.locator(".funnel-leads-needed").inner_text()

            # Tab commits too: back to the starting target
            target.fill(str(PARAMS["target"]))
            target.press("Tab")
            page.wait_for_function(f"() => document.querySelector('.funnel-leads-needed .kpi-value')"
                                   f"?.getAttribute('data-value') === '{expected_start}'", timeout=30_000)

            body = page.inner_text("body")
            assert "Error displaying widget" not in body
            assert "Traceback" not in body
            assert page.locator(".funnel-fan svg").count() == 1 and page.locator(".funnel-curve svg").count() == 1
        except Exception:
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failure: {shot}")
            raise
        finally:
            browser.close()


def test_shutil_which_voila_module_available():
    """Voila is started with this interpreter (``sys.executable -m voila``)."""
    assert shutil.which(sys.executable)
    r = subprocess.run([sys.executable, "-m", "voila", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
