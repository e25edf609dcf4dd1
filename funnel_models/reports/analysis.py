"""Everything the report notebooks compute, so the notebooks stay thin.

A notebook calls :func:`prepare` once with its parameters (validated against the
notebook's schema in :mod:`funnel_models.reports.params`), which loads the data and fits
the model, then one function per section. Each section function returns a
:class:`Section` (title, one-sentence interpretation generated from the numbers, an
optional warning, a figure and a table) and records its key numbers in
``ctx.summary``; :func:`show` displays a section; :func:`write_summary` writes
``summary.json`` to the path the runner passes as the ``summary_path`` parameter.

Every data string that reaches the HTML goes through :func:`html.escape` or
``DataFrame.to_html(escape=True)``; figures are images. A segment called
``<script>alert(1)</script>`` is shown as text.

Examples
--------
>>> from funnel_models.reports.params import MonthlyReportParams
>>> ctx = prepare("monthly_report", MonthlyReportParams(quick=True).model_dump())
>>> funnel_section(ctx).title
'Funnel this month'
"""
from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..data import derive
from ..errors import FunnelWarning, ParameterError
from ..posterior import PosteriorFunnel
from ..simulate import leads_from_history
from .params import SCHEMAS, CommonParams, schema_for

__all__ = [
    "Context", "Section", "prepare", "open_report", "show", "write_summary", "header_section",
    "funnel_section", "conversion_section", "stall_section", "segment_section",
    "warning_section", "forecast_section", "leads_section", "bottleneck_section",
    "diagnostics_section", "plan_periods_section", "plan_segments_section",
    "change_section", "change_history_section", "posterior", "raw_segment_rates",
    "FORECAST_LEVELS",
]

#: Interval levels of the forecast fan chart (summary.json reports the 80% interval).
FORECAST_LEVELS = (0.5, 0.8, 0.95)
#: Pseudo-count added to every allowed move of a segment's raw (unpooled) rates.
RAW_PSEUDO_COUNT = 0.01
#: Posterior draws taken from the quick (conjugate) model.
QUICK_DRAWS = 2000


# ---------------------------------------------------------------------------- containers
@dataclass
class Context:
    """Data, model and accumulated key numbers of one report run."""

    notebook: str
    params: CommonParams
    data: Any
    model: Any
    factors: list[str]
    snapshots: pd.DataFrame
    transitions: pd.DataFrame
    counts: pd.DataFrame
    pipeline: pd.DataFrame
    post: PosteriorFunnel
    new_leads: float
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def quick(self) -> bool:
        """Quick (conjugate) mode."""
        return bool(self.params.quick)

    @property
    def spec(self) -> Any:
        """The funnel spec."""
        return self.data.spec

    @property
    def cutoff_month(self) -> pd.Timestamp:
        """First day of the last observed month."""
        return self.data.cutoff_month


@dataclass
class Section:
    """One block of a report: heading, interpretation, optional warning, figure, table."""

    title: str
    text: str = ""
    figure: Any = None
    table: pd.DataFrame | None = None
    warning: str = ""
    note: str = ""
    level: int = 2

    def header_html(self) -> str:
        """Heading, warning box and sentence as escaped HTML."""
        parts = [f"<h{self.level}>{html.escape(self.title)}</h{self.level}>"]
        if self.warning:
            parts.append('<div style="border:2px solid #c0392b;background:#fdecea;color:#7b241c;'
                         'padding:10px 14px;margin:8px 0;border-radius:4px;font-weight:600">'
                         f"&#9888; {html.escape(self.warning)}</div>")
        if self.text:
            parts.append(f'<p style="font-size:1.05em">{html.escape(self.text)}</p>')
        if self.note:
            parts.append(f'<p style="color:#555;font-size:0.9em">{html.escape(self.note)}</p>')
        return "\n".join(parts)

    def table_html(self) -> str:
        """The table as escaped HTML ('' when there is none)."""
        if self.table is None or self.table.empty:
            return ""
        return self.table.to_html(index=False, escape=True, border=0, na_rep="–",
                                  classes="funnel-table")

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks use show()
        return self.header_html() + self.table_html()


def show(section: Section) -> None:
    """Display a section in the notebook: heading and sentence, figure, table."""
    from IPython.display import HTML, display
    display(HTML(section.header_html()))
    if section.figure is not None:
        from IPython.display import Image
        display(Image(data=figure_png(section.figure), format="png"))
    tab = section.table_html()
    if tab:
        display(HTML(tab))


# ---------------------------------------------------------------------------- helpers
def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (works without pyplot or an inline backend)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _signed(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{'+' if x >= 0 else ''}{x:,.0f}"


def _pct(x: float, digits: int = 0) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}%"


def _months_label(m: Any) -> str:
    return pd.Timestamp(m).strftime("%Y-%m")


def _stage_name(ctx: Context, code: str) -> str:
    spec = ctx.spec
    if code in spec.codes and spec.names:
        return spec.names[spec.codes.index(code)]
    return code


