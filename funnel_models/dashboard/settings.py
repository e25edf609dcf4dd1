"""What the dashboard starts with, read from the one parameter file family.

The dashboard reads the same :class:`~funnel_models.params.ParameterFile` as every other
command: the top level (data, model, sampler, seed, ``new_leads``, ``interval_level``)
plus its ``dashboard:`` section. The target, the window and the confidence default to the
``monthly_report`` section's, so ``funnel dashboard`` and ``funnel report`` answer the same
question with the same model; a target left out everywhere is derived from the data with
:func:`funnel_models.simulate.default_target`, the rule the report uses.

With no file, the dashboard reads ``parameters/default.yaml`` of the current directory,
else the copy shipped in the package (the report's lookup,
:func:`funnel_models.reports.runner.resolve_parameters`).

Examples
--------
>>> from funnel_models.params import parse_parameters
>>> p = parse_parameters({"source": "demo", "monthly_report": {"target_wins": 80, "window_months": 4}})
>>> s = dashboard_settings(p)
>>> s.target, s.window, s.confidence, s.target_unit
(80.0, 4, 0.8, 'wins')
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..params import ParameterFile
from ..reports.notebooks import load_parameters

__all__ = ["DashboardSettings", "dashboard_settings", "load_dashboard_parameters"]


@dataclass(frozen=True)
class DashboardSettings:
    """Starting values of the controls and the precision of the answers.

    Attributes
    ----------
    title : str
    target : float or None
        Starting target in ``target_unit``; None: derived from the data (see the module
        docstring).
    target_from : str
        Where the target came from: ``"dashboard"``, ``"monthly_report"`` or ``"data"``.
    target_unit : {"wins", "revenue"}
    window : int
        Months 1..window after the cut-off month in which the target counts.
    confidence : float
        Required P(hit).
    new_leads : float or None
        Planned new leads per month (None: the mean of the last 3 months).
    draws, forecast_draws, leverage_draws : int
        Posterior draws behind the headline, the fan chart and the bottleneck ranking.
    seed : int
    interval_level : float
        Central interval level of the bottleneck ranking.
    """

    title: str
    target: float | None
    target_from: str
    target_unit: str
    window: int
    confidence: float
    new_leads: float | None
    draws: int
    forecast_draws: int
    leverage_draws: int
    seed: int
    interval_level: float


def dashboard_settings(params: ParameterFile) -> DashboardSettings:
    """The dashboard's settings: its own section, falling back to the monthly report's."""
    d, m = params.dashboard, params.monthly_report
    if d.target is not None:
        target, source = float(d.target), "dashboard"
    elif m.target_wins is not None and d.target_unit == "wins":
        target, source = float(m.target_wins), "monthly_report"
    else:
        target, source = None, "data"
    return DashboardSettings(
        title=d.title, target=target, target_from=source, target_unit=d.target_unit,
        window=d.window_months if d.window_months is not None else m.window_months,
        confidence=d.confidence if d.confidence is not None else m.confidence,
        new_leads=params.new_leads, draws=d.draws, forecast_draws=d.forecast_draws,
        leverage_draws=d.leverage_draws, seed=params.seed, interval_level=params.interval_level)


def load_dashboard_parameters(path: str | Path | None = None) -> tuple[ParameterFile, Path]:
    """The validated parameter file of a dashboard and where it was found.

    Parameters
    ----------
    path : path, optional
        A parameter file, or a bare name looked up in ``./parameters`` and then in the
        package's templates; None: ``default.yaml`` (the monthly report's defaults).

    Raises
    ------
    ParameterError
        Missing file, unknown key (with the closest valid key), bad value.
    """
    found, params, _notebook = load_parameters(path)
    return params, found
