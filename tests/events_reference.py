"""A plain-Python reference of the event-funnel semantics, written from the engine docstring.

It enumerates every attempt of every user with loops (no windows, no joins), so it shares
no code and no algorithm with the Ibis engine. Events are ``(user, second, event, value)``;
steps and exclusions are bare event names.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

T0 = pd.Timestamp("2024-03-01")
NONE = "(none)"


@dataclass
class Config:
    steps: list[str]
    window: int
    order: str
    exclusions: list[tuple[str, int, int]] = field(default_factory=list)
    optional: list[int] = field(default_factory=list)
    attribution: str = "first_touch"


def to_frame(events: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [e[0] for e in events],
                         "timestamp": [T0 + pd.Timedelta(seconds=e[1]) for e in events],
                         "event": [e[2] for e in events],
                         "c": [e[3] if len(e) > 3 else None for e in events]})


def _rows(evs: list[tuple], cfg: Config) -> list[dict]:
    n = len(cfg.steps)
    xnames = [x[0] for x in cfg.exclusions]
    rows = []
    for _, t, e, *rest in evs:
        bd = rest[0] if rest else None
        steps = [k for k, s in enumerate(cfg.steps) if s == e]
        xs = [j for j, x in enumerate(xnames) if x == e]
        mask = sum(2 ** k for k in steps) + sum(2 ** (n + j) for j in xs)
        rows.append({"t": t, "steps": steps, "xs": xs, "bd": bd,
                     "key": (t, min(steps) if steps else n, mask, bd is None, bd or "")})
    rows.sort(key=lambda r: r["key"])
    if cfg.order != "strict":
        rows = [r for r in rows if r["steps"] or r["xs"]]
    if cfg.order == "strict" or cfg.exclusions:
        step_times = {r["t"] for r in rows if r["steps"]}
        rows = [r for r in rows if r["steps"] or r["t"] not in step_times]
    return rows


def _ordered_chain(rows: list[dict], i: int, cfg: Config) -> dict[int, int]:
    n, dead = len(cfg.steps), rows[i]["t"] + cfg.window
    req = [k for k in range(n) if k not in cfg.optional]
    fill = {0: i}
    for k in req[1:]:
        prev = fill.get(max(r for r in req if r < k))
        if prev is None:
            break
        for j in range(prev + 1, len(rows)):
            if rows[j]["t"] > dead:
                break
            if k in rows[j]["steps"]:
                fill[k] = j
                break
    for k in cfg.optional:
        prev_req = max(r for r in req if r < k)
        if prev_req not in fill:
            continue
        before = [fill[o] for o in range(k - 1, prev_req, -1) if o in fill]
        after = fill.get(min([r for r in req if r > k], default=-1), len(rows))
        for j in range((before[0] if before else fill[prev_req]) + 1, min(after, len(rows))):
            if rows[j]["t"] <= dead and k in rows[j]["steps"]:
                fill[k] = j
                break
    return fill


def _strict_chain(rows: list[dict], i: int, cfg: Config) -> dict[int, int]:
    dead, p, fill = rows[i]["t"] + cfg.window, i, {0: i}
    for k in range(1, len(cfg.steps)):
        ok = p + 1 < len(rows) and k in rows[p + 1]["steps"] and rows[p + 1]["t"] <= dead
        if ok:
            p = fill[k] = p + 1
        elif k not in cfg.optional:
            break
    return fill


def _excluded(rows: list[dict], fill: dict[int, int], t0: int, cfg: Config,
              end: dict[int, int | None] | None = None) -> bool:
    for j, (_, a, b) in enumerate(cfg.exclusions):
        if a not in fill:
            continue
        stop = (end or {}).get(j, fill.get(b))
        for r in range(fill[a] + 1, len(rows)):
            if j in rows[r]["xs"] and (r < stop if stop is not None else rows[r]["t"] <= t0 + cfg.window):
                return True
    return False


def _attempts(rows: list[dict], cfg: Config) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        if 0 not in r["steps"]:
            continue
        fill = (_ordered_chain if cfg.order == "ordered" else _strict_chain)(rows, i, cfg)
        if _excluded(rows, fill, r["t"], cfg):
            continue
        idx = max(fill)
        out.append({"fill": fill, "rank": (-idx, fill[idx], -r["t"], i)})
    return out


def _matching(groups: list[int], cap: list[int], rows: list[dict]) -> list[int]:
    """Rows filling steps in a window: per group its first ``cap`` events, in order."""
    used = defaultdict(int)
    picked = []
    for j, r in enumerate(rows):
        g = next((groups[k] for k in r["steps"]), None) if r["steps"] else None
        if g is not None and used[g] < cap[g]:
            used[g] += 1
            picked.append(j)
    return picked


def _unordered(rows: list[dict], cfg: Config) -> dict | None:
    keys: list[str] = []
    groups = []
    for s in cfg.steps:
        keys.append(s) if s not in keys else None
        groups.append(keys.index(s))
    cap = [groups.count(g) for g in range(len(keys))]
    first_step = {g: groups.index(g) for g in range(len(keys))}
    rows = [dict(r, steps=[first_step[min(groups[k] for k in r["steps"])]] if r["steps"] else [])
            for r in rows]
    best = None
    for i, r in enumerate(rows):
        if not r["steps"]:
            continue
        inside = [j for j, x in enumerate(rows) if r["t"] <= x["t"] <= r["t"] + cfg.window]
        picked = _matching(groups, cap, [rows[j] for j in inside])
        lvl = len(picked)
        if cfg.exclusions:
            after = [j for j in range(i, len(rows)) if rows[j]["steps"]]
            done = _matching(groups, cap, [rows[j] for j in after])
            end = after[done[-1]] if lvl == len(cfg.steps) and len(done) == len(cfg.steps) else None
            fill = {0: i}
            if _excluded(rows, fill, r["t"], cfg, {j: end for j in range(len(cfg.exclusions))}):
                continue
        rank = (-lvl, r["t"], i)
        if best is None or rank < best["rank"]:
            best = {"rank": rank, "fill": {k: inside[p] for k, p in enumerate(picked)}}
    return best


def reference(events: list[tuple], cfg: Config) -> pd.DataFrame:
    """Per user: breakdown value and the second at which each step was filled (or None)."""
    by_user: dict[str, list[tuple]] = defaultdict(list)
    for ev in events:
        by_user[ev[0]].append(ev)
    out = []
    n = len(cfg.steps)
    for u, evs in sorted(by_user.items()):
        rows = _rows(evs, cfg)
        if cfg.order == "unordered":
            best = _unordered(rows, cfg)
        else:
            cands = _attempts(rows, cfg)
            best = min(cands, key=lambda a: a["rank"]) if cands else None
        if best is None:
            continue
        fill = best["fill"]
        if cfg.attribution == "first_touch":
            src = fill.get(0)
        elif cfg.attribution == "last_touch":
            src = fill[max(fill)]
        else:
            src = fill.get(int(cfg.attribution[5:]))
        bd = rows[src]["bd"] if src is not None else None
        rec = {"user_id": u, "breakdown": NONE if bd is None else bd}
        rec.update({f"s{k}": rows[fill[k]]["t"] if k in fill else None for k in range(n)})
        out.append(rec)
    return pd.DataFrame(out, columns=["user_id", "breakdown"] + [f"s{k}" for k in range(n)])


def engine_table(res, n: int) -> pd.DataFrame:
    """The engine's per-user table in the reference's shape (seconds after T0)."""
    u = res.users
    out = pd.DataFrame({"user_id": u["user_id"], "breakdown": u["breakdown"]})
    for k, name in enumerate(res.steps):
        sec = (u[name] - T0).dt.total_seconds()
        out[f"s{k}"] = [None if pd.isna(v) else int(v) for v in sec]
    return out.sort_values("user_id").reset_index(drop=True)