def _capture(ctx: Context, fn: Any, *a: Any, **kw: Any) -> Any:
    """Run ``fn`` recording FunnelWarnings as report notes and hiding library noise."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*a, **kw)
    for w in caught:
        if issubclass(w.category, FunnelWarning):
            msg = str(w.message)
            if msg not in ctx.notes:
                ctx.notes.append(msg)
    return out


def posterior(ctx: Context, segment: Mapping[str, str] | None = None, month: Any = None) -> PosteriorFunnel:
    """Posterior funnel of a segment (default pooled) and month (default the last)."""
    p = ctx.params
    if ctx.quick:
        return ctx.model.posterior_funnel(segment, draws=QUICK_DRAWS, seed=p.seed)
    return ctx.model.posterior_funnel(segment, month=month, seed=p.seed)


# ---------------------------------------------------------------------------- prepare
def prepare(notebook: str, params: Mapping[str, Any], *, progress: bool = False,
            cache_dir: str | Path | None = None) -> Context:
    """Validate parameters, load the data, fit the model: the start of every notebook.

    Parameters
    ----------
    notebook : str
        ``"monthly_report"``, ``"lead_planning"`` or ``"process_change"``.
    params : mapping
        Every parameter of the notebook's schema (the notebook passes its parameters
        cell's variables); a missing or unknown key is a ParameterError.
    progress : bool
        Show the sampler's progress bar (keep False in notebooks).
    cache_dir : path, optional
        Fit cache folder (default ``$FUNNEL_CACHE_DIR`` or ``~/.cache/funnel_models``).

    Returns
    -------
    Context
    """
    from ..workflow import fit_model, load_data
    schema = schema_for(notebook)
    missing = sorted(set(schema.model_fields) - set(params))
    if missing:
        raise ParameterError(f"prepare({notebook!r}): the notebook did not pass parameter(s) {missing}")
    from .params import validate_parameters
    p = validate_parameters(params, notebook, where=f"notebook {notebook}")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_data(p.source, spec=p.spec, mapping=p.mapping or None, filters=p.segment_filters or None,
                         start=p.start, end=p.end, cutoff=p.cutoff)
        snaps = data.snapshots()
        factors = []
        for f in p.factors:
            if f not in data.history.columns:
                raise ParameterError(f"factors: {f!r} is not a column of the data; columns: "
                                     f"{[c for c in data.history.columns if c not in ('lead_id', 'stage', 'entered_at', 'value')]}")
            n_levels = data.history[f].nunique()
            if n_levels < 2:
                notes.append(f"factor {f!r} has a single level after the filters and is left out of the model")
            else:
                factors.append(f)
        change_points = list(p.change_points)
        if notebook == "process_change":
            change_points = [c for c in change_points if c["stage"] != p.change_stage]  # type: ignore[attr-defined]
            change_points.append({"stage": p.change_stage, "month": p.change_month,  # type: ignore[attr-defined]
                                  "name": p.change_name})  # type: ignore[attr-defined]
        sampler = {"draws": p.draws, "tune": p.tune, "chains": p.chains, "seed": p.seed}
        model = fit_model(data, quick=p.quick, factors=factors, change_points=change_points,
                          sampler_config=sampler, cache_dir=cache_dir, progress=progress)
        transitions = derive.transitions(snaps, data.spec, by=factors)
        counts = derive.stage_counts(snaps, data.spec)
        pipeline = data.pipeline()
    for w in caught:
        if issubclass(w.category, FunnelWarning) and str(w.message) not in notes:
            notes.append(str(w.message))
    new_leads = float(p.new_leads) if p.new_leads is not None else leads_from_history(transitions, months=3)
    ctx = Context(notebook=notebook, params=p, data=data, model=model, factors=factors, snapshots=snaps,
                  transitions=transitions, counts=counts, pipeline=pipeline, post=None,  # type: ignore[arg-type]
                  new_leads=new_leads, notes=notes)
    ctx.post = posterior(ctx)
    ctx.summary = {
        "notebook": notebook,
        "generated_at": _dt.datetime.now().isoformat(timespec="seconds"),
        "parameters": p.model_dump(exclude={"summary_path"}),
        "data": {"source": str(p.source), "cutoff": str(data.cutoff.date()),
                 "cutoff_month": _months_label(data.cutoff_month),
                 "leads": int(data.history["lead_id"].nunique()),
                 "open_pipeline": int(len(pipeline)), "model": "quick" if p.quick else "mcmc",
                 "factors": factors, "new_leads_per_month": new_leads},
    }
    return ctx


def open_report(notebook: str, namespace: Mapping[str, Any], *, progress: bool = False) -> Context:
    """Start a report notebook: read its parameters, prepare, show the header and warnings.

    Parameters
    ----------
    notebook : str
        The notebook's name (its parameter schema).
    namespace : mapping
        The notebook's variables (pass ``globals()``); only the schema's parameters are
        read, so the parameters cell stays the single list of them.
    progress : bool
        Show the sampler's progress bar.
    """
    fields = SCHEMAS[notebook].model_fields
    ctx = prepare(notebook, {k: namespace[k] for k in fields if k in namespace}, progress=progress)
    show(header_section(ctx))
    banner = diagnostics_banner(ctx)
    if banner is not None:
        show(banner)
    return ctx


def write_summary(ctx: Context, path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write ``ctx.summary`` (plus notes) as JSON to ``path`` (default the summary_path parameter).

    Nothing is written when the path is empty. Returns the summary.
    """
    target = str(path if path is not None else ctx.params.summary_path)
    out = dict(ctx.summary)
    out["notes"] = list(ctx.notes)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(target).with_name(Path(target).name + ".tmp")
        tmp.write_text(json.dumps(out, indent=2, default=_json_default), encoding="utf-8")
        os.replace(tmp, target)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp, _dt.date)):
        return str(o)
    return str(o)


