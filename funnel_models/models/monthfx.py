"""Month-to-month variation of the Markov model: month effects and seasonality on monthly totals.

Whole months differ by more than binomial noise (quarter-end pushes, holidays,
campaigns). This is the model's second stage. For every source row ``r`` and month ``t``
the moves out of ``r`` are summed over segments and ages, and their expected split under
the first stage (posterior mean over the lead-level cells of that month) becomes a known
offset on the log-odds::

    y[t, r] ~ Multinomial(N[t, r], softmax(offset[t, r] + [0, month[t, s] + season[pos(t), s]]))
    month[t, s] = sigma_common * c[t] + sigma_month[r] * z[t, s],  c, z ~ Normal(0, 1)
    sigma_common ~ HalfNormal(common_sigma),  sigma_month ~ HalfNormal(month_sigma)
    (each row's sampled non-centered, the common one centered when it carries the months;
    when that fails the sampler checks, again with a careful sampler,
    then under ``parameterization: auto`` with the rows whose months differ by more than
    their sampling noise centered, see :func:`centered_rows` and :func:`_attempts`; the
    best fit is kept)
    season = sigma_season * ZeroSumNormal(1) over the seasonal positions

with ``s`` the slots of row ``r`` (the same linear predictor as the first stage). The
common part ``c[t]`` moves every move out of every row alike (a quarter-end push, a holiday:
a busy or a quiet month for the whole funnel); it is there when at least two rows have
moves, and without it a deal that needs three moves would carry three independent month
errors where the real ones add up. Forecasts draw a fresh ``month`` for every future month
with the fitted ``sigma_common`` and ``sigma_month`` (paired with the first stage's draws by
index) and add the seasonal offset of the calendar month.

Whether month effects are worth having (``month_effects: auto``) is decided by PSIS-LOO on
the month-row totals, against the first stage alone (:mod:`funnel_models.models.selection`);
both candidates use the same plug-in offset (the first stage's posterior mean), so neither
is favoured by ignoring the first stage's uncertainty.
Working on totals keeps the second stage small (months x rows observations), so it samples
in seconds; fitting month effects jointly with every lead-level cell was measured at about
15x the sampling time (ARCHITECTURE.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .base import check_diagnostics
from .config import ModelConfig, SamplerConfig
from .graph import scaled_normal
from .predictor import log_probabilities, pointwise_loglik
from .sampling import data_container, sample_compiled
from .structure import SEASON_LENGTH, Design, season_index
from .idata_access import quiet_import

__all__ = ["MonthTotals", "month_totals", "MonthEffects", "fit_month_effects", "shares_months", "average_month_error",
           "MONTH_LABELS"]


@dataclass(frozen=True)
class MonthTotals:
    """Moves out of every row summed per month, with their first-stage expectation."""

    counts: np.ndarray          # (n_tr, Dmax)
    slot: np.ndarray            # (n_tr, Dmax - 1)
    row: np.ndarray             # (n_tr,)
    month: np.ndarray           # (n_tr,)
    season: np.ndarray          # (n_tr,)
    n_slots: int
    cell: np.ndarray            # (n_obs,) index of each fine observation's month-row total

    def design(self, offset: np.ndarray | None) -> dict[str, Any]:
        """Predictor input with a given offset (n_tr, Dmax - 1)."""
        n = len(self.row)
        return {"slot": self.slot, "month": self.month, "season": self.season, "age": np.zeros(n, np.int64),
                "active": np.zeros((n, 0)), "offset": offset}


def month_totals(fine: Design) -> MonthTotals:
    """Group the lead-level observations of ``fine`` (a by-month design) by month and row."""
    key = fine.month * len(fine.rows) + fine.row
    uniq, cell = np.unique(key, return_inverse=True)
    counts = np.zeros((uniq.size, fine.counts.shape[1]), dtype=np.int64)
    np.add.at(counts, cell, fine.counts)
    first = np.zeros(uniq.size, dtype=np.int64)
    first[cell[::-1]] = np.arange(fine.n_obs)[::-1]               # one observation of each total
    return MonthTotals(counts=counts, slot=fine.slot[first], row=fine.row[first], month=fine.month[first],
                       season=season_index([fine.months[t] for t in fine.month[first]], fine.season_kind),
                       n_slots=fine.n_slots, cell=cell)


def _expected(totals: MonthTotals, fine: Design, probs: np.ndarray) -> np.ndarray:
    """Expected split of every total, (n_tr, Dmax), from fine-cell probabilities (n_obs, Dmax)."""
    out = np.zeros(totals.counts.shape)
    np.add.at(out, totals.cell, probs * fine.counts.sum(1)[:, None])
    return out / np.clip(out.sum(-1, keepdims=True), 1e-300, None)


def _offset(p: np.ndarray) -> np.ndarray:
    """Log-odds of every destination against the reference (column 0)."""
    lp = np.log(np.clip(p, 1e-300, None))
    return lp[..., 1:] - lp[..., :1]


@dataclass(frozen=True)
class MonthEffects:
    """The fitted second stage.

    Attributes
    ----------
    fits : dict
        Candidate (month effects on?) -> InferenceData of ``sigma_month``,
        ``sigma_common`` and ``season`` draws, or None when the candidate has no
        parameters (no month effects, no season).
    loglik : dict
        Pointwise log-likelihood of the month-row totals per candidate label, (draws, n_tr).
    notes : tuple of str
        What the fit did on its own (a second try in the other geometry).
    """

    fits: Mapping[bool, Any]
    loglik: Mapping[str, np.ndarray]
    notes: tuple[str, ...] = ()


#: Labels of the second-stage candidates.
MONTH_LABELS = {False: "no month effects", True: "month effects"}


#: Fewer months leave the common shock's scale weakly identified, where centered sampling
#: struggles (Olist, 5 months: centered failed the sampler checks, non-centered passed).
COMMON_CENTERED_MONTHS = 12


def centered_rows(totals: MonthTotals, expected: np.ndarray, config: ModelConfig, n_rows: int) -> np.ndarray:
    """Which month effects are sampled centered, (n_rows + 1,) bool: each row's, then the
    shock common to every row.

    Under ``parameterization: auto`` a row is centered when its months differ by more than
    their sampling noise: on the log-odds of leaving the reference destination, observed
    against the first stage's expectation, the spread between months beyond the noise
    (a method-of-moments estimate, as in random-effects meta-analysis) exceeds the mean
    sampling variance. Then the totals pin every month's effect down and the centered
    geometry mixes well; where the months barely differ (a scale near zero) the
    non-centered one does. The common shock is centered, given at least
    :data:`COMMON_CENTERED_MONTHS` months, when the rows' precision-weighted
    average deviation differs between months beyond its noise, alike, and the common shock
    carries more than half of that variance, its own variance estimated by the average
    covariance of two rows' deviations over the months (a shock of one row alone adds
    variance to the average but no covariance).
    """
    if config.parameterization != "auto":
        return np.full(n_rows + 1, config.parameterization == "centered")
    n = totals.counts.sum(-1) + 1.0
    y = totals.counts[:, 1:].sum(-1) + 0.5
    e = np.clip(expected[:, 1:].sum(-1), 1e-6, 1 - 1e-6)
    dev = np.log(y / (n - y)) - np.log(e / (1 - e))
    noise = 1.0 / (n * e * (1 - e))
    out = np.zeros(n_rows + 1, dtype=bool)
    for r in range(n_rows):
        mine = totals.row == r
        if mine.sum() > 1:
            out[r] = _beyond_noise(dev[mine], noise[mine])
    months, t = np.unique(totals.month, return_inverse=True)
    if shares_months(totals) and months.size >= COMMON_CENTERED_MONTHS:
        w = np.bincount(t, 1.0 / noise)
        average = np.bincount(t, dev / noise) / w
        out[n_rows] = _beyond_noise(average, 1.0 / w) and \
            2.0 * _common_variance(dev, totals.row, t, n_rows, months.size) > average.var(ddof=1)
    return out


def _common_variance(dev: np.ndarray, row: np.ndarray, t: np.ndarray, n_rows: int, n_months: int) -> float:
    """Average covariance over the months of two rows' deviations (rows with 3+ months in common)."""
    table = np.full((n_rows, n_months), np.nan)
    table[row, t] = dev
    covs = []
    for r in range(n_rows):
        for q in range(r + 1, n_rows):
            both = np.isfinite(table[r]) & np.isfinite(table[q])
            if both.sum() > 2:
                covs.append(np.cov(table[r, both], table[q, both])[0, 1])
    return float(np.mean(covs)) if covs else 0.0


