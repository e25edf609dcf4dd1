"""Rolling-origin backtest of the funnel forecast against simple baselines.

For each cut-off (the last day of a month) the model is fitted on the data known at that
cut-off (rows dated before the next day), and the next ``horizon`` months of wins
(optionally of entries into every stage) are forecast with
:func:`funnel_models.simulate.forecast` from the open pipeline at the cut-off (each lead
with its months in stage) and the new leads of the forecast months, in two modes:

``conditional``
    the realised number of new leads of each forecast month is given. This isolates the
    conversion model (how leads move through the funnel); every baseline gets the same
    realised leads.
``unconditional``
    new leads are forecast too, with the inflow model
    (:class:`funnel_models.models.inflow.InflowModel`) fitted on the same training data;
    the baselines get the trailing 3-month mean of new leads. This is what a real forecast
    faces.

When the data stop recording new leads (:func:`funnel_models.models.inputs.leads_recorded_until`:
the Olist lead list ends five months before its closed deals), the unconditional mode scores
only the forecast months up to the last month with new leads: a forecast of leads the
export no longer records cannot be checked. The result's ``config`` names that month.

Actuals come from the full history: the wins of a month are the leads whose month-end
status first is a won code in that month (``derive.transitions`` ``to_stage == "WON"``),
the entries of a stage the leads arriving there at that month end, exactly what the
simulator counts. Every window records the model's diagnostics; a window that did not
converge is listed in :attr:`BacktestResult.windows` (``ok`` False) and reported, not
silently averaged. Baselines are described in :mod:`funnel_models.evaluation.baselines`.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import derive
from ..data.dates import add_months, month_end, month_start, through_cutoff
from ..data.spec import ENTRY, WON, FunnelSpec
from ..errors import FunnelDataError, ModelConfigError
from ..intervals import central_interval
from ..models.config import SamplerConfig, parse_config
from ..models.inputs import leads_recorded_until
from .baselines import BASELINES, baseline_forecasts
from .metrics import LEVELS, interval_columns
from .result import BacktestResult

__all__ = ["BacktestResult", "backtest", "backtest_cutoffs", "MODES", "BASELINES"]

#: Forecast modes, see the module docstring.
MODES = ("conditional", "unconditional")
#: Posterior draws per window for exact (conjugate) models.
EXACT_DRAWS = 2000


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
    last_full = month_start(dc)
    if dc.normalize() < month_end(last_full):
        last_full = add_months(last_full, -1)
    last_cut = add_months(last_full, -horizon)
    months = [add_months(last_cut, -step * i) for i in range(n_windows)][::-1]
    first = month_start(first_month)
    if months[0] < add_months(first, min_train_months - 1):
        n_data = (last_full.year - first.year) * 12 + last_full.month - first.month + 1
        raise FunnelDataError(
            f"{n_windows} windows x step {step} with horizon {horizon} need the first cut-off at "
            f"{months[0]:%Y-%m}, but the data ({n_data} complete months from {first:%Y-%m}) leave fewer than "
            f"{min_train_months} training months before it. Use fewer windows, a smaller step or horizon, or a "
            f"later data cut-off if the data go on after {dc:%Y-%m-%d} (funnel backtest --cutoff).")
    return [month_end(m) for m in months]


def _actuals(data: Any, by: Sequence[str] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """New leads per month (and cell) and entries per (month, state), from the full data."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tr = derive.transitions(data.snapshots(), data.spec, by=list(by))
    tr = tr.assign(month=pd.to_datetime(tr["month"]))
    keys = ["month", *by]
    leads = tr[tr["from_stage"] == ENTRY].groupby(keys)["n"].sum().astype(float)
    moved = tr[tr["from_stage"] != tr["to_stage"]]
    entries = moved.pivot_table(index=keys, columns="to_stage", values="n", aggfunc="sum", fill_value=0)
    entries = entries.reindex(columns=list(data.spec.states), fill_value=0).astype(float)
    return leads.to_frame("n"), entries


def _window_data(data: Any, cut: pd.Timestamp) -> Any:
    """The data known at cut-off ``cut`` (same source and spec)."""
    from dataclasses import replace
    col = "entered_at" if data.kind == "history" else "month"
    return replace(data, table=through_cutoff(data.table, col, cut).reset_index(drop=True), cutoff=cut)


