"""The DuckDB funnel engine agrees with a plain-Python reference on random small logs."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from funnel_models.events import funnel

T0 = pd.Timestamp("2024-03-01")


def _max_matching(steps: list[str], events: list[str]) -> int:
    """Maximum bipartite matching steps <-> events (an event fills one step), Kuhn's algorithm."""
    match_of_event: dict[int, int] = {}

    def augment(si: int, seen: set[int]) -> bool:
        for ej, e in enumerate(events):
            if e == steps[si] and ej not in seen:
                seen.add(ej)
                if ej not in match_of_event or augment(match_of_event[ej], seen):
                    match_of_event[ej] = si
                    return True
        return False

    return sum(augment(si, set()) for si in range(len(steps)))


def reference_levels(events: list[tuple[str, int, str]], steps: list[str], window: int,
                     order: str) -> dict[str, int]:
    """Furthest level per user, straight from the definitions in the engine docstring.

    Events of a user are ordered by (time, lowest step index matched; non-step events last).
    """
    n = len(steps)
    rank: dict[str, int] = {}
    for i, s in enumerate(steps):
        rank.setdefault(s, i)
    by_user: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for u, t, e in events:
        by_user[u].append((t, rank.get(e, n), e))
    out: dict[str, int] = {}
    for u, evs in by_user.items():
        evs.sort(key=lambda x: (x[0], x[1]))
        best = 0
        for i, (t0, _, e0) in enumerate(evs):
            dead = t0 + window
            if order == "unordered":
                inside = [e for (t, _, e) in evs if t0 <= t <= dead]
                best = max(best, _max_matching(steps, inside))
                continue
            if e0 != steps[0]:
                continue
            lvl = 1
            for t, _, e in evs[i + 1:]:
                if lvl == n or t > dead:
                    break
                if e == steps[lvl]:
                    lvl += 1
                elif order == "strict":
                    break
            best = max(best, lvl)
        if best:
            out[u] = best
    return out


# Dense small logs: few event types and times so that ties, repeats and events exactly at
# the window limit are common.
events_st = st.lists(
    st.tuples(st.sampled_from(["u1", "u2"]), st.integers(0, 8),
              st.sampled_from(["a", "b", "c", "x"])),
    min_size=4, max_size=25)
steps_st = st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=4)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events_st, steps=steps_st, window=st.integers(1, 5))
@example(events=[("u1", 0, "a"), ("u1", 1, "x"), ("u1", 2, "b")], steps=["a", "b"], window=5)
@example(events=[("u1", 0, "a"), ("u1", 5, "b")], steps=["a", "b"], window=5)      # at limit
@example(events=[("u1", 0, "a"), ("u1", 6, "b")], steps=["a", "b"], window=5)      # 1 s over
@example(events=[("u1", 3, "b"), ("u1", 3, "a"), ("u1", 3, "x")], steps=["a", "b"], window=1)
@example(events=[("u1", 0, "a"), ("u1", 1, "a"), ("u1", 2, "b")], steps=["a", "a", "b"],
         window=5)
def test_engine_matches_reference(events, steps, window):
    df = pd.DataFrame({"user_id": [e[0] for e in events],
                       "timestamp": [T0 + pd.Timedelta(seconds=e[1]) for e in events],
                       "event": [e[2] for e in events]})
    for order in ("ordered", "strict", "unordered"):
        ref = reference_levels(events, steps, window, order)
        res = funnel(df, steps, window=f"{window}s", order=order)
        got = res.counts.tolist()
        want = [sum(1 for lv in ref.values() if lv > k) for k in range(len(steps))]
        assert got == want, (order, got, want)
        for k in range(len(steps)):
            assert res.converted_users(k) == sorted(u for u, lv in ref.items() if lv > k), (order, k)