# ---------------------------------------------------------------------------- monthly sections
def header_section(ctx: Context) -> Section:
    """Title, data description and notes (warnings about the data)."""
    p, d = ctx.params, ctx.data
    title = getattr(p, "title", "Funnel report")
    filt = ", ".join(f"{k}={v}" for k, v in p.segment_filters.items()) or "all segments"
    model = ("quick mode (exact conjugate posterior per segment, no partial pooling)" if ctx.quick else
             f"Bayesian Markov model (MCMC, {p.chains} chains x {p.draws} draws"
             + (f", pooled over {', '.join(ctx.factors)}" if ctx.factors else "") + ")")
    text = (f"Data: {d.source}, {ctx.summary['data']['leads']:,} leads, {filt}, observed up to "
            f"{d.cutoff.date()} (report month {_months_label(ctx.cutoff_month)}). Model: {model}. "
            f"Planning assumes {ctx.new_leads:,.0f} new leads per month"
            + (" (the mean of the last 3 months)." if p.new_leads is None else " (parameter new_leads)."))
    note = " ".join(f"Note: {n}" for n in ctx.notes)
    return Section(title=title, text=text, note=note, level=1)


def funnel_section(ctx: Context) -> Section:
    """Leads per stage this month and the change since last month."""
    from . import plots
    c = ctx.counts
    month = ctx.cutoff_month
    this = c[c["month"] == month].set_index("stage").reindex(list(ctx.spec.states))
    table = pd.DataFrame({"stage": this.index, "name": [_stage_name(ctx, s) for s in this.index],
                          "leads": this["count"].fillna(0).astype(int).to_numpy(),
                          "change vs last month": this["change"].to_numpy()})
    open_now = int(table["leads"].iloc[:ctx.spec.n_stages].sum())
    prev_open = int((this["count"] - this["change"].fillna(0)).iloc[:ctx.spec.n_stages].sum())
    won = int(table.loc[table["stage"] == "WON", "leads"].iloc[0])
    won_change = this.loc["WON", "change"]
    diff = open_now - prev_open
    text = (f"{open_now:,} leads are open at the end of {_months_label(month)} "
            f"({'+' if diff >= 0 else ''}{diff:,} since last month) and {won:,} deals were won this month"
            + (f" ({'+' if won_change >= 0 else ''}{int(won_change):,} vs last month)." if pd.notna(won_change) else "."))
    fig = plots.funnel_chart(table, month=_months_label(month))
    table["change vs last month"] = table["change vs last month"].map(_signed)
    table["change %"] = [_signed(x) + "%" if np.isfinite(x) else "–" for x in this["pct_change"].to_numpy(float)]
    ctx.summary["funnel"] = {"month": _months_label(month), "open": open_now, "won": won,
                             "counts": dict(zip(table["stage"], table["leads"].astype(int).tolist()))}
    return Section("Funnel this month", text, fig, table)


def conversion_section(ctx: Context) -> Section:
    """Stage conversion with intervals against benchmarks."""
    from ..simulate import benchmark_gaps
    from . import plots
    p = ctx.params
    lv = p.interval_level
    st = ctx.post.stage_table(lv)
    bench = {k: v for k, v in getattr(p, "benchmarks", {}).items()}
    unknown = [k for k in bench if k not in ctx.spec.codes]
    if unknown:
        raise ParameterError(f"benchmarks: unknown stage code(s) {unknown}; the funnel's stages are "
                             f"{list(ctx.spec.codes)}")
    table = pd.DataFrame({"stage": st["stage"], "name": [_stage_name(ctx, s) for s in st["stage"]],
                          "conversion": st["conversion_mean"].round(3),
                          f"lo {lv:.0%}": st["conversion_lo"].round(3), f"hi {lv:.0%}": st["conversion_hi"].round(3)})
    table["benchmark"] = [bench.get(s, np.nan) for s in st["stage"]]
    text = "No benchmarks given."
    gaps = pd.DataFrame()
    if bench:
        gaps = benchmark_gaps(ctx.post, bench, ctx.new_leads, level=lv)
        table = table.merge(gaps[["stage", "p_below", "wins_gap_mean"]], on="stage", how="left")
        table["P(below benchmark)"] = table.pop("p_below").round(2)
        table["wins/month at benchmark"] = table.pop("wins_gap_mean").round(1)
        below = gaps[gaps["p_below"] >= 0.9].sort_values("wins_gap_mean", ascending=False)
        if len(below):
            r = below.iloc[0]
            text = (f"{len(below)} stage(s) are very probably below benchmark; the costliest is "
                    f"{r['stage']} ({_pct(r['conversion_mean'])} vs {_pct(r['benchmark'])}), worth "
                    f"{r['wins_gap_mean']:.1f} extra wins per month at benchmark.")
        else:
            text = "No stage is clearly (P >= 0.9) below its benchmark."
    fig = plots.conversion_chart(st, bench, level=lv)
    ctx.summary["conversion"] = {s: float(v) for s, v in zip(st["stage"], st["conversion_mean"])}
    return Section("Stage conversion vs benchmarks", text, fig, table)


