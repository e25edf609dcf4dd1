"""Model, prior and sampler configuration (pydantic; unknown keys are errors).

Defaults are weakly informative on the log-odds scale against staying in a stage:

- ``intercept_sigma = 2.0``: a monthly move probability anywhere from ~1% to ~99%;
- ``segment_sigma = 0.5``: the scale of a segment factor's effects is half-normal(0.5), so
  a segment typically shifts the odds by a factor within about 0.4-2.7;
- ``rw_sigma = 0.1``: month-to-month drift of the log-odds, half-normal(0.1);
- ``change_sigma = 1.0``: a process change's effect on the log-odds, normal(0, 1);
- ``age_sigma = 0.5``: step of the log-odds from one age bucket to the next, half-normal(0.5);
- ``month_sigma = 0.5``: spread of a whole month's shock on the log-odds, half-normal(0.5);
- ``common_sigma = 0.5``: spread of the part of a month's shock shared by every move (a busy
  or a quiet month for the whole funnel), half-normal(0.5);
- ``season_sigma = 0.3``: spread of the seasonal effects, half-normal(0.3).

They are checked with :meth:`FunnelModel.sample_prior_predictive` in the tests.
"""
from __future__ import annotations

import json
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ModelConfigError

__all__ = ["Priors", "ChangePointConfig", "ModelConfig", "SamplerConfig", "parse_config", "COLD_SHARE"]

#: ``cold_after: auto`` cuts where fewer than this share of the observed moves on happen later.
COLD_SHARE = 0.02


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Priors(_Strict):
    """Prior scales of the funnel model (see the module docstring)."""

    intercept_sigma: float = Field(2.0, gt=0)
    segment_sigma: float = Field(0.5, gt=0)
    rw_sigma: float = Field(0.1, gt=0)
    change_sigma: float = Field(1.0, gt=0)
    age_sigma: float = Field(0.5, gt=0)
    month_sigma: float = Field(0.5, gt=0)
    common_sigma: float = Field(0.5, gt=0)
    season_sigma: float = Field(0.3, gt=0)


class ChangePointConfig(_Strict):
    """A known process change at ``stage`` from ``month`` (YYYY-MM) on."""

    stage: str
    month: str
    name: str = ""

    @field_validator("month")
    @classmethod
    def _month(cls, v: str) -> str:
        try:
            return pd.Timestamp(v).to_period("M").strftime("%Y-%m")
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"month must look like YYYY-MM, got {v!r}") from exc


Switch = Literal["auto", "on", "off"]