def _fit_window(train: Any, settings: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Fit one window through the model interface; returns (model, info with diagnostics)."""
    from ..models.base import fit_summary
    from ..workflow import fit_model
    t0 = time.perf_counter()
    model = fit_model(train, **settings)
    diag = model.diagnostics(warn=False)
    timings = model.fit_info()
    info = {"fit_s": time.perf_counter() - t0, "compile_s": timings.get("compile", 0.0),
            "sampling_s": timings.get("sampling", 0.0), "graphs": int(timings.get("graphs", 0)),
            "reused": int(timings.get("reused", 0)), "cached": "cache_load" in timings,
            "model": model.describe(), "ok": diag.ok, "r_hat_max": diag.r_hat_max,
            "ess_bulk_min": diag.ess_bulk_min, "divergences": diag.divergences,
            "notes": "; ".join(diag.notes), "fit": fit_summary(timings)}
    return model, info


def _cells(factors: Sequence[str], *frames: pd.DataFrame) -> list[dict[str, str]]:
    if not factors:
        return [{}]
    both = pd.concat([f[list(factors)] for f in frames if len(f)]).astype(str).drop_duplicates()
    return [dict(zip(factors, row)) for row in both.itertuples(index=False)]


def _select(frame: pd.DataFrame, seg: Mapping[str, str]) -> pd.DataFrame:
    if not seg:
        return frame
    return frame[np.logical_and.reduce([frame[f].astype(str) == v for f, v in seg.items()])]


#: Second seed word of the month shocks every segment cell of a forecast shares (cells' own moves use ``[seed, i]``).
SHARED_SHOCKS = 1 << 30


def _forecast_window(model: Any, factors: Sequence[str], pipeline: pd.DataFrame, leads: Any, fut: list,
                     cut: pd.Timestamp, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated entries (sims, H, S) summed over segment cells, and the new leads per
    month the forecast used (H,): realised, or the mean of the inflow model's draws.

    ``leads`` is a frame of realised new leads (``month`` + factor columns, ``n``) or a
    fitted inflow model (forecast draws per cell).
    """
    from ..simulate import forecast
    H = len(fut)
    realised = isinstance(leads, pd.DataFrame)
    cells = _cells(factors, pipeline, leads[leads["month"].isin(fut)] if realised else pipeline)
    total = None
    used = np.zeros(H)
    for i, seg in enumerate(cells):
        if realised:
            sub = _select(leads, seg).groupby("month")["n"].sum()
            new = np.array([float(sub.get(m, 0.0)) for m in fut])
        else:
            try:
                new = leads.forecast(H, segment=seg or None, draws=1000, seed=seed + i)
            except ModelConfigError:      # a cell without new leads in training
                new = np.zeros(H)
        used += np.asarray(new, float).reshape(-1, H).mean(0)
        pipe = _select(pipeline, seg)
        if len(pipe) == 0 and not np.any(new):
            continue
        try:
            post = model.posterior_funnel(seg or None, seed=seed)
        except ModelConfigError:           # a level unseen in training: the average segment
            post = model.posterior_funnel(None, seed=seed)
        # one month shock for every cell (the model's shocks are not per segment; a seed no cell's
        # moves use), their own moves per cell
        ent = forecast(post, pipe, new, H, seed=[seed, i], start=month_start(cut),
                       shock_seed=[seed, SHARED_SHOCKS]).entries
        total = ent if total is None else total + ent
    if total is None:
        raise FunnelDataError(f"nothing to forecast at cut-off {cut.date()}: no open leads and no new leads")
    return total, used


def _frame_rows(ent: np.ndarray, states: tuple[str, ...], stage_list: Sequence[str], cut: pd.Timestamp,
                fut: list, mode: str, actual: pd.DataFrame, base: Mapping, baselines: Sequence[str],
                new_leads: Sequence[float]) -> list[pd.DataFrame]:
    rows = []
    H = len(fut)
    for stage in stage_list:
        d = ent[:, :, states.index(stage)].astype(float)
        f = pd.DataFrame({"cutoff": cut, "month": fut, "h": np.arange(1, H + 1), "stage": stage, "mode": mode,
                          "actual": [float(actual[stage].get(m, 0.0)) for m in fut], "bayes": d.mean(0)})
        for b in baselines:
            f[b] = base[b][stage]
        for lv in LEVELS:
            lo, hi = interval_columns("bayes", lv)
            f[lo], f[hi] = central_interval(d, lv)
        f["new_leads"] = list(new_leads)
        rows.append(f)
    return rows


def _stage_list(spec: FunnelSpec, stages: bool | Sequence[str]) -> list[str]:
    if stages is True:
        return [WON, *spec.codes]
    if stages is False or stages is None:
        return [WON]
    bad = [s for s in stages if s not in spec.codes and s != WON]
    if bad:
        raise ModelConfigError(f"stages {bad} are not open stages; stages: {list(spec.codes)}")
    return [WON, *[s for s in stages if s != WON]]


def _check_args(data: Any, baselines: Sequence[str], modes: Sequence[str]) -> Any:
    """Refuse bad arguments; return the data with lead-level rows in pandas (a warehouse history
    is fetched: the backtest refits at past cut-offs and counts actuals from them)."""
    from ..workflow import LoadedData
    if not isinstance(data, LoadedData):
        raise FunnelDataError(f"backtest data must be a LoadedData (workflow.load_data), got {type(data).__name__}")
    if not data.has_leads:
        raise FunnelDataError(f"{data.source}: a backtest needs lead-level data (stage history or monthly "
                              "snapshots) to count what each month actually brought")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ModelConfigError(f"unknown baseline(s) {unknown}; known baselines: {list(BASELINES)}")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ModelConfigError(f"unknown backtest mode(s) {bad}; modes: {list(MODES)}")
    return data.lead_level()


def _run_window(data: Any, cut: pd.Timestamp, w: int, ctx: Mapping[str, Any]) -> tuple[list, dict, dict]:
    """Fit, forecast and score one cut-off in every mode."""
    from ..workflow import fit_inflow
    H, factors, seed = ctx["horizon"], ctx["factors"], ctx["seed"]
    fut = [add_months(month_start(cut), h) for h in range(1, H + 1)]
    train = _window_data(data, cut)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # backward-move/gap warnings repeat every window
        snaps, pipeline = train.snapshots(), train.pipeline()
        model, info = _fit_window(train, ctx["settings"])
    leads_all, entries_all = ctx["leads_all"], ctx["entries_all"]
    frames, draws = [], {}
    for mode in ctx["modes"]:
        until = ctx.get("leads_until")
        if mode == "unconditional" and until is not None and fut[0] > until:
            continue                       # nothing this mode can be checked against
        t1 = time.perf_counter()
        if mode == "conditional":
            leads_in, future = ctx["leads_by"].reset_index(), [float(leads_all.get(m, 0.0)) for m in fut]
            base_leads = leads_all
        else:
            leads_in = fit_inflow(train, factors=factors)
            trailing = float(np.mean([leads_all.get(add_months(month_start(cut), -i), 0.0) for i in range(3)]))
            base_leads = pd.concat([leads_all[leads_all.index <= month_start(cut)],
                                    pd.Series([trailing] * H, index=fut)])      # the baselines' assumption
        ent, used = _forecast_window(model, factors, pipeline, leads_in, fut, cut, seed + 1000 + w)
        if mode == "unconditional":
            future = used.tolist()
        info[f"forecast_{mode}_s"] = time.perf_counter() - t1
        draws[(cut, mode)] = ent
        base = baseline_forecasts(snaps, data.spec, cut, H, base_leads, entries_all, pipeline,
                                  names=ctx["baselines"], stages=ctx["stage_list"])
        rows = _frame_rows(ent, tuple(data.spec.states), ctx["stage_list"], cut, fut, mode, entries_all, base,
                           ctx["baselines"], future)
        if mode == "unconditional" and until is not None:
            rows = [r[r["month"] <= until] for r in rows]
        frames += rows
    info.update(cutoff=cut, train_leads=int(snaps["lead_id"].nunique()), open_pipeline=int(len(pipeline)))
    return frames, draws, info


def _run_windows(data: Any, cutoffs: Sequence[pd.Timestamp], ctx: dict[str, Any], progress: bool
                 ) -> tuple[list[pd.DataFrame], dict[Any, Any], list[dict[str, Any]]]:
    """Every window in turn, with a progress bar and a line per window saying what its fit
    compiled, reused or loaded."""
    frames: list[pd.DataFrame] = []
    draws: dict[Any, Any] = {}
    infos: list[dict[str, Any]] = []
    it: Any = cutoffs
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(cutoffs, desc="backtest windows", unit="window")
    for w, cut in enumerate(it):
        f, d, info = _run_window(data, cut, w, ctx)
        if progress:
            it.write(f"window {w + 1}/{len(cutoffs)} (cut-off {cut:%Y-%m-%d}): {info['fit']}")
        frames += f
        draws.update(d)
        infos.append(info)
    return frames, draws, infos


def backtest(
    data: Any,
    *,
    horizon: int = 3,
    n_windows: int = 6,
    step: int = 1,
    model: str = "auto",
    model_config: Mapping[str, Any] | None = None,
    sampler_config: Mapping[str, Any] | None = None,
    baselines: Sequence[str] = BASELINES,
    modes: Sequence[str] = MODES,
    seed: int = 0,
    progress: bool = True,
    stages: bool | Sequence[str] = False,
    cache_dir: str | Path | bool | None = None,
    min_train_months: int = 6,
) -> BacktestResult:
    """Rolling-origin backtest of the Bayesian funnel forecast against baselines.

    Parameters
    ----------
    data : LoadedData
        From :func:`funnel_models.workflow.load_data` (lead-level data).
    horizon, n_windows, step, min_train_months : int
        Months forecast after each cut-off, number of cut-offs, months between them,
        months of data required before the first.
    model : {"auto", "markov", "conjugate"}
        The model fitted at every cut-off (through the one model interface).
    model_config, sampler_config : mapping, optional
        Its settings (``factors`` in ``model_config``: the forecast is then made per
        segment cell, with the cell's pipeline and new leads, and summed).
    baselines : sequence of str
        Any of :data:`BASELINES`.
    modes : sequence of {"conditional", "unconditional"}
        See the module docstring.
    seed : int
    progress : bool
        A tqdm progress bar over windows.
    stages : bool or sequence of str
        Also backtest monthly entries into these open stages (``True``: all).
    cache_dir : path or False, optional
        Fit cache of the Markov model.
    """
    data = _check_args(data, baselines, modes)
    mc = dict(model_config or {})
    sc = parse_config(SamplerConfig, {"progress": False, **dict(sampler_config or {})}, "sampler_config")
    sc = sc.for_several_fits().model_dump()         # backend auto: the windows sample with Numba
    factors = list(mc.get("factors", ()))
    col = "entered_at" if data.kind == "history" else "month"
    cutoffs = backtest_cutoffs(month_start(pd.to_datetime(data.table[col]).min()), data.cutoff, horizon=horizon,
                               n_windows=n_windows, step=step, min_train_months=min_train_months)
    leads_by, _ = _actuals(data, by=factors)
    leads_all, entries_all = _actuals(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        until = leads_recorded_until(derive.transitions(data.snapshots(), data.spec))
    ctx = {"leads_until": until, "horizon": horizon, "factors": factors, "seed": seed, "modes": tuple(modes),
           "baselines": list(baselines), "stage_list": _stage_list(data.spec, stages), "leads_by": leads_by,
           "leads_all": leads_all["n"], "entries_all": entries_all,
           "settings": {"model": model, "model_config": mc, "sampler_config": sc, "cache_dir": cache_dir}}
    frames, draws, infos = _run_windows(data, cutoffs, ctx, progress)
    order = {st: i for i, st in enumerate(ctx["stage_list"])}
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.assign(_o=frame["stage"].map(order)).sort_values(["mode", "_o", "cutoff", "month"]).drop(
        columns="_o").reset_index(drop=True)
    config = {"source": data.source, "horizon": horizon, "n_windows": n_windows, "step": step, "model": model,
              "model_config": mc, "sampler_config": sc, "baselines": list(baselines), "seed": seed,
              "stages": ctx["stage_list"], "modes": list(modes),
              "leads_recorded_until": None if until is None else str(until.date())}
    return BacktestResult(frame=frame, draws=draws, states=tuple(data.spec.states), windows=pd.DataFrame(infos),
                          horizon=horizon, models=("bayes", *baselines), config=config)