def stall_section(ctx: Context) -> Section:
    """Expected months prospects stay in each stage."""
    from ..simulate import stall_ranking
    from . import plots
    lv = ctx.params.interval_level
    sr = stall_ranking(ctx.post, level=lv)
    top = sr.iloc[0]
    text = (f"Prospects stall longest in {top['stage']} ({top['name']}): {top['expected_months_mean']:.1f} "
            f"months on average ({top['expected_months_lo']:.1f}-{top['expected_months_hi']:.1f}).")
    table = pd.DataFrame({"rank": sr["rank"], "stage": sr["stage"], "name": sr["name"],
                          "expected months": sr["expected_months_mean"].round(2),
                          f"lo {lv:.0%}": sr["expected_months_lo"].round(2),
                          f"hi {lv:.0%}": sr["expected_months_hi"].round(2),
                          "median months": sr["median_months_mean"].round(1)})
    fig = plots.stall_chart(sr, level=lv)
    ctx.summary["stall_longest"] = {"stage": str(top["stage"]), "months": float(top["expected_months_mean"])}
    return Section("Stall times", text, fig, table)


def raw_segment_rates(ctx: Context, factor: str) -> pd.DataFrame:
    """Raw (unpooled) lead win rate and leads per level of ``factor``.

    The segment's own transition frequencies (plus :data:`RAW_PSEUDO_COUNT` per allowed
    move, so a stage only ever seen 'staying' does not make the chain singular).
    """
    from ..models import ConjugateFunnel
    raw = ConjugateFunnel(ctx.spec, factors=[factor]).fit(ctx.transitions)
    rows = []
    for level in raw.structure.factors[factor]:  # type: ignore[union-attr]
        counts = raw.row_counts({factor: level})
        rws = {}
        for src, (dest, c) in counts.items():
            c = np.asarray(c, float) + RAW_PSEUDO_COUNT  # keeps rows seen only staying well-defined
            prob = c / c.sum()
            rws[src] = (dest, prob[None, :])
        post = PosteriorFunnel.from_rows(ctx.spec.codes, rws)
        n = int(counts["ENTRY"][1].sum()) if "ENTRY" in counts else 0
        rows.append({"level": level, "raw_win_rate": float(post.lead_win_rate()[0]), "leads": n})
    return pd.DataFrame(rows)


def segment_section(ctx: Context) -> Section:
    """Lead win rate per segment: pooled model estimate beside the raw rate."""
    from . import plots
    lv = ctx.params.interval_level
    frames = []
    for f in ctx.factors:
        raw = raw_segment_rates(ctx, f)
        for _, r in raw.iterrows():
            d = posterior(ctx, {f: r["level"]}).lead_win_rate()
            lo, hi = np.quantile(d, [(1 - lv) / 2, 1 - (1 - lv) / 2])
            frames.append({"factor": f, "segment": r["level"], "leads": int(r["leads"]),
                           "model": float(d.mean()), "lo": float(lo), "hi": float(hi),
                           "raw": float(r["raw_win_rate"])})
    if not frames:
        return Section("Segments", "No segment factors in the model (set 'factors' to compare segments).")
    seg = pd.DataFrame(frames)
    overall = float(ctx.post.lead_win_rate().mean())
    best = seg.loc[seg["model"].idxmax()]
    worst = seg.loc[seg["model"].idxmin()]
    shrink = (seg["raw"] - seg["model"]).abs().max()
    kind = "raw rates (quick mode does not pool)" if ctx.quick else "partially pooled model estimates"
    text = (f"Of every 100 new leads about {100 * overall:.1f} are eventually won; by segment "
            f"({kind}) the best is {best['factor']}={best['segment']} at {_pct(best['model'], 1)} and the "
            f"weakest {worst['factor']}={worst['segment']} at {_pct(worst['model'], 1)}; pooling moves "
            f"raw rates by at most {100 * shrink:.1f} points.")
    table = seg.assign(**{"model win rate": seg["model"].round(4), f"lo {lv:.0%}": seg["lo"].round(4),
                          f"hi {lv:.0%}": seg["hi"].round(4), "raw win rate": seg["raw"].round(4)}
                       )[["factor", "segment", "leads", "model win rate", f"lo {lv:.0%}", f"hi {lv:.0%}",
                          "raw win rate"]]
    fig = plots.segment_chart(seg, overall=overall, level=lv, pooled=not ctx.quick)
    ctx.summary["segments"] = seg[["factor", "segment", "leads", "model", "raw"]].to_dict("records")
    note = ("Model estimates are for a segment at the average of the other factors; raw rates use the "
            "segment's own data and mix, so they can differ beyond shrinkage." if len(ctx.factors) > 1 else "")
    return Section("Segments: pooled model vs raw rates", text, fig, table, note=note)


