"""Tests of the rolling-origin backtest, its baselines and scores.

Calibration design: coverage is counted over every (cut-off, month) pair of 24 monthly
cut-offs x horizon 3 on the 36-month demo (72 pairs, binomial s.e. of an 80% coverage
~4.7 points), so a calibrated model lands inside [70%, 90%] with a margin while intervals
from a single simulated future (a clearly broken model) cover far less. Across demo seeds
42, 1, 2, 3, 4 the quick model's 80% coverage was 0.78, 0.81, 0.74, 0.75, 0.79.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from funnel_models.data import derive
from funnel_models.evaluation.backtest import BacktestResult, backtest, backtest_cutoffs, baseline_forecasts
from funnel_models.evaluation.metrics import crps_samples, mape, score_frame
from funnel_models.errors import FunnelDataError, ModelConfigError
from funnel_models.data.spec import FunnelSpec
from funnel_models.workflow import OLIST_DIR, load_data


@pytest.fixture(scope="module")
def demo():
    return load_data("demo")


@pytest.fixture(scope="module")
def quick_run(demo):
    return backtest(demo, horizon=3, n_windows=24, quick=True, progress=False, seed=0)


# ---------------------------------------------------------------------- metrics
def test_crps_matches_closed_form_and_point_case():
    # uniform draws on a fine grid over [0, 1]: CRPS(U(0,1), y) = y^2 - y + 1/3 for y in [0, 1]
    x = np.linspace(0, 1, 20001)
    for y in (0.0, 0.3, 0.5, 1.0):
        assert crps_samples(x, y) == pytest.approx(y * y - y + 1 / 3, abs=1e-4)
    assert crps_samples(np.array([4.0]), 1.0) == 3.0
    # a wider forecast centred on the truth scores worse than a sharp one
    rng = np.random.default_rng(0)
    assert crps_samples(rng.normal(0, 1, 4000), 0.0) < crps_samples(rng.normal(0, 3, 4000), 0.0)


def test_mape_skips_zero_actuals_and_score_frame():
    assert mape(np.array([0.0, 10.0, 20.0]), np.array([5.0, 11.0, 10.0])) == pytest.approx(30.0)
    assert np.isnan(mape(np.zeros(3), np.ones(3)))
    f = pd.DataFrame({"actual": [10.0, 20.0, 30.0], "bayes": [12.0, 20.0, 27.0], "naive": [10.0, 10.0, 10.0],
                      "bayes-lo-50": [11, 19, 28], "bayes-hi-50": [13, 21, 29],
                      "bayes-lo-80": [11, 18, 26], "bayes-hi-80": [14, 22, 31],
                      "bayes-lo-95": [8, 15, 20], "bayes-hi-95": [15, 25, 35]})
    s = score_frame(f, ["bayes", "naive"], crps=np.array([1.0, 2.0, 3.0]))
    assert s.loc["bayes", "MAE"] == pytest.approx(5 / 3)
    assert s.loc["naive", "MAE"] == pytest.approx(10.0)
    assert s.loc["bayes", "coverage_50"] == pytest.approx(1 / 3)   # only 20 in [19, 21]
    assert s.loc["bayes", "coverage_80"] == pytest.approx(2 / 3)
    assert s.loc["bayes", "width_95"] == pytest.approx((7 + 10 + 15) / 3)
    assert s.loc["bayes", "CRPS"] == pytest.approx(2.0)
    assert s.loc["naive", "CRPS"] == s.loc["naive", "MAE"] and np.isnan(s.loc["naive", "coverage_80"])


# ---------------------------------------------------------------------- cut-offs and baselines
def test_cutoffs_are_month_ends_leaving_horizon_months():
    cuts = backtest_cutoffs(pd.Timestamp("2023-01-01"), pd.Timestamp("2025-12-31"), horizon=3, n_windows=4, step=2)
    assert [c.strftime("%Y-%m-%d") for c in cuts] == ["2025-03-31", "2025-05-31", "2025-07-31", "2025-09-30"]
    # a partial last month does not count as observed
    cuts = backtest_cutoffs(pd.Timestamp("2023-01-01"), pd.Timestamp("2025-12-14"), horizon=1, n_windows=1)
    assert cuts == [pd.Timestamp("2025-10-31")]
    with pytest.raises(FunnelDataError, match="training months"):
        backtest_cutoffs(pd.Timestamp("2025-01-01"), pd.Timestamp("2025-12-31"), horizon=3, n_windows=6)
    with pytest.raises(ModelConfigError, match="horizon"):
        backtest_cutoffs(pd.Timestamp("2023-01-01"), pd.Timestamp("2025-12-31"), horizon=0, n_windows=2)


def _toy():
    """Leads win exactly 2 months after entry (1 in 2) or are lost after 1 month."""
    spec = FunnelSpec.from_dict({"stages": ["A", "B"], "won": ["W"], "lost": ["L"]})
    rows = []
    months = pd.date_range("2024-01-01", periods=12, freq="MS")
    for mi, m in enumerate(months):
        for j in range(10 + mi):                      # growing volume: 10, 11, ...
            lid = f"{mi}-{j}"
            rows.append((lid, "A", m + pd.Timedelta(days=2)))
            if j % 2 == 0:
                rows.append((lid, "B", m + pd.DateOffset(months=1) + pd.Timedelta(days=3)))
                rows.append((lid, "W", m + pd.DateOffset(months=2) + pd.Timedelta(days=4)))
            else:
                rows.append((lid, "L", m + pd.DateOffset(months=1) + pd.Timedelta(days=5)))
    h = pd.DataFrame(rows, columns=["lead_id", "stage", "entered_at"])
    return h, spec


def test_baselines_follow_their_documented_formulas():
    h, spec = _toy()
    cut = pd.Timestamp("2024-08-31")
    train = h[h["entered_at"] < cut + pd.Timedelta(days=1)]
    snaps = derive.snapshots_from_history(train, spec, cutoff=cut)
    leads = pd.Series({m: float(10 + i) for i, m in enumerate(pd.date_range("2024-01-01", periods=12, freq="MS"))})
    entries = pd.DataFrame({"WON": {m: float(np.ceil((10 + i - 2) / 2)) if i >= 2 else 0.0
                                    for i, m in enumerate(leads.index)}})
    pipe = derive.open_pipeline(train, spec, cutoff=cut)
    out = baseline_forecasts(snaps, spec, cut, 2, leads, entries, pipe)
    # lag = 2 months, rate = wins Jun-Aug / leads Apr-Jun; Sep and Oct get rate x leads of Jul and Aug
    rate3 = (entries["WON"].iloc[5:8].sum()) / leads.iloc[3:6].sum()
    np.testing.assert_allclose(out["trailing3"]["WON"], rate3 * leads.iloc[[6, 7]].to_numpy())
    rate1 = entries["WON"].iloc[7] / leads.iloc[5]
    np.testing.assert_allclose(out["last_month"]["WON"], rate1 * leads.iloc[[6, 7]].to_numpy())
    # weighted pipeline: every lead was at A, only winners at B (p_B = 1); closed leads are
    # cohorts Jan-Jun (all) plus July's losers (its winners are still open in B): censoring
    n = [10 + i for i in range(7)]
    won = sum(int(np.ceil(k / 2)) for k in n[:6])
    closed = sum(n[:6]) + n[6] // 2
    assert out_lead_rate(snaps, spec) == pytest.approx(won / closed)
    assert out_p("A", snaps, spec) == pytest.approx(won / closed) and out_p("B", snaps, spec) == 1.0
    n_a, n_b = (pipe["stage"] == "A").sum(), (pipe["stage"] == "B").sum()
    assert (n_a, n_b) == (17, int(np.ceil(16 / 2)))
    exp_pipe = n_a * won / closed + n_b * 1.0
    np.testing.assert_allclose(out["weighted_pipeline"]["WON"],
                               exp_pipe / 2 + leads.iloc[[8, 9]].to_numpy() * won / closed)


def out_p(stage, snaps, spec):
    from funnel_models.evaluation.backtest import _stage_win_probs
    return _stage_win_probs(snaps, spec)[0][stage]


def out_lead_rate(snaps, spec):
    from funnel_models.evaluation.backtest import _stage_win_probs
    return _stage_win_probs(snaps, spec)[1]


# ---------------------------------------------------------------------- the backtest
def test_frame_layout_and_actuals(demo, quick_run):
    r = quick_run
    f = r.frame
    want = ["cutoff", "month", "h", "stage", "actual", "bayes", "trailing3", "last_month", "weighted_pipeline",
            "bayes-lo-50", "bayes-hi-50", "bayes-lo-80", "bayes-hi-80", "bayes-lo-95", "bayes-hi-95"]
    assert all(c in f.columns for c in want)
    assert len(f) == 24 * 3 and set(f["stage"]) == {"WON"} and f["cutoff"].nunique() == 24
    assert (f["cutoff"] + pd.Timedelta(days=1)).dt.day.eq(1).all()        # month ends
    assert (f["month"] > f["cutoff"]).all()
    assert (f["bayes-lo-95"] <= f["bayes-lo-80"]).all() and (f["bayes-lo-80"] <= f["bayes-lo-50"]).all()
    assert (f["bayes-hi-50"] <= f["bayes-hi-80"]).all() and (f["bayes-hi-80"] <= f["bayes-hi-95"]).all()
    # actual wins per month come from the full history: count leads first WON in that month
    snaps = derive.snapshots_from_history(demo.history, demo.spec, cutoff=demo.cutoff)
    won = snaps[snaps["stage"] == "WON"].groupby("lead_id")["month"].min().value_counts()
    for _, row in f.head(6).iterrows():
        assert row["actual"] == won.get(row["month"], 0)
    # the simulator was fed the realised new leads
    first = snaps.groupby("lead_id")["month"].min().value_counts()
    assert f["new_leads"].tolist()[:3] == [float(first[m]) for m in f["month"].tolist()[:3]]
    # draws are kept per cut-off
    assert set(r.draws) == set(f["cutoff"]) and next(iter(r.draws.values())).shape[1:] == (3, 8)


def test_demo_bayes_is_calibrated_and_beats_every_baseline(quick_run):
    m = quick_run.metrics()
    cov80 = m.loc["bayes", "coverage_80"]
    assert 0.70 <= cov80 <= 0.90, m
    for b in ("trailing3", "last_month", "weighted_pipeline"):
        assert m.loc["bayes", "MAE"] < m.loc[b, "MAE"], m
    assert m.loc["bayes", "CRPS"] < m.loc["bayes", "MAE"]  # a real distribution, not a point
    assert m.loc["bayes", "coverage_50"] < cov80 < m.loc["bayes", "coverage_95"]


def test_single_draw_intervals_fail_the_coverage_check(quick_run):
    """The check must catch a broken model: intervals from one simulated future."""
    r = quick_run
    f = r.frame.copy()
    k = r.states.index("WON")
    one = np.array([r.draws[c][0, h - 1, k] for c, h in zip(f["cutoff"], f["h"])], dtype=float)
    for lv in ("50", "80", "95"):
        f[f"bayes-lo-{lv}"] = one
        f[f"bayes-hi-{lv}"] = one
    broken = BacktestResult(frame=f, draws={c: d[:1] for c, d in r.draws.items()}, states=r.states,
                            windows=r.windows, horizon=r.horizon, models=r.models)
    assert broken.metrics().loc["bayes", "coverage_80"] < 0.3
    # and intervals that are far too wide (x10) cover everything: above the band too
    g = r.frame.copy()
    for lv in ("50", "80", "95"):
        mid = g["bayes"]
        g[f"bayes-lo-{lv}"] = mid - 10 * (mid - g[f"bayes-lo-{lv}"])
        g[f"bayes-hi-{lv}"] = mid + 10 * (g[f"bayes-hi-{lv}"] - mid)
    wide = BacktestResult(frame=g, draws=r.draws, states=r.states, windows=r.windows, horizon=3, models=r.models)
    assert wide.metrics().loc["bayes", "coverage_80"] > 0.9


def test_quick_windows_share_one_structure_signature(quick_run):
    assert quick_run.windows["signature"].nunique() == 1


def test_metrics_by_h_and_plots(quick_run):
    import matplotlib
    matplotlib.use("Agg")
    by = quick_run.metrics(by="h")
    assert set(by.index.get_level_values("h")) == {1, 2, 3}
    assert (by["n"] == 24).all()
    cov = quick_run.coverage()
    assert cov["nominal"].tolist() == [0.5, 0.8, 0.95]
    fig = quick_run.plot_calibration()
    ax = fig.axes[0]
    assert "nominal" in ax.get_xlabel() and "empirical" in ax.get_ylabel()
    assert any("Bayesian" in t.get_text() for t in ax.get_legend().get_texts())
    fig2 = quick_run.plot_forecasts(h=2)
    labels = [t.get_text() for t in fig2.axes[0].get_legend().get_texts()]
    assert {"actual", "bayes (mean)", "trailing3", "weighted_pipeline"} <= set(labels)
    with pytest.raises(ValueError):
        quick_run.plot_forecasts(h=9)


def test_stage_entries_and_segments_and_errors(demo, tmp_path):
    r = backtest(demo, horizon=2, n_windows=2, quick=True, progress=False, stages=["DEMO"],
                 model_config={"factors": ["region"]}, baselines=("trailing3",))
    assert set(r.frame["stage"]) == {"WON", "DEMO"} and r.models == ("bayes", "trailing3")
    d = r.rows("DEMO")
    assert d["actual"].gt(0).all() and d["trailing3"].notna().all()
    m = r.metrics("DEMO")
    assert m.loc["bayes", "n"] == 4
    out = r.to_csv(tmp_path / "cv.csv")
    assert len(pd.read_csv(out)) == len(r.frame)
    with pytest.raises(ModelConfigError, match="unknown baseline"):
        backtest(demo, n_windows=1, quick=True, progress=False, baselines=("prophet",))
    with pytest.raises(ModelConfigError, match="quick=True"):
        backtest(demo, n_windows=1, quick=True, progress=False, model_config={"time_varying": True})
    with pytest.raises(FunnelDataError, match="spec"):
        backtest(demo.history, n_windows=1, quick=True, progress=False)


def test_mcmc_path_reuses_the_compiled_model(monkeypatch, tmp_path):
    from funnel_models.models import markov as fm
    monkeypatch.setattr(fm, "_COMPILED", {})   # force one real compile in this test
    d = load_data("demo", demo_months=18)
    r = backtest(d, horizon=2, n_windows=2, quick=False, progress=False, cache_dir=tmp_path,
                 sampler_config={"draws": 200, "tune": 200, "chains": 2})
    w = r.windows
    assert w["compiled_new"].tolist() == [True, False]
    assert w["signature"].nunique() == 1
    # window 2 only swaps data into the compiled model: its "compile" (build + swap) is ~0
    assert w["compile_s"].iloc[1] < 0.1 * w["compile_s"].iloc[0] and w["compile_s"].iloc[1] < 2.0
    assert w["sampling_s"].gt(0).all()
    assert len(fm._COMPILED) == 1
    m = r.metrics()
    assert m.loc["bayes", "n"] == 4 and np.isfinite(m.loc["bayes", "CRPS"])


@pytest.mark.skipif(not OLIST_DIR.exists(), reason="Olist example data not present")
def test_olist_backtest_runs_over_last_six_months():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = load_data("olist")
    r = backtest(d, horizon=3, n_windows=6, quick=True, progress=False)
    f = r.frame
    assert f["cutoff"].nunique() == 6 and f["cutoff"].max() == pd.Timestamp("2018-07-31")
    m = r.metrics()
    assert np.isfinite(m["MAE"]).all() and 0.0 <= m.loc["bayes", "coverage_80"] <= 1.0


def test_cli_backtest_writes_csv_and_rejects_bad_params(tmp_path, capsys):
    from funnel_models.cli import main
    params = tmp_path / "p.yaml"
    params.write_text("source: demo\nhorizon: 2\nstep: 2\nbaselines: [trailing3]\n")
    out = tmp_path / "cv.csv"
    assert main(["backtest", str(params), "--windows", "2", "--quick", "--output", str(out), "--no-progress"]) == 0
    cv = pd.read_csv(out)
    assert len(cv) == 4 and "bayes-hi-95" in cv.columns and "trailing3" in cv.columns
    assert pd.to_datetime(cv["cutoff"]).nunique() == 2
    assert "realised new leads" in capsys.readouterr().out
    params.write_text("horizon: 2\nwindows: 3\n")
    assert main(["backtest", str(params), "--quick"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
