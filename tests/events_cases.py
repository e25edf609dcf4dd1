"""Hypothesis strategies for differential event-funnel tests: one funnel definition plus a
batch of small random logs (disjoint users), dense in ties, repeats and window edges."""
from __future__ import annotations

import os

from hypothesis import strategies as st

from events_reference import Config

#: Logs per generated example; examples per test come from FUNNEL_DIFF_EXAMPLES.
LOGS_PER_EXAMPLE = 40


#: CI and the default suite replay the same examples (a red run is reproducible, never a
#: coin toss); FUNNEL_DIFF_RANDOM=1 explores new ones (run it when the engine changes).
FIXED_SEED = os.environ.get("FUNNEL_DIFF_RANDOM") != "1"


def n_examples(default: int) -> int:
    """Examples per test: ``FUNNEL_DIFF_EXAMPLES`` (set by .ci/run) or ``default``."""
    return int(os.environ.get("FUNNEL_DIFF_EXAMPLES", default))


_event = st.tuples(st.integers(0, 8), st.sampled_from(["a", "b", "c", "x"]),
                   st.sampled_from(["g", "h", None]))
_log = st.lists(_event, min_size=1, max_size=12)
#: Logs within three seconds: most events tie on time with another one.
tied_logs = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(["a", "b", "c", "x"]),
                               st.sampled_from(["g", "h", None])), min_size=1, max_size=12)


@st.composite
def configs(draw, order: str) -> Config:
    steps = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=4))
    n = len(steps)
    optional: list[int] = []
    if order != "unordered" and draw(st.booleans()):
        k = draw(st.integers(1, n - 1))
        if not (k + 1 < n and steps[k + 1] == steps[k]):
            optional = [k]
    exclusions = []
    if draw(st.booleans()):
        if order == "unordered":
            exclusions = [("x", 0, n - 1)]
        elif len([k for k in range(n) if k not in optional]) >= 2:
            req = [k for k in range(n) if k not in optional]
            a = draw(st.sampled_from(req[:-1]))
            b = draw(st.sampled_from([r for r in req if r > a]))
            exclusions = [("x", a, b)]
    attrs = ["first_touch", "last_touch", "step:0"] + (
        [f"step:{draw(st.integers(1, n - 1))}"] if order != "unordered" else [])
    return Config(steps=steps, window=draw(st.integers(1, 5)), order=order,
                  exclusions=exclusions, optional=optional,
                  attribution=draw(st.sampled_from(attrs)))


@st.composite
def distinct_step_configs(draw, order: str = "ordered") -> Config:
    """Funnels whose steps are distinct events, without exclusions or optional steps: the
    hot case of the tuned DuckDB path (funnel_models.events.scan)."""
    steps = draw(st.permutations(["a", "b", "c", "x"]))[:draw(st.integers(2, 4))]
    n = len(steps)
    attrs = ["first_touch", "last_touch", "step:0", f"step:{draw(st.integers(1, n - 1))}"]
    return Config(steps=steps, window=draw(st.integers(1, 5)), order=order,
                  attribution=draw(st.sampled_from(attrs)))


@st.composite
def batches(draw, order: str, configs=configs, logs=_log) -> tuple[Config, list[tuple]]:
    """A funnel definition and LOGS_PER_EXAMPLE logs, flattened with per-log user ids."""
    cfg = draw(configs(order))
    logs = draw(st.lists(logs, min_size=LOGS_PER_EXAMPLE, max_size=LOGS_PER_EXAMPLE))
    users = st.sampled_from(["u1", "u2"])
    events = [(f"L{i:03d}{draw(users)}", t, e, v) for i, log in enumerate(logs)
              for (t, e, v) in log]
    return cfg, events


def funnel_kwargs(cfg: Config) -> dict:
    return dict(window=f"{cfg.window}s", order=cfg.order, breakdown="c",
                attribution=cfg.attribution, exclusions=cfg.exclusions,
                optional_steps=cfg.optional)
