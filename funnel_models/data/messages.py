"""Small wording helpers shared by the data layer's error messages.

Examples
--------
>>> did_you_mean("opportunty", ["opportunity", "stage"])
" Did you mean 'opportunity'?"
>>> plural(1, "row has", "rows have"), plural(3, "row has", "rows have")
('1 row has', '3 rows have')
>>> short_repr("a" * 60, 12)
"'aaaaaaa...'"
>>> listing([f"lead {i}" for i in range(7)])
'lead 0; lead 1; lead 2; lead 3; lead 4; and 2 more'
"""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Sequence

__all__ = ["did_you_mean", "plural", "short_repr", "listing", "MAX_SHOWN"]

#: At most this many offending rows are shown in one message.
MAX_SHOWN = 5


def did_you_mean(name: str, options: Iterable[Any]) -> str:
    """``" Did you mean 'x'?"`` for the option closest to ``name`` (case-insensitive second
    try), or ``""`` when nothing is close.

    Parameters
    ----------
    name : str
        What the user wrote.
    options : iterable
        The valid names.

    Returns
    -------
    str
        A sentence starting with a space, or the empty string.
    """
    opts = [str(o) for o in options]
    close = difflib.get_close_matches(name, opts, n=1, cutoff=0.5)
    if not close:
        lower = {o.lower(): o for o in opts}
        close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.5)]
    return f" Did you mean {close[0]!r}?" if close else ""


def plural(count: int, one: str, many: str) -> str:
    """``count`` and the phrase that agrees with it: ``1 row has`` / ``2 rows have``.

    Parameters
    ----------
    count : int
    one, many : str
        The singular and plural phrases.

    Returns
    -------
    str
    """
    return f"{count} {one if count == 1 else many}"


def short_repr(value: Any, width: int = 40) -> str:
    """``repr(value)`` cut to ``width`` characters (ending ``...'``) for messages.

    Parameters
    ----------
    value : object
    width : int

    Returns
    -------
    str
    """
    s = repr(value)
    return s if len(s) <= width else s[: width - 4] + "...'"


def listing(items: Sequence[str], limit: int = MAX_SHOWN) -> str:
    """The first ``limit`` items joined by ``"; "``, then ``"; and N more"`` if there are more.

    Parameters
    ----------
    items : sequence of str
    limit : int

    Returns
    -------
    str
    """
    more = f"; and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more