def _month_counts(ctx: Context, month: pd.Timestamp) -> dict[str, int]:
    c = ctx.counts[ctx.counts["month"] == month]
    return {str(s): int(n) for s, n in zip(c["stage"], c["count"])}


def warning_section(ctx: Context) -> Section:
    """Early warning: stages whose count this month is outside the predictive interval."""
    from ..simulate import early_warning
    from ..data.spec import ENTRY
    from . import plots
    p = ctx.params
    month = ctx.cutoff_month
    prev_month = month - pd.DateOffset(months=1)
    prev = _month_counts(ctx, prev_month)
    cur = _month_counts(ctx, month)
    if not prev:
        return Section("Early warnings", "Only one month of data: no early warning possible yet.")
    prev_open = {s: prev.get(s, 0) for s in ctx.spec.codes}
    t = ctx.transitions
    new_now = int(t.loc[(pd.to_datetime(t["month"]) == month) & (t["from_stage"] == ENTRY), "n"].sum())
    lv = getattr(p, "warning_level", 0.9)
    res = early_warning(ctx.post, prev_open, cur, new_now, level=lv, horizon=getattr(p, "horizon", 6), seed=p.seed)
    st = res.stages
    flagged = st[st["flag"] != ""]
    if flagged.empty:
        text = f"Every stage's count this month is inside the model's {lv:.0%} predictive range: no warning."
        warn = ""
    else:
        parts = [f"{r['stage']} is {r['flag']} ({r['observed']:.0f} vs expected {r['lo']:.0f}-{r['hi']:.0f})"
                 for _, r in flagged.iterrows()]
        cum = float(res.projection["cumulative_difference"].iloc[-1])
        text = (f"{len(flagged)} stage(s) are outside the {lv:.0%} predictive range: " + "; ".join(parts)
                + f". If nothing changes this shifts wins over the next {len(res.projection)} months by "
                f"{cum:+.1f}.")
        warn = "Early warning: " + "; ".join(parts) + "."
    table = st.assign(expected=st["expected"].round(1), lo=st["lo"].round(0), hi=st["hi"].round(0),
                      percentile=st["percentile"].round(2))
    fig = plots.warning_chart(st, level=lv, month=_months_label(month))
    ctx.summary["early_warning"] = {"flagged": flagged["stage"].tolist(),
                                    "flags": dict(zip(flagged["stage"], flagged["flag"]))}
    return Section("Early warnings", text, fig, table, warning=warn)


def forecast_section(ctx: Context) -> Section:
    """Wins per month for the next ``horizon`` months (fan chart)."""
    from ..simulate import forecast
    from . import plots
    p = ctx.params
    H = int(getattr(p, "horizon", 6))
    fc = forecast(ctx.post, ctx.pipeline, ctx.new_leads, H, seed=p.seed, start=ctx.cutoff_month)
    iv = fc.intervals(FORECAST_LEVELS)
    w = iv[iv["quantity"] == "wins"].reset_index(drop=True)
    won = ctx.counts[ctx.counts["stage"] == "WON"][["month", "count"]].tail(12)
    total = fc.wins.sum(axis=1)
    t_lo, t_hi = np.quantile(total, [0.1, 0.9])
    text = (f"Over the next {H} months the model expects {total.mean():.0f} wins in total "
            f"(80% interval {t_lo:.0f}-{t_hi:.0f}), {w['mean'].iloc[0]:.1f} of them in "
            f"{_months_label(w['month'].iloc[0])}, from {len(ctx.pipeline):,} open deals and "
            f"{ctx.new_leads:,.0f} new leads per month.")
    table = pd.DataFrame({"month": [_months_label(m) for m in w["month"]],
                          "expected wins": w["mean"].map(lambda x: f"{x:.1f}"),
                          "80% low": w["lo_80"].map(lambda x: f"{x:.0f}"),
                          "80% high": w["hi_80"].map(lambda x: f"{x:.0f}"),
                          "95% low": w["lo_95"].map(lambda x: f"{x:.0f}"),
                          "95% high": w["hi_95"].map(lambda x: f"{x:.0f}")})
    fig = plots.forecast_fan(w, history=won)
    ctx.summary["forecast"] = [{"month": _months_label(r["month"]), "wins_mean": float(r["mean"]),
                                "wins_lo_80": float(r["lo_80"]), "wins_hi_80": float(r["hi_80"])}
                               for _, r in w.iterrows()]
    ctx.summary["forecast_total"] = {"wins_mean": float(total.mean()), "wins_lo_80": float(t_lo),
                                     "wins_hi_80": float(t_hi)}
    return Section(f"Forecast: wins in the next {H} months", text, fig, table)


