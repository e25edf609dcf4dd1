"""Stage-to-stage flows over a period, as tables a Sankey diagram or a funnel chart can draw.

Pure functions over the transitions table of :func:`funnel_models.data.derive.transitions`
(``month, from_stage, to_stage, age, *segment columns, n``; states are the open stage
codes in spec order, ``WON`` and ``LOST``, with ``ENTRY`` as the source of new leads).
Both the dashboard and the reports draw from them.

* :func:`flow_table` -- nodes and links of the moves made in a period: entries, advances,
  skips (a move past one or more stages), wins and losses; staying is not a move.
* :func:`funnel_table` -- how many leads reached each stage during the period: a move
  from a state before stage ``k`` to stage ``k`` or beyond (not to LOST) crosses into
  ``k``. In a monotone chain a lead crosses each boundary at most once, so these are
  counts of leads. Leads already in the funnel before the period count only for the
  boundaries they cross inside it, so a later stage can exceed an earlier one.

Going cold: with ``cold_after=c``, a lead that stays in a stage through its ``c``-th month
without a move goes cold in that month (a link to the ``COLD`` node; a stay with ``age``
``c - 1`` in the transitions table). Cold leads stay open (a later move still counts).

Examples
--------
>>> import pandas as pd
>>> t = pd.DataFrame({"month": pd.to_datetime(["2024-01-01"] * 5),
...                   "from_stage": ["ENTRY", "ENTRY", "A", "A", "B"],
...                   "to_stage": ["A", "LOST", "B", "WON", "LOST"], "n": [10, 2, 4, 3, 1]})
>>> ft = flow_table(t, ["A", "B"])
>>> ft.links[["source", "target", "n", "kind"]].values.tolist()
[['ENTRY', 'A', 10, 'entry'], ['ENTRY', 'LOST', 2, 'lost'], ['A', 'B', 4, 'advance'], ['A', 'WON', 3, 'skip'], ['B', 'LOST', 1, 'lost']]
>>> funnel_table(ft)[["stage", "leads"]].values.tolist()
[['ENTRY', 12], ['A', 10], ['B', 7], ['WON', 3]]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["FlowTable", "flow_table", "funnel_table", "ENTRY_LABEL", "COLD"]

#: Label of the pseudo stage new leads come from.
ENTRY_LABEL = "Entered the funnel"
_ENTRY, _WON, _LOST = "ENTRY", "WON", "LOST"
#: Node of the leads that went cold (only with ``cold_after``).
COLD = "COLD"


@dataclass(frozen=True)
class FlowTable:
    """The moves of a period between the funnel's states.

    Attributes
    ----------
    nodes : DataFrame
        ``node, label, kind, position, inflow, outflow``: one row per state in funnel
        order (``ENTRY``, the open stages, ``WON``, ``LOST``); ``kind`` is ``entry``,
        ``stage``, ``won`` or ``lost``; ``position`` is -1 for ``ENTRY``, the stage index,
        ``K`` for ``WON`` and ``K + 1`` for ``LOST`` (and ``K + 2`` for ``COLD``, kind
        ``cold``, when the table was built with ``cold_after``).
    links : DataFrame
        ``source, target, n, kind`` with ``kind`` one of ``entry`` (a new lead's first
        stage), ``advance`` (to the next state), ``skip`` (past one or more states),
        ``lost``, ``cold`` (went cold in the stage); sorted in funnel order. Links with no moves are left out.
    first, last : Timestamp or None
        First and last month counted (None when nothing was counted).
    segment : dict
        Segment column -> level the moves were restricted to.
    """

    nodes: pd.DataFrame
    links: pd.DataFrame
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    segment: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of moves counted."""
        return int(self.links["n"].sum())

    def period_label(self) -> str:
        """``"2024-01 to 2024-12"`` (or ``"no months"``)."""
        if self.first is None or self.last is None:
            return "no months"
        a, b = self.first.strftime("%Y-%m"), self.last.strftime("%Y-%m")
        return a if a == b else f"{a} to {b}"


def _restrict(transitions: pd.DataFrame, segment: Mapping[str, str] | None, since: object, until: object
              ) -> pd.DataFrame:
    need = {"month", "from_stage", "to_stage", "n"}
    missing = sorted(need - set(transitions.columns))
    if missing:
        raise FunnelDataError(f"flow_table: the transitions table lacks column(s) {missing}; build it with "
                              "funnel_models.data.derive.transitions")
    t = transitions
    mask = np.ones(len(t), dtype=bool)
    for col, level in (segment or {}).items():
        if col not in t.columns:
            raise FunnelDataError(f"flow_table: segment column {col!r} is not in the transitions table; "
                                  f"build it with derive.transitions(..., by=[{col!r}])")
        mask &= t[col].astype(str).to_numpy() == str(level)
    month = pd.to_datetime(t["month"])
    if since is not None:
        mask &= (month >= pd.Timestamp(since)).to_numpy()
    if until is not None:
        mask &= (month <= pd.Timestamp(until)).to_numpy()
    return t.loc[mask]


def _cold_moves(t: pd.DataFrame, cold_after: int) -> pd.DataFrame:
    """Stays that complete a lead's ``cold_after``-th month in an open stage, as moves to COLD."""
    if "age" not in t.columns:
        raise FunnelDataError("flow_table: cold_after needs the 'age' column of the transitions table; build it "
                              "with funnel_models.data.derive.transitions")
    if cold_after < 1:
        raise FunnelDataError(f"flow_table: cold_after must be at least 1 month, got {cold_after}")
    f, to = t["from_stage"].astype(str), t["to_stage"].astype(str)
    stay = (f == to) & ~f.isin([_ENTRY, _WON, _LOST]) & (t["age"].to_numpy() == cold_after - 1)
    return t.loc[stay].assign(to_stage=COLD)


