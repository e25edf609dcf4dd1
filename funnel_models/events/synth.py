"""Seeded synthetic web event logs for examples, tests and benchmarks.

The generator is vectorised with NumPy (no Python loop per user) and uses only
``np.random.default_rng(seed)``. Journeys follow ``ad_click -> landing_view -> signup ->
demo_request -> purchase`` with conversion that depends on the campaign, repeat visits
(a later visit may come from another campaign), noise ``pageview`` events, skipped steps
(direct traffic without an ad click, purchases without a demo request), repeated events
(duplicate signups, repeat purchases), slightly out-of-order clocks (a few landing views
logged before their ad click) and rows shuffled so timestamps are not sorted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FunnelDataError

__all__ = ["synthetic_events", "write_events_parquet", "CAMPAIGNS", "FUNNEL_EVENTS"]

#: Campaigns, their traffic share and step conversion (signup|landing, demo|signup,
#: purchase|demo). ``(direct)`` traffic has no ad click.
CAMPAIGNS: dict[str, tuple[float, float, float, float]] = {
    "brand_search": (0.25, 0.35, 0.50, 0.40),
    "generic_search": (0.30, 0.20, 0.40, 0.30),
    "social": (0.20, 0.12, 0.30, 0.25),
    "display": (0.15, 0.06, 0.25, 0.20),
    "(direct)": (0.10, 0.30, 0.45, 0.35),
}
#: The funnel events in their natural order.
FUNNEL_EVENTS = ("ad_click", "landing_view", "signup", "demo_request", "purchase")
_EVENTS = FUNNEL_EVENTS + ("pageview",)
_REGIONS = (("EU", 0.35), ("NA", 0.35), ("APAC", 0.2), ("LATAM", 0.1))
_KEYWORDS = ("pricing", "crm software", "free trial", "alternatives", "(not set)")
_PAGES = ("/", "/pricing", "/features", "/demo")
_DAY = 86400.0


def synthetic_events(n_users: int, *, seed: int = 0, start: Any = "2024-01-01",
                     months: int = 6, noise_rate: float = 4.0, repeat_rate: float = 0.5,
                     user_offset: int = 0, shuffle: bool = True) -> pd.DataFrame:
    """Generate a realistic web event log.

    Parameters
    ----------
    n_users : int
        Number of users (visitors).
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same log.
    start : datetime-like
        Earliest first visit.
    months : int
        First visits are spread uniformly over ``months * 30`` days.
    noise_rate, repeat_rate : float
        Mean noise ``pageview`` events and repeat visits (Poisson) per user.
    user_offset : int
        Added to the user number (to generate disjoint chunks).
    shuffle : bool
        Shuffle the rows (default) so timestamps are not sorted.

    Returns
    -------
    DataFrame
        ``user_id`` (str), ``timestamp`` (datetime64[ns], millisecond precision),
        ``event``, ``campaign``, ``region``, ``keyword``, ``landing_page`` (str).

    Examples
    --------
    >>> ev = synthetic_events(100, seed=3)
    >>> sorted(ev.columns)
    ['campaign', 'event', 'keyword', 'landing_page', 'region', 'timestamp', 'user_id']
    """
    if not isinstance(n_users, (int, np.integer)) or n_users < 1:
        raise FunnelDataError(f"n_users must be a positive integer, got {n_users!r}.")
    if months < 1:
        raise FunnelDataError(f"months must be >= 1, got {months!r}.")
    rng = np.random.default_rng(seed)
    n = int(n_users)
    names = list(CAMPAIGNS)
    params = np.array(list(CAMPAIGNS.values()))
    direct = names.index("(direct)")
    paid_codes = np.array([i for i in range(len(names)) if i != direct])

    u = np.arange(n)
    camp = rng.choice(len(names), n, p=params[:, 0] / params[:, 0].sum())
    region = rng.choice(len(_REGIONS), n, p=[r[1] for r in _REGIONS])
    search = np.isin(camp, [names.index("brand_search"), names.index("generic_search")])
    kw = np.where(search, rng.integers(0, len(_KEYWORDS) - 1, n), len(_KEYWORDS) - 1)
    page = rng.integers(0, len(_PAGES), n)
    t_first = rng.uniform(0, months * 30 * _DAY, n)

    # visits: the first one plus Poisson repeats within 45 days
    S = 1 + rng.poisson(repeat_rate, n)
    su = np.repeat(u, S)
    first = np.concatenate([[0], np.cumsum(S)[:-1]])
    pos = np.arange(len(su)) - np.repeat(first, S)
    sstart = t_first[su] + np.where(pos == 0, 0.0, rng.uniform(600, 45 * _DAY, len(su)))
    scamp = camp[su].copy()
    switch = (pos > 0) & (rng.random(len(su)) < 0.3)
    scamp[switch] = rng.choice(paid_codes, int(switch.sum()))
    paid = scamp != direct

    parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []
    parts.append((su[paid], sstart[paid], 0, scamp[paid]))
    lt = sstart + rng.uniform(2, 60, len(su))
    skew = paid & (rng.random(len(su)) < 0.02)          # clock skew: logged before the click
    lt[skew] = sstart[skew] - rng.uniform(1, 5, int(skew.sum()))
    parts.append((su, lt, 1, scamp))

    _progress(rng, u, camp, t_first, params[camp], parts)

    # noise page views around a random visit of the user
    NP = rng.poisson(noise_rate, n)
    pu = np.repeat(u, NP)
    sess = first[pu] + np.floor(rng.random(len(pu)) * S[pu]).astype(np.int64)
    parts.append((pu, sstart[sess] + rng.exponential(600, len(pu)), 5, scamp[sess]))

    return _frame(rng, parts, shuffle, start, u + int(user_offset), names, region, kw, page)


def _progress(rng: np.random.Generator, u: np.ndarray, camp: np.ndarray, t_first: np.ndarray,
              p: np.ndarray, parts: list) -> None:
    """Append signups, demo requests and purchases; ``p`` holds each user's campaign rates."""
    n = len(u)
    signed = rng.random(n) < p[:, 1]
    t_sign = t_first + 60 + rng.exponential(_DAY, n)
    demo = signed & (rng.random(n) < p[:, 2])
    t_demo = t_sign + rng.exponential(3 * _DAY, n)
    skipdemo = signed & ~demo & (rng.random(n) < 0.05)  # buys without a demo request
    buy = (demo & (rng.random(n) < p[:, 3])) | skipdemo
    t_buy = np.where(demo, t_demo, t_sign) + rng.exponential(6 * _DAY, n)
    rebuy = buy & (rng.random(n) < 0.1)
    dup = signed & (rng.random(n) < 0.05)
    parts.append((u[signed], t_sign[signed], 2, camp[signed]))
    parts.append((u[dup], t_sign[dup] + rng.uniform(60, 3600, int(dup.sum())), 2, camp[dup]))
    parts.append((u[demo], t_demo[demo], 3, camp[demo]))
    parts.append((u[buy], t_buy[buy], 4, camp[buy]))
    parts.append((u[rebuy], t_buy[rebuy] + rng.exponential(20 * _DAY, int(rebuy.sum())), 4,
                  camp[rebuy]))


