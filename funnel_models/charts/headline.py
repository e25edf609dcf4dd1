"""The words next to the leads-needed answer, shared by the dashboard and the monthly report.

:class:`HeadlineFacts` holds the four facts a sales manager needs beside "leads needed":
today's new leads per month, the open pipeline's share of the target, the typical months
from lead to win, and the spreadsheet's reverse-funnel answer with why it differs.
:func:`headline_items` says them in sentences (``strong`` marks the key numbers: the
dashboard passes an HTML ``<b>`` wrapper, the report plain text). :func:`lever_text`
says whether a lever is relative or absolute.

Examples
--------
>>> f = HeadlineFacts(volume=200.0, needed=260, ratio_to_volume=1.3, target_wins=240.0, pipeline_leads=900,
...                   pipeline_wins=60.0, pipeline_share=0.25, pipeline_probability=0.0, cycle_months=3.0,
...                   min_months=1, naive_leads=220, naive_rate=0.2, naive_probability=0.3, window=6)
>>> [label for label, _ in headline_items(f)]
['Today', 'Pipeline', 'Time to win', 'Spreadsheet']
>>> lever_text("stall 1 month shorter")
'stall 1 month shorter (absolute: whole months in the stage)'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["HeadlineFacts", "headline_items", "spreadsheet_sentence", "lever_text", "lever_kind", "months_to_win_text"]


def months_to_win_text(months: float) -> str:
    """When a won lead is typically won, counted from the month it entered.

    Examples
    --------
    >>> months_to_win_text(0.0), months_to_win_text(1.0), months_to_win_text(8.0)
    ('in the month it enters', '1 month after it enters', '8 months after it enters')
    """
    if not np.isfinite(months):
        return "at an unknown time (no wins in the horizon)"
    m = int(round(months))
    return "in the month it enters" if m == 0 else f"{m} month{'s' if m != 1 else ''} after it enters"


def _plain(s: str) -> str:
    return s


@dataclass(frozen=True)
class HeadlineFacts:
    """The facts behind the headline.

    Attributes
    ----------
    volume : float
        Today's new leads per month (mean of the last 3 months; NaN when unknown).
    needed : int or None
        New leads per month the model needs (None: not reachable).
    ratio_to_volume : float
        ``needed / volume``.
    target_wins, pipeline_leads, pipeline_wins, pipeline_share, pipeline_probability
        The target in wins, the open leads, the wins they are expected to bring, that as a
        share of the target, and P(hit) from the pipeline alone.
    cycle_months : float
        Typical (median) months from a new lead's entry to its win.
    min_months : int or None
        Fewest months after its entry month a new lead can be won.
    naive_leads, naive_rate, naive_probability
        The spreadsheet plan (target / win rate spread over the window), its win rate and
        the probability it hits.
    window : int
        Months of the target window.
    """

    volume: float
    needed: int | None
    ratio_to_volume: float
    target_wins: float
    pipeline_leads: int
    pipeline_wins: float
    pipeline_share: float
    pipeline_probability: float
    cycle_months: float
    min_months: int | None
    naive_leads: int | None
    naive_rate: float
    naive_probability: float
    window: int


def spreadsheet_sentence(f: HeadlineFacts, strong: Callable[[str], str] = _plain) -> str:
    """What the spreadsheet reverse funnel answers and why the model's answer differs."""
    if f.naive_leads is None:
        return "The spreadsheet rule has no answer: the stage conversions multiply to zero."
    base = (f"The spreadsheet divides the target by the win rate ({f.naive_rate:.1%}, the product of the stage "
            f"conversions) and spreads it over the {f.window} months: {strong(f'{f.naive_leads:,}')} leads a month, "
            f"which would hit the target with P = {f.naive_probability:.0%}.")
    if f.needed is None or f.needed == f.naive_leads:
        return base
    late = np.isfinite(f.cycle_months) and f.cycle_months >= 1
    if f.needed > f.naive_leads:
        why = ("It ignores the months deals take: leads entering late in the window close after it"
               if late else "It ignores chance: the plan must hold in bad months too")
        return f"{base} It asks for too few. {why}."
    return (f"{base} It asks for too many: it ignores the wins the open pipeline brings"
            + (" and treats every lead as starting from nothing." if f.pipeline_wins > 0 else "."))


def headline_items(f: HeadlineFacts, strong: Callable[[str], str] = _plain) -> list[tuple[str, str]]:
    """``(label, sentence)`` pairs: today's volume, the pipeline's share, time to win, the spreadsheet."""
    items = []
    if np.isfinite(f.volume):
        vs = (f" The answer is {strong(f'{f.ratio_to_volume:.1f}×')} that." if np.isfinite(f.ratio_to_volume)
              and f.needed else "")
        items.append(("Today", f"about {strong(f'{f.volume:,.0f}')} new leads a month (mean of the last 3 "
                               f"months).{vs}"))
    share = f"{f.pipeline_share:.0%}" if np.isfinite(f.pipeline_share) else "–"
    items.append(("Pipeline", f"the {f.pipeline_leads:,} open leads are expected to bring "
                              f"{strong(f'{f.pipeline_wins:,.0f}')} of the {f.target_wins:,.0f} wins ({share} of the "
                              f"target); alone they hit it with P = {f.pipeline_probability:.0%}."))
    if np.isfinite(f.cycle_months):
        first = f"; the fastest {months_to_win_text(f.min_months)}" if f.min_months is not None else ""
        items.append(("Time to win", f"a won lead typically closes {strong(months_to_win_text(f.cycle_months))} "
                                     f"(median{first}), so leads entering late in the "
                                     f"{f.window}-month window mostly close after it."))
    items.append(("Spreadsheet", spreadsheet_sentence(f, strong)))
    return items


def lever_kind(lever: str) -> str:
    """``"relative"`` for a conversion lever (a share of the stage's own conversion),
    ``"absolute"`` for a stall lever (whole months), ``""`` otherwise."""
    s = str(lever)
    return "relative" if s.startswith("conversion") else "absolute" if s.startswith("stall") else ""


def lever_text(lever: str) -> str:
    """A leverage row's lever with its kind: conversion changes are relative, stall
    changes are absolute months."""
    s = str(lever)
    kind = lever_kind(s)
    if kind == "relative":
        return f"{s} (relative: of the stage's own conversion)"
    if kind == "absolute":
        return f"{s} (absolute: whole months in the stage)"
    return s
