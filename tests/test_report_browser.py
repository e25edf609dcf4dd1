"""The monthly report's HTML in a real browser, offline: the pictures draw, at laptop width.

``funnel report`` writes the demo report (quick conjugate model); Chromium
(/usr/bin/chromium, not Playwright's download) opens the file at 1366 px with every
request other than the file itself aborted, so plotly.js must be inside the page. The
test fails on console errors that are not about the missing network, checks that the
Sankey, the funnel chart and the cohort heatmap are drawn with a nonzero size, and saves
screenshots (the whole page and each chart) to ``$FUNNEL_SCREENSHOTS`` or the test's
temporary folder.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, OFFLINE

ROOT = Path(__file__).resolve().parents[1]
FUNNEL = str(Path(sys.executable).with_name("funnel"))
DATE = "2026-01-31"

pytestmark = [
    pytest.mark.browser, pytest.mark.timeout(600),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing: the browser test drives a "
                       "system Chromium (Playwright's browser download is not used)"),
]

#: What each chart's page element must hold (first trace type -> SVG elements drawn by Plotly).
DRAWN = {"sankey": ".sankey-node", "funnel": ".trace.bars .point", "heatmap": ".hm image, .hm"}


@pytest.fixture(scope="module")
def report_html(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    params = tmp / "quick.yaml"
    params.write_text(yaml.safe_dump({"extends": str(ROOT / "parameters" / "default.yaml"), "model": "conjugate"}))
    r = subprocess.run([FUNNEL, "report", str(params), "--output-dir", str(tmp / "out"), "--date", DATE], cwd=ROOT,
                       capture_output=True, text=True, timeout=500)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "out" / "monthly_report-quick" / DATE / "monthly_report.html"


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = Path(os.environ.get("FUNNEL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _charts(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map((el, i) => {
        const r = el.getBoundingClientRect();
        return {i, type: (el.data && el.data[0]) ? el.data[0].type : null, width: r.width, height: r.height,
                title: (el.layout && el.layout.title && el.layout.title.text) || ''};
    })""")


def test_report_pictures_in_offline_chromium(report_html, shots):
    from playwright.sync_api import sync_playwright
    html = report_html.read_text(encoding="utf-8")
    assert html.count("window.PlotlyConfig") == 1, "plotly.js must be embedded exactly once"
    assert 'src="http' not in html
    errors: list[str] = []
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith("file:"):
            return r.continue_()
        blocked.append(r.request.url)
        return r.abort("internetdisconnected")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(report_html.as_uri(), timeout=120_000)
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            charts = _charts(page)
            kinds = {c["type"] for c in charts}
            assert {"sankey", "funnel", "heatmap"} <= kinds, charts
            for c in charts:
                assert c["width"] > 300 and c["height"] > 200, c
                assert c["width"] <= 1366, c
            for kind, selector in DRAWN.items():
                i = next(c["i"] for c in charts if c["type"] == kind)
                el = page.locator(".js-plotly-plot").nth(i)
                assert el.locator(selector).count() > 0, f"{kind}: nothing drawn"
                el.scroll_into_view_if_needed()
                el.screenshot(path=str(shots / f"report_{kind}.png"))
            for name, words in (("time_to_convert", "before leaving"), ("lead_to_win", "new lead to win")):
                i = next(c["i"] for c in charts if words in c["title"])
                page.locator(".js-plotly-plot").nth(i).screenshot(path=str(shots / f"report_{name}.png"))
            page.screenshot(path=str(shots / "report_full.png"), full_page=True)
            body = page.inner_text("body")
            assert "Traceback" not in body and "Stage flows over the last 12 months" in body
        except Exception:
            page.screenshot(path=str(shots / "report_failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    print(f"screenshots: {sorted(str(p) for p in shots.glob('report_*.png'))}")
    ours = [e for e in errors if not any(o in e for o in OFFLINE)]
    assert not ours, ours
