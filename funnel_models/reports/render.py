"""How a report section reaches the page: the :class:`Section` block, number formats, safe text.

Every data string that reaches the HTML goes through :func:`html.escape` or
``DataFrame.to_html(escape=True)``, and through :func:`public_text`, which removes the
paths of the machine that built the report (working folder, home folder, any absolute
path but its last part). Matplotlib figures are embedded as PNG images; Plotly figures
as interactive HTML with plotly.js embedded inline once per report (the first Plotly
figure of a context carries it, ``ctx.plotlyjs_embedded`` remembers it): never loaded
from a CDN, so the report opens offline. A segment called ``<script>alert(1)</script>``
is shown as text.

:func:`show` runs a section function in a notebook: warnings the toolkit raises on
purpose (:class:`~funnel_models.errors.FunnelWarning`) become the section's notes, other
libraries' warnings go to stderr (which the report runner moves to its log), so the
rendered report never shows a warning block.

Examples
--------
>>> pct(-0.001), pct(0.123, 1), signed(-0.2), signed(3)
('0%', '12.3%', '0', '+3')
>>> Section("Title", "A <b>bold</b> claim").header_html().count("&lt;b&gt;")
1
"""
from __future__ import annotations

import html
import io
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..errors import FunnelWarning

__all__ = ["Section", "show", "figure_png", "human_column", "is_plotly", "plotly_html", "pct", "signed", "month_label", "public_text", "capture",
           "WARN_STYLE"]

#: Style of the red warning box.
WARN_STYLE = ("border:2px solid #c0392b;background:#fdecea;color:#7b241c;padding:10px 14px;margin:8px 0;"
              "border-radius:4px;font-weight:600")
_ABS_PATH = re.compile(r"(?<![\w.~])(?:/[\w.+@-]+)+/([\w.+@-]+)")


@dataclass
class Section:
    """One block of a report: heading, interpretation, optional warning, figure, table, notes."""

    title: str
    text: str = ""
    #: A matplotlib or Plotly figure, or a list of them.
    figure: Any = None
    table: pd.DataFrame | None = None
    warning: str = ""
    note: str = ""
    level: int = 2
    #: Sentences shown as a bulleted list under the text (``"Label: sentence"`` pairs as tuples).
    points: list = field(default_factory=list)

    def header_html(self) -> str:
        """Heading, warning box and sentence as escaped HTML."""
        esc = lambda s: html.escape(public_text(s))  # noqa: E731
        parts = [f"<h{self.level}>{esc(self.title)}</h{self.level}>"]
        if self.warning:
            parts.append(f'<div style="{WARN_STYLE}">&#9888; {esc(self.warning)}</div>')
        if self.text:
            parts.append(f'<p style="font-size:1.05em">{esc(self.text)}</p>')
        if self.points:
            items = "".join(f"<li><b>{esc(p[0])}:</b> {esc(p[1])}</li>" if isinstance(p, tuple) else f"<li>{esc(p)}</li>"
                            for p in self.points)
            parts.append(f'<ul style="font-size:1.0em;max-width:1000px">{items}</ul>')
        return "\n".join(parts)

    def note_html(self) -> str:
        """The notes as an escaped, grey paragraph ('' when there are none)."""
        if not self.note:
            return ""
        return f'<p style="color:#555;font-size:0.9em">{html.escape(public_text(self.note))}</p>'

    def table_html(self) -> str:
        """The table as escaped HTML ('' when there is none), with readable column names
        (:func:`human_column`) and without columns that hold no value at all."""
        if self.table is None or self.table.empty:
            return ""
        tab = self.table.dropna(axis=1, how="all").copy()
        tab.columns = [human_column(c) for c in tab.columns]
        for c in tab.columns:
            if pd.api.types.is_float_dtype(tab[c]):
                tab[c] = tab[c] + 0.0                       # no '-0.00' for a negative zero
            elif pd.api.types.is_integer_dtype(tab[c]) and not pd.api.types.is_bool_dtype(tab[c]):
                tab[c] = tab[c].map(lambda v: f"{v:,}")     # 3,882 rather than 3882
            elif tab[c].dtype == object:
                tab[c] = tab[c].map(lambda v: public_text(v) if isinstance(v, str) else v)
        return tab.to_html(index=False, escape=True, border=0, na_rep="–", classes="funnel-table")

    def add_note(self, text: str) -> None:
        """Append a sentence to the notes."""
        self.note = f"{self.note} {text}".strip() if text not in self.note else self.note