def leads_section(ctx: Context) -> Section:
    """New leads per month needed to hit the target, the probability curve, the naive answer."""
    from ..simulate import leads_needed
    from . import plots
    p = ctx.params
    res = leads_needed(ctx.post, p.target_wins, p.window_months, pipeline=ctx.pipeline,  # type: ignore[attr-defined]
                       confidence=p.confidence, seed=p.seed)  # type: ignore[attr-defined]
    tgt = f"{p.target_wins:g} wins in the next {p.window_months} months"  # type: ignore[attr-defined]
    if res.feasible:
        text = (f"To reach {tgt} with {p.confidence:.0%} confidence you need {res.leads:,} new leads per month "  # type: ignore[attr-defined]
                f"(P(hit) = {res.probability:.2f}); the naive spreadsheet answer of {res.naive_leads:,} leads "
                f"per month would hit it with P = {res.naive_probability:.2f}. The open pipeline alone gives "
                f"P = {res.pipeline_probability:.2f}.")
        warn = ""
    else:
        text = f"No lead volume reaches {tgt} with {p.confidence:.0%} confidence: {res.message}."  # type: ignore[attr-defined]
        warn = "Target not reachable: " + res.message
    table = pd.DataFrame({
        "plan": ["model", "naive (target / win rate)", "pipeline only"],
        "new leads per month": [res.leads if res.leads is not None else np.nan, res.naive_leads, 0],
        "P(hit)": [round(res.probability, 2), round(res.naive_probability, 2), round(res.pipeline_probability, 2)]})
    fig = plots.leads_curve(res)
    ctx.summary["leads_needed"] = {
        "target_wins": float(p.target_wins), "window_months": int(p.window_months),  # type: ignore[attr-defined]
        "confidence": float(p.confidence), "feasible": bool(res.feasible),  # type: ignore[attr-defined]
        "leads": res.leads, "probability": float(res.probability), "naive_leads": res.naive_leads,
        "naive_probability": float(res.naive_probability), "naive_rate": float(res.naive_rate),
        "pipeline_probability": float(res.pipeline_probability), "message": res.message}
    return Section("Leads needed to hit the target", text, fig, table, warning=warn)


def bottleneck_section(ctx: Context) -> Section:
    """Ranking of levers by extra wins per month: where to focus."""
    from ..simulate import leverage
    from . import plots
    p = ctx.params
    H = int(getattr(p, "horizon", 6))
    lev = leverage(ctx.post, ctx.pipeline, ctx.new_leads, H, level=p.interval_level)
    top = lev.iloc[0]
    text = (f"Focus here: {top['lever']} at {top['stage']} ({top['name']}) adds about "
            f"{top['extra_wins_mean']:.1f} wins per month over the next {H} months "
            f"({top['extra_wins_lo']:.1f}-{top['extra_wins_hi']:.1f}), more than any other single lever.")
    h = lev.head(8)
    table = pd.DataFrame({"rank": h["rank"], "stage": h["stage"], "name": h["name"], "lever": h["lever"],
                          "extra wins/month": h["extra_wins_mean"].round(2),
                          f"lo {p.interval_level:.0%}": h["extra_wins_lo"].round(2),
                          f"hi {p.interval_level:.0%}": h["extra_wins_hi"].round(2),
                          "P(helps)": h["p_positive"].round(2), "focus": h["focus"]})
    fig = plots.bottleneck_chart(lev.head(8), level=p.interval_level)
    ctx.summary["bottleneck"] = {"stage": str(top["stage"]), "name": str(top["name"]), "lever": str(top["lever"]),
                                 "extra_wins_mean": float(top["extra_wins_mean"])}
    return Section("Bottleneck ranking: focus here", text, fig, table)


def diagnostics_section(ctx: Context) -> Section:
    """Sampler diagnostics with a visible warning when the fit is not trustworthy."""
    if ctx.quick:
        d = {"ok": True, "model": "quick", "message": "Quick mode: exact conjugate posterior, no MCMC to diagnose."}
        ctx.diagnostics = d
        ctx.summary["diagnostics"] = d
        return Section("Model diagnostics", d["message"] + " Segments are not pooled in quick mode.")
    d = ctx.model.diagnostics(warn=False)
    d = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in d.items()}
    d["model"] = "mcmc"
    ctx.diagnostics = d
    ctx.summary["diagnostics"] = d
    table = pd.DataFrame({"check": ["max r_hat", "min bulk ESS", "min tail ESS", "divergences", "chains x draws"],
                          "value": [f"{d['r_hat_max']:.3f}", f"{d['ess_bulk_min']:.0f}", f"{d['ess_tail_min']:.0f}",
                                    f"{d['divergences']}", f"{d['chains']} x {d['draws']}"],
                          "threshold": ["<= 1.01", ">= 400", "", "0", ""]})
    warn = "" if d["ok"] else d["message"]
    text = d["message"] if d["ok"] else "The numbers above may be unreliable until the model converges."
    return Section("Model diagnostics", text, None, table, warning=warn)


