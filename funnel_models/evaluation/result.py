"""The result of a rolling-origin backtest: forecasts, actuals, scores and plots.

Examples
--------
>>> from funnel_models.workflow import load_data
>>> from funnel_models.evaluation.backtest import backtest
>>> res = backtest(load_data("demo", demo_months=18), horizon=2, n_windows=2, model="conjugate",
...                modes=("conditional",), progress=False)
>>> list(res.frame.columns[:6])
['cutoff', 'month', 'h', 'stage', 'mode', 'actual']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.spec import WON
from ..errors import FunnelDataError
from .metrics import LEVELS, coverage_range, crps_many, interval_columns, score_frame

__all__ = ["BacktestResult"]


@dataclass
class BacktestResult:
    """Forecasts and actuals of a rolling-origin backtest.

    Attributes
    ----------
    frame : DataFrame
        One row per cut-off, forecast month and stage: ``cutoff`` (last day of the
        training data), ``month`` (first day of the forecast month), ``h`` (months ahead,
        1..horizon), ``stage`` (``"WON"`` for wins, else the stage whose entries are
        counted), ``actual``, one point-forecast column per model (``bayes`` is the mean of
        the forecast draws) and ``bayes-lo-50 ... bayes-hi-95`` (equal-tailed central
        intervals of the draws), plus ``new_leads``: the realised leads conditioned on
        (conditional mode) or the inflow model's mean forecast the Bayesian forecast drew
        from (unconditional mode; the baselines assume the trailing 3 months' mean).
    draws : dict
        ``(cutoff, mode) -> ndarray (sims, horizon, len(states))``: simulated entries per state of
        the Bayesian forecast (``states`` order), kept for CRPS and plots.
    states : tuple of str
    windows : DataFrame
        Per cut-off: training leads, open pipeline, fit / compile / sampling / forecast
        seconds, graphs sampled and how many of them reused a compiled graph, whether the
        fit came from the fit cache, the model and its sampler checks.
    horizon : int
    models : tuple of str
        Point-forecast columns: ``bayes`` then the baselines.
    config : dict
        The arguments of the run.
    """

    frame: pd.DataFrame
    draws: dict[pd.Timestamp, np.ndarray]
    states: tuple[str, ...]
    windows: pd.DataFrame
    horizon: int
    models: tuple[str, ...]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes scored, in run order."""
        return tuple(pd.unique(self.frame["mode"]))

    def rows(self, stage: str = WON, mode: str | None = None) -> pd.DataFrame:
        """Rows of one stage (``"WON"`` by default) and mode (default: the first mode run)."""
        mode = mode or self.modes[0]
        out = self.frame[(self.frame["stage"] == stage) & (self.frame["mode"] == mode)]
        if out.empty:
            raise FunnelDataError(f"no backtest rows for stage {stage!r} in mode {mode!r}; stages: "
                                  f"{sorted(self.frame['stage'].unique())}, modes: {list(self.modes)}")
        return out

    def crps(self, stage: str = WON, mode: str | None = None) -> np.ndarray:
        """CRPS of the Bayesian forecast draws for every row of :meth:`rows` (same order)."""
        mode = mode or self.modes[0]
        rows = self.rows(stage, mode)
        si = self.states.index(stage)
        out = np.empty(len(rows))
        for i, (c, h, a) in enumerate(zip(rows["cutoff"], rows["h"], rows["actual"])):
            out[i] = crps_many(self.draws[(pd.Timestamp(c), mode)][:, int(h) - 1, si][:, None], np.array([a]))[0]
        return out

    def metrics(self, stage: str = WON, by: str | None = None, mode: str | None = None) -> pd.DataFrame:
        """Scores per model: MAE, MAPE, bias, CRPS, and coverage / width of the Bayes intervals.

        Parameters
        ----------
        stage : str
            ``"WON"`` (wins per month) or an open stage (its monthly entries).
        by : {None, "h", "cutoff"}
            Also split the scores by months ahead or by cut-off.
        mode : {"conditional", "unconditional"}, optional
            Which forecasts (default: the first mode run).

        Returns
        -------
        DataFrame
            Index ``model`` (and ``by``); columns ``n, MAE, MAPE (%), bias, CRPS,
            coverage_50, width_50, coverage_80, width_80, coverage_95, width_95``.
            Baselines are point forecasts: their CRPS equals their MAE and they have no
            intervals (NaN). MAPE leaves out months with zero actuals.
        """
        rows = self.rows(stage, mode)
        crps = self.crps(stage, mode)
        models = [m for m in self.models if rows[m].notna().any()]
        if by is None:
            return score_frame(rows, models, crps=crps)
        if by not in ("h", "cutoff"):
            raise ValueError(f"by must be None, 'h' or 'cutoff', got {by!r}")
        parts = []
        for key, idx in rows.groupby(by).indices.items():
            s = score_frame(rows.iloc[idx], models, crps=crps[idx])
            s.insert(0, by, key)
            parts.append(s)
        return pd.concat(parts).reset_index().set_index(["model", by]).sort_index()

    def coverage(self, stage: str = WON, mode: str | None = None, prob: float = 0.9) -> pd.DataFrame:
        """Nominal vs empirical coverage of the Bayes intervals, and what an honest interval would give.

        Returns
        -------
        DataFrame
            One row per level: ``nominal``, ``empirical``, ``n`` pairs, ``months`` (distinct
            forecast months), ``se`` (binomial standard error over independent pairs), and
            the central ``prob`` range of the empirical coverage of an interval that is
            right: ``pairs_lo``/``pairs_hi`` if the pairs were independent,
            ``months_lo``/``months_hi`` if the pairs of one forecast month hit or miss
            together (:func:`~funnel_models.evaluation.metrics.coverage_range`). Forecasts
            of one month from successive cut-offs share its surprises, so the truth lies
            between the two; a coverage inside the months' range is no evidence against
            the intervals.
        """
        rows = self.rows(stage, mode)
        a = rows["actual"].to_numpy(float)
        per_month = rows.groupby("month").size().to_numpy()
        out = []
        for lv in LEVELS:
            lo, hi = interval_columns("bayes", lv)
            inside = (a >= rows[lo].to_numpy(float)) & (a <= rows[hi].to_numpy(float))
            n = int(inside.size)
            p_lo, p_hi = coverage_range([1] * n, lv, prob)
            m_lo, m_hi = coverage_range(per_month, lv, prob)
            out.append({"nominal": lv, "empirical": float(inside.mean()) if n else np.nan, "n": n,
                        "months": int(per_month.size), "se": float(np.sqrt(lv * (1 - lv) / n)) if n else np.nan,
                        "pairs_lo": p_lo, "pairs_hi": p_hi, "months_lo": m_lo, "months_hi": m_hi})
        return pd.DataFrame(out)

    def coverage_sentence(self, level: float = 0.8, stage: str = WON, mode: str | None = None) -> str:
        """One line: how often the ``level`` intervals held the actuals, against the range an honest one gives."""
        cov = self.coverage(stage, mode)
        r = cov[np.isclose(cov["nominal"], level)].iloc[0]
        inside = int(round(r["empirical"] * r["n"]))
        verdict = ("inside both ranges" if r["pairs_lo"] <= r["empirical"] <= r["pairs_hi"] else
                   "inside the months' range: no evidence against the intervals at this size"
                   if r["months_lo"] <= r["empirical"] <= r["months_hi"] else
                   "outside both ranges: the intervals are too " +
                   ("wide" if r["empirical"] > r["months_hi"] else "narrow"))
        return (f"{level:.0%} intervals held {inside} of {int(r['n'])} pairs ({r['empirical']:.2f}) over "
                f"{int(r['months'])} forecast months; intervals that are right give {r['pairs_lo']:.2f}-"
                f"{r['pairs_hi']:.2f} (9 times in 10) if the pairs were independent, {r['months_lo']:.2f}-"
                f"{r['months_hi']:.2f} if a month's pairs hit or miss together: {verdict}")

    def plot_calibration(self, stage: str = WON, ax: Any = None, mode: str | None = None) -> Any:
        """Nominal vs empirical coverage of the Bayesian intervals, with the ranges right intervals give.

        The shaded bands are :meth:`coverage`'s 90% ranges: the dark one if the pairs were
        independent, the light one if the pairs of one forecast month hit or miss together.
        """
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        cov = self.coverage(stage, mode)
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        ax.fill_between(cov["nominal"], cov["months_lo"], cov["months_hi"], color="grey", alpha=0.15,
                        label=f"right intervals, 9 in 10 ({int(cov['months'].iloc[0])} months alike)")
        ax.fill_between(cov["nominal"], cov["pairs_lo"], cov["pairs_hi"], color="grey", alpha=0.3,
                        label="right intervals, 9 in 10 (independent pairs)")
        ax.plot(cov["nominal"], cov["empirical"], "o-", color="C0", label="Bayesian model")
        for _, r in cov.iterrows():
            ax.annotate(f"{r['empirical']:.0%}", (r["nominal"], r["empirical"]), textcoords="offset points",
                        xytext=(6, -10))
        what = "wins per month" if stage == WON else f"entries into {stage} per month"
        ax.set(xlim=(0.4, 1.0), ylim=(0.0, 1.02), xlabel="nominal coverage of the central interval",
               ylabel="empirical coverage (share of actuals inside)",
               title=f"Calibration: {what}\n({int(cov['n'].iloc[0])} cut-off x month pairs)")
        ax.legend(loc="lower right", fontsize=8)
        return ax.figure

    def plot_forecasts(self, stage: str = WON, h: int = 1, ax: Any = None, mode: str | None = None) -> Any:
        """Actuals vs the ``h``-months-ahead forecasts of every model, with Bayes intervals."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(9, 4))
        rows = self.rows(stage, mode)
        rows = rows[rows["h"] == h].sort_values("month")
        if rows.empty:
            raise ValueError(f"h must be between 1 and {self.horizon}, got {h}")
        x = rows["month"]
        for lv, alpha in zip(LEVELS[::-1], (0.15, 0.25, 0.35)):
            lo, hi = interval_columns("bayes", lv)
            ax.fill_between(x, rows[lo], rows[hi], color="C0", alpha=alpha, lw=0, label=f"bayes {lv:.0%}")
        ax.plot(x, rows["bayes"], "o-", color="C0", label="bayes (mean)")
        top = float(np.nanmax(np.r_[rows["actual"].to_numpy(float), rows[interval_columns("bayes", max(LEVELS))[1]]
                                    .to_numpy(float), 1.0]))
        ceiling = 1.5 * top                     # a baseline far off does not squash the others
        for i, m in enumerate(self.models[1:], start=1):
            if rows[m].notna().any():
                peak = float(rows[m].max())
                off = peak > ceiling
                ax.plot(x, rows[m].clip(upper=0.97 * ceiling), "^--" if off else "s--", color=f"C{i}", ms=5, lw=1,
                        label=f"{m} (off scale, up to {peak:,.0f})" if off else m)
        ax.plot(x, rows["actual"], "k*-", ms=8, lw=1.5, label="actual")
        ax.set_ylim(0, ceiling)
        from matplotlib.dates import DateFormatter, MonthLocator
        ax.xaxis.set_major_locator(MonthLocator())
        ax.xaxis.set_major_formatter(DateFormatter("%Y-%m"))
        what = "wins" if stage == WON else f"entries into {stage}"
        ax.set(xlabel="forecast month", ylabel=f"{what} per month",
               title=f"{h}-month-ahead forecasts of {what} (rolling origin)")
        ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
        return ax.figure

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`frame` to CSV; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frame.to_csv(path, index=False)
        return path
