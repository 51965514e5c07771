"""Predicted speedup of FreezeOut over the baseline (docs/design.md, "Predicted speedup"): the
formulas, pure math on plain numbers and a schedule's times, so they are trivial to test.

Three models, all returning the fraction of training time saved (0 = none, 0.3 = 30% faster):
``flops`` weighs each group's forward FLOPs by the schedule, ``paper`` is the estimate of the
paper's own code (DenseNet-BC, 32x32 only), ``time`` integrates measured step times per freezing
stage over the schedule. Counting FLOPs and timing steps on a real model is ``freezeout.speedup.timemodel``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..freezing.schedule import check_strategy, check_t_0, scale

METHODS = ("flops", "paper", "time")


def flops_speedup(costs: Sequence[float], times: Sequence[float]) -> float:
    """FLOP model: group ``i`` (forward cost ``c_i``, freezing time ``t_i``) drops its weight
    gradient at ``t_i`` and its input gradient at ``t_{i-1}``; the first group never computes an
    input gradient."""
    c = [float(x) for x in costs]
    t = list(times)
    if len(c) != len(t):
        raise ValueError(f"{len(c)} group costs but {len(t)} freezing times")
    baseline = sum(c) + sum(c) + sum(c[1:])
    freezeout = sum(c) + sum(ci * ti for ci, ti in zip(c, t))
    freezeout += sum(c[i] * t[i - 1] for i in range(1, len(c)))
    return 1.0 - freezeout / baseline


def paper_costs(growth_rate: int, depth: int) -> list[float]:
    """Per-layer costs of the paper code's DenseNet-BC estimate (32x32 inputs; transitions ignored)."""
    k, m = growth_rate, (depth - 4) // 6
    c = [3 * 2 * k * 32**2 * 9]
    q = 2  # channels in units of k: the stem outputs 2k
    for area in (32**2, 16**2, 8**2):
        for _ in range(m):
            c.append(q * 4 * k**2 * area + 36 * k**2 * area)
            q += 1
        q = q // 2  # compression 0.5 at each transition
    return [float(x) for x in c]


def paper_speedup(growth_rate: int, depth: int, t_0: float, strategy: str) -> float:
    """The paper code's speedup estimate for DenseNet-BC on 32x32 inputs.

    Reproduced as written, quirks included: times use ``idx / N`` (not ``N - 1``), backward is
    counted as one forward, and ``linear`` is multiplied by 1.3, a factor that code leaves
    unexplained. Use ``flops`` or ``time`` for a prediction; this one is for comparison.
    """
    check_t_0(t_0)
    check_strategy(strategy)
    if strategy == "none":
        return 0.0
    c = paper_costs(growth_rate, depth)
    n = len(c)
    total = 2 * sum(c)
    frozen = sum(c) + sum(ci * scale(t_0 + (1 - t_0) * idx / n, strategy) for idx, ci in enumerate(c))
    speedup = 1.0 - frozen / total
    return speedup * 1.3 if strategy == "linear" else speedup


def time_speedup(stage_seconds: Mapping[int, float], times: Sequence[float],
                 event_seconds: Mapping[int, float] | None = None, total_iters: int | None = None) -> float:
    """Time model: ``stage_seconds[k]`` is the step time with the first ``k`` groups frozen.

    Between ``times[k-1]`` and ``times[k]`` (``times[-1]`` taken as 0) the groups whose time has
    passed are frozen; each stage's step time is weighted by the fraction of training it lasts.
    ``event_seconds[k]`` (with ``total_iters``, the run's length) adds a one-off cost paid when
    stage ``k`` begins, such as the frozen-prefix cache advancing its store.
    """
    total, previous = 0.0, 0.0
    for t in times:
        if t > previous:
            total += stage_seconds[frozen_groups_at(previous, times)] * (t - previous)
            previous = t
    if event_seconds and total_iters:
        total += sum(event_seconds[k] for k in freezing_stages(times) if k > 0) / total_iters
    return 1.0 - total / stage_seconds[0]


def frozen_groups_at(fraction: float, times: Sequence[float]) -> int:
    """How many groups are frozen at ``fraction`` of training (those with ``t_i <= fraction``)."""
    return sum(1 for t in times if t <= fraction)


def const_time_iters(total_iters: int, speedup: float) -> int:
    """``T' = round(T / (1 - s))``: the iterations a ``const_time`` run trains, so that with a
    predicted speedup ``s`` it costs about as much wall-clock time as the baseline's ``T``."""
    return round(total_iters / (1.0 - speedup))


def freezing_stages(times: Sequence[float]) -> list[int]:
    """Distinct numbers of frozen groups the schedule trains through (0 included)."""
    return sorted({0} | {frozen_groups_at(t, times) for t in times if t < 1.0})