def diagnostics_banner(ctx: Context) -> Section | None:
    """A warning shown at the top of a report when the MCMC diagnostics are bad (else None)."""
    if ctx.quick:
        return None
    d = ctx.model.diagnostics(warn=False)
    if d["ok"]:
        return None
    return Section("Model warning", "", warning=d["message"], level=3)


# ---------------------------------------------------------------------------- lead planning
def _period_windows(p: Any) -> list[tuple[str, int, int]]:
    size = 3 if p.period == "quarter" else 1
    return [(f"{p.period} {i + 1}", i * size + 1, (i + 1) * size) for i in range(p.periods)]


def plan_periods_section(ctx: Context) -> Section:
    """Leads per month needed for the target in each coming period."""
    from ..simulate import leads_needed
    from . import plots
    p = ctx.params
    rows = []
    for label, a, T in _period_windows(p):
        r = leads_needed(ctx.post, p.target_wins, (a, T), pipeline=ctx.pipeline, confidence=p.confidence,  # type: ignore[attr-defined]
                         seed=p.seed)
        start = _months_label(ctx.cutoff_month + pd.DateOffset(months=a))
        end = _months_label(ctx.cutoff_month + pd.DateOffset(months=T))
        rows.append({"period": label, "months": f"{start} to {end}", "target wins": p.target_wins,  # type: ignore[attr-defined]
                     "leads per month": r.leads if r.feasible else "not reachable", "P(hit)": round(r.probability, 2),
                     "naive leads per month": r.naive_leads, "naive P(hit)": round(r.naive_probability, 2),
                     "pipeline only P": round(r.pipeline_probability, 2)})
    table = pd.DataFrame(rows)
    first = table.iloc[0]
    text = (f"To win {p.target_wins:g} deals per {p.period} with {p.confidence:.0%} confidence, plan "  # type: ignore[attr-defined]
            + ", ".join(f"{r['leads per month']} leads/month for {r['period']}" if r["leads per month"] != "not reachable"
                        else f"{r['period']}: out of reach for new leads (the open pipeline decides it, P = "
                             f"{r['pipeline only P']:.2f})" for _, r in table.iterrows())
            + f"; the naive plan for {first['period']} ({first['naive leads per month']}/month) hits with "
            f"P = {first['naive P(hit)']:.2f}.")
    fig = plots.plan_chart(table, x="period", title=f"New leads per month needed per {p.period}")  # type: ignore[attr-defined]
    ctx.summary["plan_periods"] = table.to_dict("records")
    return Section(f"Leads needed per {p.period}", text, fig, table)  # type: ignore[attr-defined]


def plan_segments_section(ctx: Context) -> Section:
    """Leads per month needed per segment level for its share of the last period's target."""
    from ..simulate import leads_needed
    from . import plots
    p = ctx.params
    f = p.plan_by  # type: ignore[attr-defined]
    if not f:
        return Section("Leads needed per segment", "No plan_by factor given.")
    if f not in ctx.factors:
        raise ParameterError(f"plan_by: {f!r} is not a model factor; factors in the model: {ctx.factors}")
    label, a, T = _period_windows(p)[-1]  # the last planned period: new leads can act on it
    t = ctx.transitions
    won = t[t["to_stage"] == "WON"]
    recent = won[pd.to_datetime(won["month"]) > ctx.cutoff_month - pd.DateOffset(months=12)]
    share = recent.groupby(f)["n"].sum()
    share = share / share.sum()
    targets = dict(p.segment_targets) or {str(k): float(p.target_wins * v) for k, v in share.items()}  # type: ignore[attr-defined]
    rows = []
    for level, tgt in targets.items():
        seg_pipe = ctx.pipeline[ctx.pipeline[f].astype(str) == str(level)] if f in ctx.pipeline else None
        r = leads_needed(posterior(ctx, {f: level}), tgt, (a, T), pipeline=seg_pipe, confidence=p.confidence,  # type: ignore[attr-defined]
                         seed=p.seed)
        rows.append({"segment": f"{f}={level}", "target wins": round(tgt, 1), "open deals": 0 if seg_pipe is None else len(seg_pipe),
                     "leads per month": r.leads if r.feasible else "not reachable", "P(hit)": round(r.probability, 2),
                     "naive leads per month": r.naive_leads, "naive P(hit)": round(r.naive_probability, 2)})
    table = pd.DataFrame(rows)
    num = pd.to_numeric(table["leads per month"], errors="coerce")
    out = table.loc[num.isna(), "segment"].tolist()
    text = (f"Splitting the {label} target by {'the given segment targets' if p.segment_targets else 'recent win share'}, "  # type: ignore[attr-defined]
            f"the segments need {num.sum():,.0f} new leads per month in total; each segment must hit its own "
            "target, so this is more than the pooled plan."
            + (f" Out of reach for new leads: {', '.join(out)}." if out else ""))
    fig = plots.plan_chart(table, x="segment", title=f"New leads per month needed per {f} ({label})")
    ctx.summary["plan_segments"] = table.to_dict("records")
    return Section(f"Leads needed per {f}", text, fig, table)


