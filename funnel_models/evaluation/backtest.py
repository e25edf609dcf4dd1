"""Rolling-origin backtest of the funnel forecast against simple baselines.

For each cut-off (the last day of a month) the model is fitted on the history known at
that cut-off (rows with ``entered_at`` up to the cut-off day, snapshots derived with that
cut-off), and the next ``horizon`` months of wins (optionally of entries into every stage)
are forecast with :func:`funnel_models.simulate.forecast` from

- the open pipeline at the cut-off (:func:`funnel_models.data.derive.open_pipeline`), and
- the **actual** number of new leads that entered in each forecast month.

Conditioning on the realised lead volume is deliberate: it isolates the conversion model
(how leads move through the funnel) from the lead-volume forecast, which is a separate
question. Every baseline gets the same realised lead counts, so the comparison is fair;
real forecasts that must also predict lead volume will be less accurate than these scores.

Actuals come from the full history: the wins of a month are the leads whose month-end
status first is a won code in that month (``derive.transitions`` ``to_stage == "WON"``),
the entries of a stage the leads arriving there at that month end, exactly what the
simulator counts.

Baselines (all computed from the training data of the window only):

``trailing3``
    ``lag`` = the median number of whole months from a lead's entry month to its win
    month, over the leads won by the cut-off (rounded half up; right-censoring makes it
    short-biased, as in practice). ``rate`` = wins in the last 3 months up to the cut-off
    divided by the new leads ``lag`` months before each of them. Forecast
    ``wins(t) = rate * leads(t - lag)``, with ``leads`` the actual new leads per month
    (training months, or the realised volume for months after the cut-off).
``last_month``
    The same with the last month only.
``weighted_pipeline``
    CRM-style: the win probability of stage ``s`` is the share of won leads among the
    leads that were at ``s`` at some month end and are closed by the cut-off; the lead
    win rate is the share of won leads among all closed leads. Expected wins =
    ``sum_s open(s) * p(s)`` spread evenly over the horizon, plus
    ``new_leads(t) * lead_win_rate`` in each month ``t`` (new leads are counted in the
    month they enter). For stage entries it has no forecast (NaN).

The same lag baselines forecast stage entries (lag = median months from entry to first
month-end at that stage).

Output: :class:`BacktestResult` with a long frame like statsforecast's
``cross_validation`` and the Bayesian forecast draws (for CRPS).

Examples
--------
>>> from funnel_models.workflow import load_data
>>> d = load_data("demo", demo_months=18)
>>> res = backtest(d, horizon=2, n_windows=2, quick=True, progress=False)
>>> list(res.frame.columns[:5])
['cutoff', 'month', 'h', 'stage', 'actual']
>>> res.frame.shape[0]
4
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import derive
from .metrics import LEVELS, crps_many, interval_columns, score_frame
from ..errors import FunnelDataError, ModelConfigError
from ..data.spec import ENTRY, LOST, WON, FunnelSpec

__all__ = ["BacktestResult", "backtest", "backtest_cutoffs", "baseline_forecasts", "BASELINES"]

#: Baselines :func:`backtest` knows, in report order.
BASELINES = ("trailing3", "last_month", "weighted_pipeline")
#: Posterior draws used per window in quick (conjugate) mode.
QUICK_DRAWS = 2000
_QUICK_KEYS = {"factors", "concentration"}


# ---------------------------------------------------------------------- result
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
        intervals of the draws), plus ``new_leads`` (the realised leads conditioned on).
    draws : dict
        ``cutoff -> ndarray (sims, horizon, len(states))``: simulated entries per state of
        the Bayesian forecast (``states`` order), kept for CRPS and plots.
    states : tuple of str
    windows : DataFrame
        Per cut-off: training leads, open pipeline, fit / compile / sampling / forecast
        seconds, the model's graph signature and whether a compiled model was reused.
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

    def rows(self, stage: str = WON) -> pd.DataFrame:
        """Rows of one stage (``"WON"`` by default)."""
        out = self.frame[self.frame["stage"] == stage]
        if out.empty:
            raise FunnelDataError(f"no backtest rows for stage {stage!r}; stages: "
                                  f"{sorted(self.frame['stage'].unique())}")
        return out

    def crps(self, stage: str = WON) -> np.ndarray:
        """CRPS of the Bayesian forecast draws for every row of :meth:`rows` (same order)."""
        rows = self.rows(stage)
        si = self.states.index(stage)
        out = np.empty(len(rows))
        for i, (c, h, a) in enumerate(zip(rows["cutoff"], rows["h"], rows["actual"])):
            out[i] = crps_many(self.draws[pd.Timestamp(c)][:, int(h) - 1, si][:, None], np.array([a]))[0]
        return out

    def metrics(self, stage: str = WON, by: str | None = None) -> pd.DataFrame:
        """Scores per model: MAE, MAPE, bias, CRPS, and coverage / width of the Bayes intervals.

        Parameters
        ----------
        stage : str
            ``"WON"`` (wins per month) or an open stage (its monthly entries).
        by : {None, "h", "cutoff"}
            Also split the scores by months ahead or by cut-off.

        Returns
        -------
        DataFrame
            Index ``model`` (and ``by``); columns ``n, MAE, MAPE (%), bias, CRPS,
            coverage_50, width_50, coverage_80, width_80, coverage_95, width_95``.
            Baselines are point forecasts: their CRPS equals their MAE and they have no
            intervals (NaN). MAPE leaves out months with zero actuals.
        """
        rows = self.rows(stage)
        crps = self.crps(stage)
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

    def coverage(self, stage: str = WON) -> pd.DataFrame:
        """Nominal vs empirical coverage of the Bayes intervals, with a binomial std. error."""
        rows = self.rows(stage)
        a = rows["actual"].to_numpy(float)
        out = []
        for lv in LEVELS:
            lo, hi = interval_columns("bayes", lv)
            inside = (a >= rows[lo].to_numpy(float)) & (a <= rows[hi].to_numpy(float))
            n = int(inside.size)
            out.append({"nominal": lv, "empirical": float(inside.mean()), "n": n,
                        "se": float(np.sqrt(lv * (1 - lv) / n)) if n else np.nan})
        return pd.DataFrame(out)

    def plot_calibration(self, stage: str = WON, ax: Any = None) -> Any:
        """Nominal vs empirical coverage of the Bayesian intervals (with +-2 binomial s.e.)."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(4.5, 4.5))
        cov = self.coverage(stage)
        ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
        ax.fill_between(cov["nominal"], cov["nominal"] - 2 * cov["se"], cov["nominal"] + 2 * cov["se"],
                        color="grey", alpha=0.2, label="±2 s.e. (binomial)")
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

    def plot_forecasts(self, stage: str = WON, h: int = 1, ax: Any = None) -> Any:
        """Actuals vs the ``h``-months-ahead forecasts of every model, with Bayes intervals."""
        import matplotlib.pyplot as plt
        if ax is None:
            _, ax = plt.subplots(figsize=(9, 4))
        rows = self.rows(stage)
        rows = rows[rows["h"] == h].sort_values("month")
        if rows.empty:
            raise ValueError(f"h must be between 1 and {self.horizon}, got {h}")
        x = rows["month"]
        for lv, alpha in zip(LEVELS[::-1], (0.15, 0.25, 0.35)):
            lo, hi = interval_columns("bayes", lv)
            ax.fill_between(x, rows[lo], rows[hi], color="C0", alpha=alpha, lw=0, label=f"bayes {lv:.0%}")
        ax.plot(x, rows["bayes"], "o-", color="C0", label="bayes (mean)")
        for i, m in enumerate(self.models[1:], start=1):
            if rows[m].notna().any():
                ax.plot(x, rows[m], "s--", color=f"C{i}", ms=4, lw=1, label=m)
        ax.plot(x, rows["actual"], "k*-", ms=8, lw=1.5, label="actual")
        what = "wins" if stage == WON else f"entries into {stage}"
        ax.set(xlabel="forecast month", ylabel=f"{what} per month",
               title=f"{h}-month-ahead forecasts of {what} (rolling origin)")
        ax.legend(fontsize=8, ncol=2)
        return ax.figure

    def to_csv(self, path: str | Path) -> Path:
        """Write :attr:`frame` to CSV; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frame.to_csv(path, index=False)
        return path


# ---------------------------------------------------------------------- helpers
def _month_end(month: pd.Timestamp) -> pd.Timestamp:
    return (month + pd.DateOffset(months=1)) - pd.Timedelta(days=1)


def _add_months(month: pd.Timestamp, k: int) -> pd.Timestamp:
    return pd.Timestamp(month) + pd.DateOffset(months=int(k))


def backtest_cutoffs(first_month: pd.Timestamp, data_cutoff: pd.Timestamp, *, horizon: int, n_windows: int,
                     step: int = 1, min_train_months: int = 6) -> list[pd.Timestamp]:
    """Cut-offs (last day of a month) of a rolling-origin backtest, oldest first.

    The last complete month of data is the data cut-off's month if the cut-off is its last
    day, else the month before. The latest cut-off leaves ``horizon`` complete months of
    actuals after it; earlier ones step back ``step`` months. At least
    ``min_train_months`` months of data must precede the first cut-off.
    """
    for name, v in (("horizon", horizon), ("n_windows", n_windows), ("step", step)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ModelConfigError(f"{name} must be a whole number >= 1, got {v!r}")
    dc = pd.Timestamp(data_cutoff)
    last_full = derive.month_start(dc)
    if dc.normalize() < _month_end(last_full):
        last_full = _add_months(last_full, -1)
    last_cut = _add_months(last_full, -horizon)
    months = [_add_months(last_cut, -step * i) for i in range(n_windows)][::-1]
    first = derive.month_start(first_month)
    need = _add_months(first, min_train_months - 1)
    if months[0] < need:
        n_data = (last_full.year - first.year) * 12 + last_full.month - first.month + 1
        raise FunnelDataError(
            f"{n_windows} windows x step {step} with horizon {horizon} need the first cut-off at "
            f"{months[0]:%Y-%m}, but the data ({n_data} complete months from {first:%Y-%m}) leave fewer than "
            f"{min_train_months} training months before it. Use fewer windows, a smaller step or horizon.")
    return [_month_end(m) for m in months]


def _per_month(tr: pd.DataFrame, mask: pd.Series) -> pd.Series:
    sub = tr[mask]
    return sub.groupby(pd.to_datetime(sub["month"]))["n"].sum().astype(float)


def _actuals(history: pd.DataFrame, spec: FunnelSpec, cutoff: pd.Timestamp,
             by: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New leads per month and entries per (month, state) from the full history.

    Returns ``leads`` (index month [+ by], column n) and ``entries`` (index month [+ by],
    columns states), both from :func:`derive.transitions` so they count what the
    simulator counts.
    """
    snaps = derive.snapshots_from_history(history, spec, cutoff=cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = derive.transitions(snaps, spec, by=list(by))
    tr = tr.assign(month=pd.to_datetime(tr["month"]))
    keys = ["month", *by]
    leads = tr[tr["from_stage"] == ENTRY].groupby(keys)["n"].sum().astype(float)
    moved = tr[tr["from_stage"] != tr["to_stage"]]
    entries = moved.pivot_table(index=keys, columns="to_stage", values="n", aggfunc="sum", fill_value=0)
    entries = entries.reindex(columns=list(spec.states), fill_value=0).astype(float)
    return leads.to_frame("n"), entries


def _lag_months(snaps: pd.DataFrame, spec: FunnelSpec, state: str) -> int:
    """Median whole months from entry month to the first month-end at ``state`` (0 if none)."""
    st = snaps["stage"].map(lambda c: spec.canonical(c))
    m = pd.to_datetime(snaps["month"])
    mi = m.dt.year * 12 + m.dt.month
    first = mi.groupby(snaps["lead_id"]).min()
    reach = mi[st == state].groupby(snaps.loc[st == state, "lead_id"]).min()
    if reach.empty:
        return 0
    d = (reach - first.reindex(reach.index)).to_numpy(float)
    return int(np.floor(np.median(d) + 0.5))


def _stage_win_probs(snaps: pd.DataFrame, spec: FunnelSpec) -> tuple[dict[str, float], float]:
    """Weighted-pipeline probabilities from closed leads (see the module docstring)."""
    st = snaps["stage"].map(lambda c: spec.canonical(c))
    s = snaps.assign(state=st)
    final = s.groupby("lead_id", sort=False)["state"].last()
    closed = final[final.isin([WON, LOST])]
    won = closed == WON
    lead_rate = float(won.mean()) if len(closed) else 0.0
    probs = {}
    for code in spec.codes:
        at = s.loc[s["state"] == code, "lead_id"].unique()
        c = won.reindex(at).dropna()
        probs[code] = float(c.mean()) if len(c) else lead_rate
    return probs, lead_rate


def baseline_forecasts(
    train_snaps: pd.DataFrame,
    spec: FunnelSpec,
    cutoff: pd.Timestamp,
    horizon: int,
    leads: pd.Series,
    entries: pd.DataFrame,
    pipeline: pd.DataFrame,
    *,
    names: Sequence[str] = BASELINES,
    stages: Sequence[str] = (WON,),
) -> dict[str, dict[str, np.ndarray]]:
    """Point forecasts of the baselines for one window (see the module docstring).

    Parameters
    ----------
    train_snaps : DataFrame
        Snapshots derived with the window's cut-off.
    spec : FunnelSpec
    cutoff : Timestamp
        Last day of the training data.
    horizon : int
    leads : Series
        Actual new leads per month (index month starts), training months and the
        forecast months (the realised volume conditioned on).
    entries : DataFrame
        Actual entries per month (index) and state (columns); only months up to the
        cut-off are used.
    pipeline : DataFrame
        Open pipeline at the cut-off (``stage`` column).
    names : sequence of str
        Baselines to compute.
    stages : sequence of str
        ``"WON"`` and/or open stages whose entries to forecast.

    Returns
    -------
    dict
        ``name -> {stage -> ndarray (horizon,)}``.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ModelConfigError(f"unknown baseline(s) {unknown}; known baselines: {list(BASELINES)}")
    cm = derive.month_start(cutoff)
    fut = [_add_months(cm, h) for h in range(1, horizon + 1)]

    def lead_at(month: pd.Timestamp) -> float:
        return float(leads.get(month, 0.0))

    out: dict[str, dict[str, np.ndarray]] = {n: {} for n in names}
    for stage in stages:
        lag = None
        for name in names:
            if name == "weighted_pipeline":
                continue
            if lag is None:
                lag = _lag_months(train_snaps, spec, stage)
            k = 3 if name == "trailing3" else 1
            past = [_add_months(cm, -i) for i in range(k)]
            num = sum(float(entries[stage].get(m, 0.0)) if stage in entries else 0.0 for m in past)
            den = sum(lead_at(_add_months(m, -lag)) for m in past)
            rate = num / den if den > 0 else 0.0
            out[name][stage] = np.array([rate * lead_at(_add_months(t, -lag)) for t in fut])
    if "weighted_pipeline" in names:
        probs, lead_rate = _stage_win_probs(train_snaps, spec)
        counts = pipeline["stage"].astype(str).value_counts()
        pipe_wins = sum(float(counts.get(c, 0)) * p for c, p in probs.items())
        for stage in stages:
            if stage == WON:
                out["weighted_pipeline"][stage] = np.array([pipe_wins / horizon + lead_at(t) * lead_rate for t in fut])
            else:
                out["weighted_pipeline"][stage] = np.full(horizon, np.nan)
    return out


# ---------------------------------------------------------------------- the Bayesian fit
def _fit_window(train_snaps: pd.DataFrame, spec: FunnelSpec, *, quick: bool, model_config: Mapping[str, Any],
                sampler_config: Mapping[str, Any], cache_dir: Any, seed: int) -> tuple[Any, dict[str, Any]]:
    """Fit one window; returns (posterior funnel getter, timing info)."""
    info: dict[str, Any] = {}
    t0 = time.perf_counter()
    if quick:
        from ..models import ConjugateFunnel
        bad = set(model_config) - _QUICK_KEYS
        if bad:
            raise ModelConfigError(f"quick=True (conjugate) backtests accept model_config keys "
                                   f"{sorted(_QUICK_KEYS)} only; got {sorted(bad)}. Use quick=False for "
                                   "time variation or change points.")
        model = ConjugateFunnel(spec, factors=model_config.get("factors", ()),
                                concentration=model_config.get("concentration", 1.0)).fit(train_snaps)
        info.update(fit_s=time.perf_counter() - t0, compile_s=0.0, sampling_s=0.0, signature=model.structure.signature(),
                    compiled_new=False)

        def post(segment: Mapping[str, str] | None, s: int = seed) -> Any:
            return model.posterior_funnel(segment, draws=QUICK_DRAWS, seed=s)
        return post, info
    from ..models import FunnelModel
    from ..models import markov as fm
    model = FunnelModel(spec, dict(model_config), dict(sampler_config), cache_dir=cache_dir)
    n_before = len(fm._COMPILED)
    model.fit(train_snaps)
    info.update(fit_s=time.perf_counter() - t0, compile_s=model.timings.get("compile", np.nan),
                sampling_s=model.timings.get("sampling", np.nan), cache_load_s=model.timings.get("cache_load", 0.0),
                signature=model.structure.signature(), compiled_new=len(fm._COMPILED) > n_before)
    info["model"] = model

    def post_mcmc(segment: Mapping[str, str] | None, s: int = seed) -> Any:
        return model.posterior_funnel(segment, seed=s)
    return post_mcmc, info


def _forecast_window(post_for: Any, factors: Sequence[str], pipeline: pd.DataFrame, leads_by: pd.DataFrame,
                     fut: list[pd.Timestamp], horizon: int, cutoff: pd.Timestamp, seed: int) -> np.ndarray:
    """Simulated entries (sims, H, S) from the pipeline and realised leads, summed over segments."""
    from ..simulate import forecast
    if not factors:
        leads = np.array([float(leads_by["n"].get(m, 0.0)) for m in fut])
        fc = forecast(post_for(None), pipeline, leads, horizon, seed=seed, start=cutoff)
        return fc.entries
    # one forecast per segment cell (the cell's pipeline and leads), summed draw by draw
    lb = leads_by["n"].reset_index()
    lb = lb[lb["month"].isin(fut)]
    cells = pd.concat([pipeline[list(factors)], lb[list(factors)]]).astype(str).drop_duplicates()
    total = None
    for i, cell in enumerate(cells.itertuples(index=False)):
        seg = dict(zip(factors, cell))
        pmask = np.logical_and.reduce([pipeline[f].astype(str) == v for f, v in seg.items()])
        lmask = np.logical_and.reduce([lb[f].astype(str) == v for f, v in seg.items()])
        lsub = lb[lmask].groupby("month")["n"].sum()
        leads = np.array([float(lsub.get(m, 0.0)) for m in fut])
        pipe = pipeline[pmask]
        if len(pipe) == 0 and leads.sum() == 0:
            continue
        try:
            post = post_for(seg)
        except ModelConfigError:  # a level unseen in training: the average segment
            post = post_for(None)
        ent = forecast(post, pipe, leads, horizon, seed=[seed, i], start=cutoff).entries
        total = ent if total is None else total + ent
    assert total is not None
    return total


# ---------------------------------------------------------------------- main entry point
def backtest(
    data: Any,
    spec: FunnelSpec | Mapping | str | None = None,
    *,
    horizon: int = 3,
    n_windows: int = 6,
    step: int = 1,
    model_config: Mapping[str, Any] | None = None,
    baselines: Sequence[str] = BASELINES,
    quick: bool = False,
    sampler_config: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: bool = True,
    stages: bool | Sequence[str] = False,
    cache_dir: str | Path | bool | None = None,
    min_train_months: int = 6,
) -> BacktestResult:
    """Rolling-origin backtest of the Bayesian funnel forecast against baselines.

    Parameters
    ----------
    data : LoadedData or DataFrame
        A :class:`funnel_models.workflow.LoadedData`, or canonical stage history (then
        ``spec`` is required).
    spec : FunnelSpec, mapping or path, optional
    horizon : int
        Months forecast after each cut-off.
    n_windows : int
        Number of cut-offs.
    step : int
        Months between cut-offs.
    model_config : mapping, optional
        ``FunnelModel`` model config (``quick=False``), or ``{"factors", "concentration"}``
        for the conjugate model (``quick=True``). With ``factors`` the forecast is made
        per segment cell (its pipeline and realised leads) and summed.
    baselines : sequence of str
        Any of :data:`BASELINES`.
    quick : bool
        Fit the exact conjugate model (milliseconds) instead of MCMC.
    sampler_config : mapping, optional
        ``FunnelModel`` sampler config; ``progress`` defaults to False.
    seed : int
        Seed of the forecast simulations and quick-mode draws.
    progress : bool
        A tqdm progress bar over windows.
    stages : bool or sequence of str
        Also backtest monthly entries into these open stages (``True``: all).
    cache_dir : path or False, optional
        ``FunnelModel`` fit cache (``False`` disables it; a cached fit skips sampling).
    min_train_months : int
        Months of data required before the first cut-off.

    Returns
    -------
    BacktestResult

    Notes
    -----
    Refits reuse the compiled model: without ``time_varying`` the model graph depends on
    the spec, the allowed moves, factor levels and change points, not on the number of
    months, so every window after the first only swaps data into the compiled nutpie
    model (``windows["compiled_new"]`` and ``windows["compile_s"]`` show it). With
    ``time_varying=True`` the month count is part of the graph and each window compiles.
    """
    from ..workflow import LoadedData
    if isinstance(data, LoadedData):
        history, the_spec, data_cutoff = data.history, data.spec, data.cutoff
        if spec is not None:
            the_spec = FunnelSpec.load(spec)
        source = data.source
    elif isinstance(data, pd.DataFrame):
        if spec is None:
            raise FunnelDataError("backtest(history_frame) needs spec=: a FunnelSpec, dict or YAML path")
        the_spec = FunnelSpec.load(spec)
        history = data
        data_cutoff = pd.Timestamp(pd.to_datetime(history["entered_at"]).max()).normalize()
        source = "<DataFrame>"
    else:
        raise FunnelDataError(f"backtest data must be a LoadedData (workflow.load_data) or a stage-history "
                              f"DataFrame, got {type(data).__name__}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ModelConfigError(f"unknown baseline(s) {unknown}; known baselines: {list(BASELINES)}")
    mc = dict(model_config or {})
    sc = dict(sampler_config or {})
    sc.setdefault("progress", False)
    factors = list(mc.get("factors", ()))
    if stages is True:
        stage_list = [WON, *the_spec.codes]
    elif stages is False or stages is None:
        stage_list = [WON]
    else:
        bad = [s for s in stages if s not in the_spec.codes and s != WON]
        if bad:
            raise ModelConfigError(f"stages {bad} are not open stages; stages: {list(the_spec.codes)}")
        stage_list = [WON, *[s for s in stages if s != WON]]
    history = history.copy()
    history["entered_at"] = pd.to_datetime(history["entered_at"])
    first_month = derive.month_start(history["entered_at"].min())
    cutoffs = backtest_cutoffs(first_month, data_cutoff, horizon=horizon, n_windows=n_windows, step=step,
                               min_train_months=min_train_months)
    leads_by, _ = _actuals(history, the_spec, data_cutoff, by=factors)
    leads_all, entries_all = _actuals(history, the_spec, data_cutoff)
    leads_s = leads_all["n"]
    states = tuple(the_spec.states)

    bar = None
    it: Any = cutoffs
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(cutoffs, desc="backtest windows", unit="window")
        it = bar
    frames, draws, wins_info = [], {}, []
    for w, cut in enumerate(it):
        cm = derive.month_start(cut)
        fut = [_add_months(cm, h) for h in range(1, horizon + 1)]
        train = history[history["entered_at"] < cut + pd.Timedelta(days=1)]
        snaps = derive.snapshots_from_history(train, the_spec, cutoff=cut)
        pipeline = derive.open_pipeline(train, the_spec, cutoff=cut)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # backward-move/gap warnings repeat every window
            post_for, info = _fit_window(snaps, the_spec, quick=quick, model_config=mc, sampler_config=sc,
                                         cache_dir=cache_dir, seed=seed + w)
        info.pop("model", None)
        t1 = time.perf_counter()
        ent = _forecast_window(post_for, factors, pipeline, leads_by, fut, horizon, cut, seed + 1000 + w)
        info["forecast_s"] = time.perf_counter() - t1
        draws[cut] = ent
        base = baseline_forecasts(snaps, the_spec, cut, horizon, leads_s, entries_all, pipeline,
                                  names=baselines, stages=stage_list)
        for stage in stage_list:
            si = states.index(stage)
            d = ent[:, :, si].astype(float)
            f = pd.DataFrame({"cutoff": cut, "month": fut, "h": np.arange(1, horizon + 1), "stage": stage,
                              "actual": [float(entries_all[stage].get(m, 0.0)) for m in fut],
                              "bayes": d.mean(0)})
            for b in baselines:
                f[b] = base[b][stage]
            for lv in LEVELS:
                lo, hi = interval_columns("bayes", lv)
                f[lo], f[hi] = np.quantile(d, [(1 - lv) / 2, (1 + lv) / 2], axis=0)
            f["new_leads"] = [float(leads_s.get(m, 0.0)) for m in fut]
            frames.append(f)
        wins_info.append({"cutoff": cut, "train_leads": int(snaps["lead_id"].nunique()),
                          "open_pipeline": int(len(pipeline)), **info})
        if bar is not None:
            bar.set_postfix(fit=f"{info['fit_s']:.1f}s")
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values(["stage", "cutoff", "month"], key=lambda s: s.map(
        {st: i for i, st in enumerate(stage_list)}) if s.name == "stage" else s).reset_index(drop=True)
    windows = pd.DataFrame(wins_info)
    config = {"source": source, "horizon": horizon, "n_windows": n_windows, "step": step, "quick": quick,
              "model_config": mc, "sampler_config": sc, "baselines": list(baselines), "seed": seed,
              "stages": stage_list, "conditioning": "realised new leads per forecast month"}
    return BacktestResult(frame=frame, draws=draws, states=states, windows=windows, horizon=horizon,
                          models=("bayes", *baselines), config=config)