def _frame(rng: np.random.Generator, parts: list, shuffle: bool, start: Any, user_no: np.ndarray,
           names: list[str], region: np.ndarray, kw: np.ndarray, page: np.ndarray) -> pd.DataFrame:
    """Concatenate the event parts (users, times in seconds, event code, campaign) into a frame."""
    uu = np.concatenate([x[0] for x in parts])
    tt = np.concatenate([x[1] for x in parts])
    ee = np.concatenate([np.full(len(x[0]), x[2], dtype=np.int8) for x in parts])
    cc = np.concatenate([x[3] for x in parts])
    if shuffle:
        perm = rng.permutation(len(uu))
        uu, tt, ee, cc = uu[perm], tt[perm], ee[perm], cc[perm]
    base = pd.Timestamp(start).as_unit("ns").to_datetime64()
    ts = base + (np.round(tt * 1000).astype(np.int64) * 1_000_000).astype("timedelta64[ns]")
    ids = np.char.add("u", np.char.zfill(user_no.astype(str), 7))
    return pd.DataFrame({
        "user_id": pd.array(ids[uu], dtype="str"),
        "timestamp": ts,
        "event": pd.array(np.array(_EVENTS, dtype=object)[ee], dtype="str"),
        "campaign": pd.array(np.array(names, dtype=object)[cc], dtype="str"),
        "region": pd.array(np.array([r[0] for r in _REGIONS], dtype=object)[region[uu]], dtype="str"),
        "keyword": pd.array(np.array(_KEYWORDS, dtype=object)[kw[uu]], dtype="str"),
        "landing_page": pd.array(np.array(_PAGES, dtype=object)[page[uu]], dtype="str"),
    })


def write_events_parquet(path: str | Path, n_events: int, *, seed: int = 0,
                         users_per_chunk: int = 100_000, **kwargs: Any) -> int:
    """Write about ``n_events`` synthetic events to one Parquet file, chunk by chunk.

    Only one chunk (``users_per_chunk`` users, about 10 events each) is in memory at a
    time. Chunks use independent seeds spawned from ``seed`` and disjoint user ids; the
    last chunk is cut so exactly ``n_events`` rows are written.

    Parameters
    ----------
    path : str or Path
        Output ``.parquet`` file (its directory must exist).
    n_events : int
        Number of rows to write.
    seed : int
        Master seed.
    users_per_chunk : int
        Users generated per chunk.
    **kwargs
        Passed to :func:`synthetic_events` (``start``, ``months``, ``noise_rate``...).

    Returns
    -------
    int
        Rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if n_events < 1:
        raise FunnelDataError(f"n_events must be >= 1, got {n_events!r}.")
    seeds = np.random.SeedSequence(seed)
    writer = None
    written, offset = 0, 0
    try:
        while written < n_events:
            (child,) = seeds.spawn(1)
            df = synthetic_events(users_per_chunk, seed=int(child.generate_state(1)[0]),
                                  user_offset=offset, **kwargs)
            offset += users_per_chunk
            df = df.iloc[: n_events - written]
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                # microsecond timestamps: readable by every engine (Spark rejects nanoseconds)
                writer = pq.ParquetWriter(str(path), table.schema, compression="snappy",
                                          coerce_timestamps="us")
            writer.write_table(table, row_group_size=1_000_000)
            written += len(df)
    finally:
        if writer is not None:
            writer.close()
    return written