# ---------------------------------------------------------------------------- process change
def change_section(ctx: Context) -> Section:
    """Conversion at the changed stage before vs after, P(improved) and extra wins."""
    from ..simulate import process_change_impact
    from . import plots
    p = ctx.params
    stage = p.change_stage  # type: ignore[attr-defined]
    if stage not in ctx.spec.codes:
        raise ParameterError(f"change_stage: {stage!r} is not an open stage; stages: {list(ctx.spec.codes)}")
    cm = pd.Timestamp(p.change_month).to_period("M").to_timestamp()  # type: ignore[attr-defined]
    if ctx.quick:
        from ..models import ConjugateFunnel
        b = ConjugateFunnel(ctx.spec).fit(ctx.transitions, until=cm - pd.DateOffset(months=1))
        a = ConjugateFunnel(ctx.spec).fit(ctx.transitions, since=cm)
        before = b.posterior_funnel(draws=QUICK_DRAWS, seed=p.seed)
        after = a.posterior_funnel(draws=QUICK_DRAWS, seed=p.seed + 1)
        method = "quick mode: separate exact posteriors of the months before and after (all rates may differ)"
    else:
        before = posterior(ctx, month=cm - pd.DateOffset(months=1))
        after = posterior(ctx, month=cm)
        method = "change point in the Bayesian model: only this stage's rates may shift at the change"
    H = int(p.horizon)  # type: ignore[attr-defined]
    res = process_change_impact(before, after, stage, new_leads=ctx.new_leads, horizon=H, pipeline=ctx.pipeline)
    tab = res.table((p.interval_level,))
    lv = p.interval_level
    tag = f"{100 * lv:g}".replace(".", "_")
    table = pd.DataFrame({"quantity": tab["quantity"], "mean": tab["mean"].round(3),
                          f"lo {lv:.0%}": tab[f"lo_{tag}"].round(3), f"hi {lv:.0%}": tab[f"hi_{tag}"].round(3),
                          "P(> 0)": tab["p_positive"].round(3)})
    extra = res.extra_wins_per_month
    text = (f"{p.change_name or 'The change'} at {stage} from {_months_label(cm)} moved its conversion from "  # type: ignore[attr-defined]
            f"{_pct(res.rate_before.mean(), 1)} to {_pct(res.rate_after.mean(), 1)} "
            f"(P(improved) = {res.p_improved:.2f}), worth about {extra.mean():.1f} extra wins per month.")
    fig = plots.change_chart(res.rate_before, res.rate_after, stage=stage, level=lv)
    ctx.summary["process_change"] = {"stage": stage, "month": _months_label(cm), "name": p.change_name,  # type: ignore[attr-defined]
                                     "rate_before": float(res.rate_before.mean()),
                                     "rate_after": float(res.rate_after.mean()),
                                     "uplift_mean": float(res.uplift.mean()), "p_improved": float(res.p_improved),
                                     "extra_wins_per_month": float(extra.mean()), "method": method}
    return Section("Before vs after the change", text, fig, table, note=f"Method: {method}.")


def change_history_section(ctx: Context) -> Section:
    """Raw monthly conversion at the changed stage with the change date marked."""
    from . import plots
    p = ctx.params
    stage = p.change_stage  # type: ignore[attr-defined]
    cm = pd.Timestamp(p.change_month).to_period("M").to_timestamp()  # type: ignore[attr-defined]
    t = ctx.transitions
    rows = t[t["from_stage"] == stage].groupby(["month", "to_stage"])["n"].sum().unstack(fill_value=0)
    stay = rows.get(stage, 0)
    lost = rows.get("LOST", 0)
    total = rows.sum(axis=1)
    leave = total - stay
    with np.errstate(divide="ignore", invalid="ignore"):
        conv = ((leave - lost) / leave).where(leave > 0)
    monthly = pd.DataFrame({"month": pd.to_datetime(rows.index), "conversion": conv.to_numpy(),
                            "left": leave.to_numpy()})
    before = monthly[monthly["month"] < cm]
    after = monthly[monthly["month"] >= cm]
    pooled = lambda m: float(((m["conversion"] * m["left"]).sum()) / max(m["left"].sum(), 1))  # noqa: E731
    text = (f"Raw monthly conversion at {stage}: {_pct(pooled(before), 1)} over {len(before)} months before "
            f"{_months_label(cm)} and {_pct(pooled(after), 1)} over {len(after)} months after.")
    fig = plots.change_history_chart(monthly, change_month=cm, stage=stage)
    return Section(f"Monthly conversion at {stage}", text, fig, None)