class ModelConfig(_Strict):
    """Structure of the Bayesian funnel model.

    Attributes
    ----------
    factors : list of str
        Segment factors pooled partially (one scale per factor).
    time_in_stage : "auto", "on" or "off"
        Move probabilities that depend on the months already spent in the stage
        (piecewise constant over ``age_buckets``, random-walk prior across buckets that
        shrinks toward the memoryless chain). ``auto`` chooses by leave-one-out
        predictive accuracy (:mod:`funnel_models.models.selection`).
    age_buckets : list of int
        First month of each age bucket (0, 1, 2, 3-5, 6-11, 12+ by default).
    cold_after : int or "auto"
        Months in a stage without moving after which a lead counts as cold for eventual
        quantities. ``auto``: the first bucket start after which fewer than
        :data:`COLD_SHARE` of the observed moves on (advances and wins) happen.
    month_effects : "auto", "on" or "off"
        Month-to-month variation beyond binomial noise: a hierarchical effect of every
        month on every move (drawn afresh for future months in forecasts).
    seasonality : "none", "month_of_year" or "quarter"
        A seasonal effect on every move (by calendar month, or by position in the quarter).
    time_varying : bool
        Smooth drift of every move over months (non-centered random walk).
    change_points : list of ChangePointConfig
    parameterization : "auto", "centered" or "non_centered"
        Of every hierarchical effect: segment effects, each row's time-in-stage walk and
        each row's month effects. ``auto`` picks centered where the data pin the effects
        down: factors whose smallest cell has at least ``centered_min_count`` moves out of
        a stage, rows with at least ``centered_min_count`` moves in every age bucket, rows
        whose months differ by more than their sampling noise; non-centered elsewhere. It
        refits the first stage in the other geometry when the sampler reports problems.
    centered_min_count : int
    priors : Priors
    """

    factors: list[str] = []
    time_in_stage: Switch = "auto"
    age_buckets: list[int] = [0, 1, 2, 3, 6, 12]
    cold_after: int | Literal["auto"] = "auto"
    month_effects: Switch = "auto"
    seasonality: Literal["none", "month_of_year", "quarter"] = "none"
    time_varying: bool = False
    change_points: list[ChangePointConfig] = []
    parameterization: Literal["auto", "centered", "non_centered"] = "auto"
    centered_min_count: int = Field(100, ge=1)
    priors: Priors = Priors()

    @field_validator("age_buckets")
    @classmethod
    def _buckets(cls, v: list[int]) -> list[int]:
        if not v or v[0] != 0 or any(b <= a for a, b in zip(v, v[1:])) or v[-1] > 120:
            raise ValueError(f"age_buckets must start at 0 and increase (months in stage, at most 120), got {v}")
        return v

    @field_validator("cold_after")
    @classmethod
    def _cold(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 120:
            raise ValueError(f"cold_after must be between 1 and 120 months, got {v}")
        return v


class SamplerConfig(_Strict):
    """How to sample: nutpie by default, PyMC's NUTS as a fallback."""

    sampler: Literal["nutpie", "pymc"] = "nutpie"
    #: nutpie's compiler: ``jax`` (compiles in seconds, samples slowly), ``numba`` (compiles
    #: for 20-100 s, samples 5-12x faster; a compiled graph serves every later fit of the same
    #: structure in the process) or ``auto`` (default: JAX for one fit, Numba where a process
    #: fits several, see :meth:`for_several_fits`). Measurements in ARCHITECTURE.md.
    backend: Literal["auto", "jax", "numba"] = "auto"
    draws: int = Field(1000, ge=10, le=20_000)
    tune: int = Field(500, ge=10, le=20_000)
    chains: int = Field(4, ge=1, le=16)
    seed: int = 0
    low_rank: bool = False
    target_accept: float = Field(0.85, gt=0, lt=1)
    progress: bool = True
    #: JAX only: sample the chains in 1 or 2 processes (``auto``: 2 on a machine with two
    #: or more cores for a full-size fit, see :func:`~funnel_models.models.chainsplit.processes_for`);
    #: Numba samples its chains on threads of one process.
    processes: Literal["auto", 1, 2] = "auto"

    def careful(self) -> "SamplerConfig":
        """These settings with smaller steps and longer tuning (target acceptance 0.95,
        at least 1,000 tuning steps): the second try of a fit that failed the sampler
        checks (about twice the leapfrog steps per draw; ARCHITECTURE.md)."""
        return self.model_copy(update={"tune": max(self.tune, 1000), "target_accept": max(self.target_accept, 0.95)})

    def for_several_fits(self) -> "SamplerConfig":
        """These settings for a process that fits several models (a batch of reports, a
        backtest's windows): ``backend: auto`` becomes ``numba``, whose compiled graph the
        later fits of the same structure reuse."""
        return self.model_copy(update={"backend": "numba"}) if self.backend == "auto" else self

    @property
    def compiler(self) -> str:
        """The nutpie backend a single fit uses (``auto``: JAX)."""
        return "jax" if self.backend == "auto" else self.backend


def parse_config(cls: type[_Strict], value: object, what: str) -> _Strict:
    """Merge user config (mapping, model or JSON) with defaults; clear error on bad keys."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        value = json.loads(value)
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        msgs = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            hint = ""
            if e["type"] == "extra_forbidden":
                import difflib
                close = difflib.get_close_matches(str(e["loc"][-1]), list(cls.model_fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {list(cls.model_fields)})"
            msgs.append(f"{what}.{loc}: {e['msg']}{hint}")
        raise ModelConfigError("invalid configuration:\n  - " + "\n  - ".join(msgs)) from None
