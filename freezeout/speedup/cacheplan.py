"""``cache_frozen=auto``: which freezing stages read the frozen-prefix store, decided from the
time model's measured seconds (pure arithmetic: the measurement is :mod:`freezeout.speedup.timemodel`'s).

Reading the store saves recomputing the frozen prefix every step, but costs a gather of wide
stored activations a step and an advance of the store over every training image when a stage
begins; on some devices and models (a CPU reading DenseNet's wide activations, a short stage)
recomputing from the small inputs is faster. Each stage reads the store only where the measured
numbers say it pays over the run.
"""
from __future__ import annotations

from typing import Sequence

from .formulas import frozen_groups_at


def plan_cache_stages(times: Sequence[float] | None, total_iters: int, uncached: dict[int, float],
                      cached: dict[int, float], advance: dict[int, float]) -> set[int]:
    """``cache_frozen=auto``: the stages (by frozen groups) that read the store, from measured
    seconds a step without (``uncached``) and with it (``cached``), and the seconds the store
    takes to advance to each stage from the measured stage before it (``advance``).

    With a schedule (``times``), the plan of least predicted seconds over the run: a stage that
    reads the store pays its steps at the cached rate and the advances from where the store
    stands; one that does not pays the uncached rate, and the store stays where it is (a later
    stage advances it from there). Without one (an adaptive rule), each stage on its own: its
    advance spread over an average stage's length."""
    stages = sorted(set(uncached) & set(cached))
    if times is None:
        length = total_iters / max(len(stages), 1)
        return {k for k in stages if k > 0 and cached[k] + advance.get(k, 0.0) / length < uncached[k]}
    bounds = sorted({0.0, 1.0, *(t for t in times if 0.0 < t < 1.0)})
    steps = {k: 0.0 for k in stages}
    for a, b in zip(bounds, bounds[1:]):
        steps[frozen_groups_at(a, times)] += (b - a) * total_iters
    # best[s]: (least seconds so far, stages reading the store) with the store standing at stage s
    best: dict[int, tuple[float, frozenset]] = {0: (0.0, frozenset())}
    for i, k in enumerate(stages):
        if k == 0:
            best = {0: (steps[0] * uncached[0], frozenset())}
            continue
        nxt: dict[int, tuple[float, frozenset]] = {}
        for s, (cost, read) in best.items():
            options = [(s, cost + steps[k] * uncached[k], read)]
            climb = sum(advance.get(j, 0.0) for j in stages[:i + 1] if j > s)
            options.append((k, cost + climb + steps[k] * cached[k], read | {k}))
            for at, c, r in options:
                if at not in nxt or c < nxt[at][0]:
                    nxt[at] = (c, r)
        best = nxt
    return set(min(best.values(), key=lambda v: v[0])[1]) if best else set()


def apply_cache_plan(plan: set[int], uncached: dict[int, float], cached: dict[int, float],
                     advance: dict[int, float]) -> tuple[dict[int, float], dict[int, float]]:
    """The seconds a step and the one-off seconds at each stage's start of a run following
    ``plan`` (see :func:`plan_cache_stages`): what the time model integrates."""
    stages, seconds, events, at = sorted(uncached), {}, {}, 0
    for k in stages:
        seconds[k] = cached[k] if k in plan else uncached[k]
        events[k] = sum(advance.get(j, 0.0) for j in stages if at < j <= k) if k in plan else 0.0
        at = k if k in plan else at
    return seconds, events
