"""Subcommands of the ``funnel`` CLI, one module each (see :mod:`funnel_models.cli`)."""
