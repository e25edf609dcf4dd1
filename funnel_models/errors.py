"""Exception types raised by funnel_models.

Every error a user can cause derives from :class:`FunnelError`, so scripts can catch one
type. The messages name the file, the column, the offending rows and the fix.
"""
from __future__ import annotations

__all__ = [
    "FunnelError",
    "SpecError",
    "FunnelDataError",
    "StoreBusyError",
    "ModelConfigError",
    "SimulationError",
    "ReportError",
    "ParameterError",
    "FunnelWarning",
]


class FunnelError(Exception):
    """Base class of every error raised on purpose by funnel_models."""


class SpecError(FunnelError, ValueError):
    """The funnel spec (stages, status codes, column mapping) is invalid."""


class FunnelDataError(FunnelError, ValueError):
    """Input data is malformed: missing columns, bad dates, unknown codes, ..."""


class StoreBusyError(FunnelError, RuntimeError):
    """The store file is in use by another process (a temporary condition: retry, or wait
    for it with ``--wait SECONDS``). The command line exits with status 3."""


class ModelConfigError(FunnelError, ValueError):
    """A model, prior or sampler configuration is invalid or does not match."""


class SimulationError(FunnelError, ValueError):
    """Simulator arguments are invalid, or the question has no answer."""


class ParameterError(FunnelError, ValueError):
    """A report parameter file is invalid (unknown key, wrong type, ...)."""


class ReportError(FunnelError, RuntimeError):
    """A report notebook failed while executing."""


class FunnelWarning(UserWarning):
    """Warnings about suspicious but usable data or settings."""