_COVERAGE = re.compile(r"^coverage_(\d+)$")
_BOUND = re.compile(r"^(lo|hi)_(\d+)$")


def human_column(name: Any) -> str:
    """A table column as a reader names it: ``coverage_80`` -> ``80% interval coverage``,
    ``lo_80`` -> ``lo 80%``, any other ``snake_case`` -> ``snake case``.

    Examples
    --------
    >>> human_column("extra_wins_mean"), human_column("coverage_80"), human_column("MAE")
    ('extra wins mean', '80% interval coverage', 'MAE')
    """
    s = str(name)
    m = _COVERAGE.match(s)
    if m:
        return f"{m.group(1)}% interval coverage"
    m = _BOUND.match(s)
    if m:
        return f"{m.group(1)} {m.group(2)}%"
    return s.replace("_", " ")


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib figure (works without pyplot or an inline backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def is_plotly(fig: Any) -> bool:
    """Whether ``fig`` is a Plotly figure (rather than a matplotlib one)."""
    return hasattr(fig, "to_plotly_json")


def plotly_html(ctx: Any, fig: Any) -> str:
    """A Plotly figure as an HTML block of the report: the first one of ``ctx`` embeds
    plotly.js (inline, never from a CDN), later ones refer to it."""
    from ..charts.figures import figure_html
    first = not getattr(ctx, "plotlyjs_embedded", False)
    out = figure_html(fig, include_plotlyjs=first)
    ctx.plotlyjs_embedded = True
    return f'<div class="funnel-plotly" style="width:100%;max-width:1100px">{out}</div>'


def capture(notes: list[str], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; FunnelWarnings become ``notes`` (once each), other warnings go to stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    for w in caught:
        msg = str(w.message)
        if issubclass(w.category, FunnelWarning):
            if msg not in notes:
                notes.append(msg)
        else:
            print(f"{w.category.__name__}: {msg}", file=sys.stderr)
    return out


def show(ctx: Any, section: Callable[[Any], Section] | Section) -> None:
    """Compute (if given a function of the context) and display a section in the notebook.

    Warnings raised while computing it are handled by :func:`capture`; the FunnelWarnings
    are shown as the section's notes. Returns nothing, so a notebook cell shows only the
    section.
    """
    from IPython.display import HTML, Image, display
    notes: list[str] = []
    sec = capture(notes, section, ctx) if callable(section) else section
    for n in notes:
        sec.add_note("Note: " + ctx.clean_note(n))
    display(HTML(sec.header_html()))
    figures = sec.figure if isinstance(sec.figure, (list, tuple)) else [sec.figure]
    for fig in figures:
        if fig is None:
            continue
        if is_plotly(fig):
            display(HTML(plotly_html(ctx, fig)))
        else:
            display(Image(data=figure_png(fig), format="png"))
    body = sec.table_html() + sec.note_html()
    if body:
        display(HTML(body))


def pct(x: float | None, digits: int = 0) -> str:
    """``x`` as a percentage (no minus sign on a value that rounds to zero; 'n/a' when missing)."""
    if x is None or not np.isfinite(x):
        return "n/a"
    v = round(100 * float(x), digits)
    return f"{0.0 if v == 0 else v:.{digits}f}%"


def signed(x: float | None, digits: int = 0) -> str:
    """``x`` with an explicit sign ('+3', '-2', '0'; '–' when missing)."""
    if x is None or not np.isfinite(x):
        return "–"
    v = round(float(x), digits)
    if v == 0:
        return f"{0:.{digits}f}"
    return f"{'+' if v > 0 else ''}{v:,.{digits}f}"


def month_label(m: Any) -> str:
    """``YYYY-MM`` of a date."""
    return pd.Timestamp(m).strftime("%Y-%m")


def public_text(text: str) -> str:
    """``text`` without the paths of this machine: the working folder and the home folder
    are dropped, any other absolute path is cut to its last part (``…/file.csv``)."""
    out = str(text)
    for base, repl in ((Path.cwd(), ""), (Path.home(), "~/")):
        b = str(base)
        if len(b) > 1:
            out = out.replace(b + os.sep, repl)
    return _ABS_PATH.sub(lambda m: "…/" + m.group(1), out)