def _beyond_noise(dev: np.ndarray, noise: np.ndarray) -> bool:
    """Whether deviations spread beyond their sampling noise by more than that noise."""
    return bool(dev.var(ddof=1) - noise.mean() > noise.mean())


def shares_months(totals: MonthTotals) -> bool:
    """Whether the month graph has a month shock common to every row: at least two rows have moves."""
    has_moves = (totals.slot < totals.n_slots).any(axis=1)
    return np.unique(totals.row[has_moves]).size >= 2


#: Inputs of the month graph held in data containers (named ``m_<input>``), so a compiled
#: graph serves other totals of the same shapes; the rest of :meth:`MonthTotals.design` is
#: constant.
_DATA_INPUTS = ("offset", "counts", "slot", "month", "season")


def _inputs(totals: MonthTotals, offset: np.ndarray) -> dict[str, Any]:
    """Every input of the month graph's likelihood (predictor inputs and counts)."""
    return {**totals.design(offset), "counts": totals.counts}


def _month_data(inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The values of the month graph's data containers, from :func:`_inputs`."""
    return {f"m_{k}": inputs[k] for k in _DATA_INPUTS}


def _graph(totals: MonthTotals, offset: np.ndarray, centered: np.ndarray, config: ModelConfig, n_rows: int,
           season_kind: str, n_months: int, with_month: bool, static_shape: bool) -> Any:
    pm = quiet_import("pymc")
    import pytensor.tensor as pt
    pri = config.priors
    slot_row = np.zeros(totals.n_slots, dtype=np.int64)
    for r, s in zip(totals.row, totals.slot):
        slot_row[s[s < totals.n_slots]] = r
    coords = {"row_m": list(range(n_rows)), "mt": list(range(n_months)), "slot_m": list(range(totals.n_slots)),
              "season_pos": list(range(SEASON_LENGTH[season_kind]))}
    with pm.Model(coords=coords) as model:
        theta: dict[str, Any] = {"intercept": pt.zeros((totals.n_slots,))}
        if with_month:
            sig = pm.HalfNormal("sigma_month", pri.month_sigma, dims="row_m")
            month = scaled_normal(pm, pt, "monthz", sig[slot_row][None, :], centered[slot_row][None, :],
                                  ("mt", "slot_m"))
            if shares_months(totals):
                sig_c = pm.HalfNormal("sigma_common", pri.common_sigma)
                month = month + scaled_normal(pm, pt, "commonz", sig_c, centered[n_rows:], ("mt",))[:, None]
            theta["month"] = pm.Deterministic("month", month, dims=("mt", "slot_m"))
        if season_kind != "none":
            sig_s = pm.HalfNormal("sigma_season", pri.season_sigma)
            zs = pm.ZeroSumNormal("seasonz", sigma=1.0, dims=("season_pos", "slot_m"), n_zerosum_axes=1)
            theta["season"] = pm.Deterministic("season", zs * sig_s, dims=("season_pos", "slot_m"))
        data = _inputs(totals, offset)
        data.update({k[2:]: data_container(pm, k, v, static_shape) for k, v in _month_data(data).items()})
        lp = log_probabilities(theta, data, n_slots=totals.n_slots, xp=pt)
        pm.Potential("month_loglik", pt.sum(data["counts"] * lp))
    return model


def fit_month_effects(fine: Design, mean_probs: np.ndarray, n_draws: int, config: ModelConfig,
                      sampler: SamplerConfig, candidates: tuple[bool, ...], progress: bool
                      ) -> tuple[MonthEffects, dict[str, float]]:
    """Fit the second stage for every candidate (without / with month effects).

    Parameters
    ----------
    fine : Design
        The lead-level observations by month.
    mean_probs : ndarray (n_obs, Dmax)
        First-stage posterior-mean probabilities of the fine observations.
    n_draws : int
        Draws of the first stage (the parameter-free candidate's log-likelihood is repeated
        over them).
    candidates : tuple of bool
        Fit without (False) and/or with (True) month effects.
    """
    from scipy.special import gammaln

    from . import idata_access as acc
    totals = month_totals(fine)
    expected = _expected(totals, fine, mean_probs)
    centered = centered_rows(totals, expected, config, len(fine.rows))
    offset = _offset(expected)
    values = _month_data(_inputs(totals, offset))
    n = totals.counts.sum(-1)
    coef = gammaln(n + 1.0) - gammaln(totals.counts + 1.0).sum(-1)
    fits: dict[bool, Any] = {}
    loglik: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    notes: list[str] = []
    for with_month in candidates:
        if not with_month and fine.season_kind == "none":
            # the same plug-in offset as the fitted candidates, so the comparison is fair
            lp = np.log(np.clip(expected, 1e-300, None))
            ll = coef + np.where(totals.counts > 0, totals.counts * lp, 0.0).sum(-1)
            loglik[MONTH_LABELS[False]] = np.broadcast_to(ll, (n_draws, ll.size)).copy()
            fits[False] = None
            continue
        best: tuple[Any, Any] | None = None                  # (fit, its diagnostics)
        for geometry, how in _attempts(centered, config, sampler):
            key = f"month;{fine.signature()};{config.priors.model_dump_json()};{with_month};{geometry.tolist()}"
            other, t = sample_compiled(key, lambda static, wm=with_month, g=geometry: _graph(
                totals, offset, g, config, len(fine.rows), fine.season_kind, len(fine.months), wm, static),
                values, how, progress)
            for k, v in t.items():
                timings[k] = timings.get(k, 0.0) + v
            # month and season are sums of the checked scales and standard-normal effects
            diag = check_diagnostics(acc.diagnostics(other, skip=("month", "season")))
            if best is None or diag.better_than(best[1]):
                best = (other, diag)
            if best[1].ok:
                break
            common = " and the common shock" if geometry[-1] else ""
            notes.append(f"month effects did not converge with rows {np.flatnonzero(geometry[:-1]).tolist()}"
                         f"{common} centered (tuning {how.tune}, target acceptance {how.target_accept:g}); "
                         f"sampled again")
        assert best is not None
        idata = best[0]
        theta = {"intercept": np.zeros((acc.n_draws(idata), totals.n_slots))}
        for name in ("month", "season"):
            if acc.has(idata, name):
                theta[name] = acc.draws(idata, name)
        loglik[MONTH_LABELS[with_month]] = pointwise_loglik(theta, totals.design(offset), totals.counts,
                                                            n_slots=totals.n_slots)
        fits[with_month] = idata
    return MonthEffects(fits=fits, loglik=loglik, notes=tuple(notes)), timings


def average_month_error(fine: Design, sigma_month: np.ndarray | None, sigma_common: np.ndarray | None,
                        seed: int) -> np.ndarray | None:
    """Error of the average month's log-odds per draw and slot, (draws, n_slots), or None.

    The first stage reads every month as the average month, so its rates are as sure as
    binomial noise allows. With month shocks of scale ``sigma_month`` (draws, rows) seen in
    ``T`` months, the average month is only known to within ``sigma_month / sqrt(T)``: the
    error a joint fit of both stages would carry, drawn here per posterior draw. The shock
    common to every row, ``sigma_common`` (draws,), adds one error shared by every slot
    (``sigma_common / sqrt(T)``, ``T`` the months observed), so the errors of a path's moves
    add up as the months' shocks did.
    """
    if sigma_month is None:
        return None
    rng = np.random.default_rng([seed, 1])
    months = np.array([max(np.unique(fine.month[fine.row == r]).size, 1) for r in range(len(fine.rows))])
    scale = (sigma_month / np.sqrt(months))[:, fine.slot_row]
    out = scale * rng.standard_normal(scale.shape)
    if sigma_common is not None:
        shared = sigma_common / np.sqrt(max(np.unique(fine.month).size, 1))
        out += shared[:, None] * rng.standard_normal((len(sigma_common), 1))
    return out


def _attempts(centered: np.ndarray, config: ModelConfig, sampler: SamplerConfig
              ) -> list[tuple[np.ndarray, SamplerConfig]]:
    """The (geometry, sampler) pairs to try in turn, until one passes the sampler checks.

    Every row non-centered first (few months leave a row's scale weakly identified, where
    centered sampling struggles; the common shock, pooled over every row, as
    :func:`centered_rows` says), with the file's sampler settings; then the same geometry
    with a careful sampler (tuning at least 1,000 steps, target acceptance 0.95: smaller
    steps through the funnel of a scale near zero); then, under ``parameterization: auto``,
    the rows :func:`centered_rows` picks centered, carefully. The careful sampler is not the
    first try because it takes about twice the leapfrog steps per draw (demo: 31 vs 15), and
    this stage is sampled on every fit (measurements in ARCHITECTURE.md).
    """
    careful = sampler.careful()
    first = centered.copy()
    if config.parameterization == "auto":
        first[:-1] = False
    out = [(first, sampler), (first, careful)]
    if config.parameterization == "auto" and centered[:-1].any():
        out.append((centered, careful))
    return out
