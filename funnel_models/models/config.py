"""Model, prior and sampler configuration (pydantic; unknown keys are errors).

Defaults are weakly informative on the log-odds scale against staying in a stage:

- ``intercept_sigma = 2.0``: a monthly move probability anywhere from ~1% to ~99%;
- ``segment_sigma = 0.5``: the scale of a segment factor's effects is half-normal(0.5), so
  a segment typically shifts the odds by a factor within about 0.4-2.7;
- ``rw_sigma = 0.1``: month-to-month drift of the log-odds, half-normal(0.1);
- ``change_sigma = 1.0``: a process change's effect on the log-odds, normal(0, 1).

They are checked with :meth:`FunnelModel.sample_prior_predictive` in the tests.
"""
from __future__ import annotations

import json
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ModelConfigError

__all__ = ["Priors", "ChangePointConfig", "ModelConfig", "SamplerConfig", "parse_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Priors(_Strict):
    """Prior scales of the funnel model (see the module docstring)."""

    intercept_sigma: float = Field(2.0, gt=0)
    segment_sigma: float = Field(0.5, gt=0)
    rw_sigma: float = Field(0.1, gt=0)
    change_sigma: float = Field(1.0, gt=0)


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


class ModelConfig(_Strict):
    """Structure of the Bayesian funnel model.

    Attributes
    ----------
    factors : list of str
        Segment factors pooled partially (one scale per factor).
    time_varying : bool
        Smooth monthly variation of every move (non-centered random walk).
    change_points : list of ChangePointConfig
    parameterization : "auto", "centered" or "non_centered"
        Of the segment effects. ``auto`` picks centered for factors whose smallest
        level has at least ``centered_min_count`` transitions out of every stage.
    centered_min_count : int
    priors : Priors
    """

    factors: list[str] = []
    time_varying: bool = False
    change_points: list[ChangePointConfig] = []
    parameterization: Literal["auto", "centered", "non_centered"] = "auto"
    centered_min_count: int = Field(100, ge=1)
    priors: Priors = Priors()


class SamplerConfig(_Strict):
    """How to sample: nutpie by default, PyMC's NUTS as a fallback."""

    sampler: Literal["nutpie", "pymc"] = "nutpie"
    draws: int = Field(500, ge=10)
    tune: int = Field(400, ge=10)
    chains: int = Field(4, ge=1)
    seed: int = 0
    low_rank: bool = False
    target_accept: float = Field(0.85, gt=0, lt=1)
    progress: bool = True


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