def flow_table(transitions: pd.DataFrame, stages: Sequence[str], *, names: Sequence[str] | None = None,
               segment: Mapping[str, str] | None = None, since: object = None, until: object = None,
               cold_after: int | None = None) -> FlowTable:
    """Nodes and links of the moves between states in a period.

    Parameters
    ----------
    transitions : DataFrame
        From :func:`funnel_models.data.derive.transitions` (with the segment columns in
        ``segment`` among its ``by`` columns).
    stages : sequence of str
        Open stage codes in funnel order.
    names : sequence of str, optional
        Readable stage names (labels of the nodes); default the codes.
    segment : mapping column -> level, optional
        Count only this segment's moves.
    since, until : date-like, optional
        First and last month counted (inclusive); default every month of the table.
    cold_after : int, optional
        Months without a move after which a lead counts as cold (needs the ``age``
        column); default: no cold node.

    Returns
    -------
    FlowTable

    Raises
    ------
    FunnelDataError
        A missing column, or a state that is not ``ENTRY``, an open stage, ``WON`` or ``LOST``.
    """
    stages = [str(s) for s in stages]
    K = len(stages)
    pos = {_ENTRY: -1, **{s: i for i, s in enumerate(stages)}, _WON: K, _LOST: K + 1}
    t = _restrict(transitions, segment, since, until)
    unknown = sorted((set(t["from_stage"].astype(str)) | set(t["to_stage"].astype(str))) - set(pos))
    if unknown:
        raise FunnelDataError(f"flow_table: state(s) {unknown} are not stages of the funnel {stages} "
                              "(nor ENTRY, WON, LOST); pass the spec's open stage codes")
    pos[COLD] = K + 2
    moves = t[t["from_stage"].astype(str) != t["to_stage"].astype(str)]
    if cold_after is not None:
        moves = pd.concat([moves, _cold_moves(t, int(cold_after))], ignore_index=True)
    links = (moves.assign(source=moves["from_stage"].astype(str), target=moves["to_stage"].astype(str))
             .groupby(["source", "target"], sort=False)["n"].sum().reset_index())
    links = links[links["n"] > 0]
    ps, pt = links["source"].map(pos).to_numpy(), links["target"].map(pos).to_numpy()
    kind = np.where(pt == K + 2, "cold", np.where(pt == K + 1, "lost", np.where(ps == -1, "entry", np.where(pt == ps + 1, "advance", "skip"))))
    kind = np.where((ps == -1) & (pt == K), "skip", kind)      # won in the month it entered
    links = links.assign(kind=kind, _s=ps, _t=pt).sort_values(["_s", "_t"], kind="stable")
    links = links.drop(columns=["_s", "_t"]).reset_index(drop=True)
    links["n"] = links["n"].astype(np.int64)
    labels = list(names) if names is not None else stages
    if len(labels) != K:
        raise FunnelDataError(f"flow_table: {len(labels)} stage names for {K} stages")
    cold = [] if cold_after is None else [COLD]
    nodes = pd.DataFrame({"node": [_ENTRY, *stages, _WON, _LOST, *cold],
                          "label": [ENTRY_LABEL, *map(str, labels), "Won", "Lost", *["Gone cold"] * len(cold)],
                          "kind": ["entry", *["stage"] * K, "won", "lost", *["cold"] * len(cold)],
                          "position": np.arange(-1, K + 2 + len(cold))})
    nodes["inflow"] = nodes["node"].map(links.groupby("target")["n"].sum()).fillna(0).astype(np.int64)
    nodes["outflow"] = nodes["node"].map(links.groupby("source")["n"].sum()).fillna(0).astype(np.int64)
    months = pd.to_datetime(moves["month"]) if len(moves) else pd.Series([], dtype="datetime64[ns]")
    return FlowTable(nodes=nodes, links=links, first=months.min() if len(months) else None,
                     last=months.max() if len(months) else None, segment=dict(segment or {}))


def funnel_table(flows: FlowTable) -> pd.DataFrame:
    """Leads reaching each stage during the flows' period (see the module docstring).

    Returns
    -------
    DataFrame
        ``stage, label, leads, of_previous, of_first``: the first row is ``ENTRY`` (every
        new lead), then each open stage, then ``WON``; ``of_previous`` and ``of_first``
        are shares (NaN where the reference is 0).
    """
    nodes = flows.nodes[~flows.nodes["kind"].isin(["lost", "cold"])]
    pos = dict(zip(flows.nodes["node"], flows.nodes["position"]))
    lost = int(pos[_LOST])
    cold = int(pos.get(COLD, lost))
    ps = flows.links["source"].map(pos).to_numpy()
    pt = flows.links["target"].map(pos).to_numpy()
    n = flows.links["n"].to_numpy()
    counts = []
    for node, p in zip(nodes["node"], nodes["position"]):
        if p == -1:
            counts.append(int(n[ps == -1].sum()))
        else:
            counts.append(int(n[(ps < p) & (pt >= p) & (pt != lost) & (pt != cold)].sum()))
    leads = np.asarray(counts, dtype=float)
    prev = np.r_[np.nan, leads[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        of_prev = np.where(prev > 0, leads / prev, np.nan)
        of_first = np.where(leads[0] > 0, leads / leads[0], np.nan)
    return pd.DataFrame({"stage": nodes["node"].to_numpy(), "label": nodes["label"].to_numpy(),
                         "leads": np.asarray(counts, dtype=np.int64), "of_previous": of_prev,
                         "of_first": of_first})
