"""Latency of one control change in the what-if dashboard: Plotly charts against the SVG charts.

Two dashboards are built on the same data, model and settings (the demo, ``model:
conjugate``, 1000 draws, a 6-month window, segments region and channel): one draws its
two live charts with Plotly ``FigureWidget`` (the package's), the other with the first
release's hand-written SVG (``benchmarks/svg_charts.py``, the named baseline). Each
control is then set about ``--n`` times on both, alternating, and the wall time of the
handler the change triggers is recorded (question -> simulator calls -> every visible
output, charts included; the "Plan" tab is open, as at start).

COLD: every change needs fresh simulator results: target, confidence and planned leads
take values never seen before (only the calls that depend on them rerun); for the window,
the stage multipliers and the segment, every cached answer (``engine.ANSWER_CACHES``) is
emptied before each change (the segment's inputs, posterior draws and pipeline counts, stay
cached). WARM: values cycle through a few settings and caches are kept (a user going back
and forth). The report gives p50 and p95 per control and over all changes, the ratio of
the p95s (Plotly / SVG) and the load average at the start and the end of the run.

Run:  python benchmarks/bench_dashboard.py [--n 40]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


def controls(dash):
    d, st = dash.defaults, dash.engine.stages[3]
    out = {
        "target": (dash.target, [d["target"] * f for f in (0.9, 1.0, 1.1, 1.2, 0.95)]),
        "confidence": (dash.confidence, [0.7, 0.8, 0.9, 0.95, 0.85]),
        "window": (dash.window, [d["window"] - 2, d["window"], d["window"] + 2, d["window"] - 1]),
        "leads": (dash.leads, [int(d["leads"] * f) for f in (0.8, 1.0, 1.2, 1.5, 0.9)]),
        f"conversion[{st}]": (dash.conversion[st], [0.8, 1.0, 1.2, 1.1, 0.9]),
        f"stall[{st}]": (dash.stall[st], [0.5, 1.0, 1.5, 0.75]),
    }
    f = next(iter(dash.segment_controls))
    out[f"segment[{f}]"] = (dash.segment_controls[f], ["all", *dash.engine.segments[f]])
    return out


def fresh(dash):
    d = dash.defaults
    return {"target": lambda i: round(d["target"] * (0.8 + 0.008 * i), 1),
            "confidence": lambda i: round(0.5 + 0.0098 * i, 4),
            "leads": lambda i: int(d["leads"] * 0.7) + 3 * i}


def clear_answers(dash) -> None:
    """Forget every cached answer (the per-segment inputs stay)."""
    from funnel_models.dashboard.engine import ANSWER_CACHES
    for k in [k for k in dash.engine._cache if k[0] in ANSWER_CACHES]:
        del dash.engine._cache[k]


def run(dashes: dict, n: int, cold: bool) -> dict[str, dict[str, list[float]]]:
    """Wall time of each control change, per chart path, alternating paths change by change."""
    out = {name: {} for name in dashes}
    ctl = {name: controls(d) for name, d in dashes.items()}
    new = {name: fresh(d) for name, d in dashes.items()}
    for control in next(iter(ctl.values())):
        for name in dashes:
            out[name][control] = []
        cycles = {name: itertools.cycle(ctl[name][control][1]) for name in dashes}
        i = 0
        while len(out[next(iter(dashes))][control]) < n:
            i += 1
            for name, dash in dashes.items():
                w, _values = ctl[name][control]
                v = new[name][control](i) if cold and control in new[name] else next(cycles[name])
                if w.value == v:
                    continue
                if cold and control not in new[name]:
                    clear_answers(dash)
                t = time.perf_counter()
                w.value = v                     # the observer runs the handler synchronously
                out[name][control].append(time.perf_counter() - t)
                assert dash.state.error is None, dash.state.error
        for dash in dashes.values():
            dash.reset_controls()
    return out


def chart_only(dashes: dict, reps: int = 60) -> dict[str, list[float]]:
    """Time of drawing two different answers in turn, per chart path (rendering alone):
    a window of 6 and of 8 months, so every trace and the month axis change each time."""
    out = {}
    for name, dash in dashes.items():
        answers = []
        for w in (6, 8):
            dash.window.value = w
            answers.append(dash.state)
        dash.reset_controls()
        ts = []
        for i in range(reps):
            t = time.perf_counter()
            dash.charts.show(answers[i % 2])
            ts.append(time.perf_counter() - t)
        out[name] = ts
    return out


def load() -> str:
    return f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min) on {os.cpu_count()} cores"


def report(label: str, res: dict) -> dict[str, tuple[float, float]]:
    """Per control and overall: p50 and p95 of each chart path and the p95 ratio plotly / svg."""
    print(f"\n{label}")
    names = list(res)
    print(f"{'control':<20}" + "".join(f"{n + ' p50':>12}{n + ' p95':>12}" for n in names) + f"{'p95 ratio':>11}")
    for control in res[names[0]]:
        p95 = [pct(res[n][control], 95) for n in names]
        print(f"{control:<20}" + "".join(f"{pct(res[n][control], 50):>12.1f}{p:>12.1f}" for n, p in zip(names, p95))
              + f"{p95[0] / p95[1]:>11.2f}")
    summary = {}
    for n in names:
        allt = [x for ts in res[n].values() for x in ts]
        summary[n] = (pct(allt, 50), pct(allt, 95))
    print(f"{'ALL (' + str(sum(len(v) for v in res[names[0]].values())) + ')':<20}"
          + "".join(f"{summary[n][0]:>12.1f}{summary[n][1]:>12.1f}" for n in names)
          + f"{summary[names[0]][1] / summary[names[1]][1]:>11.2f}")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="changes per control and chart path")
    ap.add_argument("--draws", type=int, default=1000)
    args = ap.parse_args()

    from svg_charts import SvgCharts

    from funnel_models.dashboard import WhatIfDashboard
    from funnel_models.workflow import fit_model, load_data

    print(f"load average at the start: {load()}")
    t0 = time.perf_counter()
    data = load_data("demo")
    model = fit_model(data, model="conjugate", factors=["region", "channel"])
    kw = dict(window=6, draws=args.draws, forecast_draws=300, leverage_draws=200)
    dashes = {"plotly": WhatIfDashboard(model, data, **kw), "svg": WhatIfDashboard(model, data, charts=SvgCharts(), **kw)}
    print(f"startup (demo, conjugate fit, two dashboards): {time.perf_counter() - t0:.1f} s; "
          f"draws={args.draws}, forecast_draws=300, window=6, target={dashes['plotly'].defaults['target']:g}")
    cold = report("COLD: wall time per control change (ms)", run(dashes, args.n, cold=True))
    warm = report("WARM: wall time per control change (ms)", run(dashes, args.n, cold=False))
    draw = chart_only(dashes)
    print(f"\ncharts alone, two answers drawn in turn: plotly p50 {pct(draw['plotly'], 50):.2f} ms, "
          f"p95 {pct(draw['plotly'], 95):.2f} ms; svg p50 {pct(draw['svg'], 50):.2f} ms, "
          f"p95 {pct(draw['svg'], 95):.2f} ms")
    for label, s in (("COLD", cold), ("WARM", warm)):
        print(f"{label} all controls, plotly p95 {s['plotly'][1]:.1f} ms against svg p95 {s['svg'][1]:.1f} ms: "
              f"ratio {s['plotly'][1] / s['svg'][1]:.2f} (p50 ratio {s['plotly'][0] / s['svg'][0]:.2f})")
    print(f"budget p95 < 100 ms per control change (COLD, plotly): "
          f"{'met' if cold['plotly'][1] < 100 else 'NOT met'} ({cold['plotly'][1]:.1f} ms)")
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
