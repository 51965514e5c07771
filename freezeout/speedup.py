"""Predicted speedup of FreezeOut over the baseline (DESIGN §1 "Predicted speedup").

Three models, all returning the fraction of training time saved (0 = none, 0.3 = 30% faster):
``flops`` counts each group's forward FLOPs on the real model, ``paper`` is the estimate of the
paper's own code (DenseNet-BC, 32x32 only), ``time`` integrates measured step times per freezing
stage over the schedule. The pure formulas take plain numbers so they are trivial to test.
"""
from __future__ import annotations

import copy
import functools
import time
from typing import Callable, Mapping, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .devices import synchronize
from .schedule import check_strategy, check_t_0, layer_times, scale

METHODS = ("flops", "paper", "time")


def flops_speedup(costs: Sequence[float], t_0: float, strategy: str) -> float:
    """FLOP model: group ``i`` (forward cost ``c_i``) drops its weight gradient at ``t_i`` and its
    input gradient at ``t_{i-1}``; the first group never computes an input gradient."""
    c = [float(x) for x in costs]
    t = layer_times(len(c), t_0, strategy)
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


def time_speedup(stage_seconds: Mapping[int, float], times: Sequence[float]) -> float:
    """Time model: ``stage_seconds[k]`` is the step time with the first ``k`` groups frozen.

    Between ``times[k-1]`` and ``times[k]`` (``times[-1]`` taken as 0) the groups whose time has
    passed are frozen; each stage's step time is weighted by the fraction of training it lasts.
    """
    total, previous = 0.0, 0.0
    for t in times:
        if t > previous:
            total += stage_seconds[frozen_groups_at(previous, times)] * (t - previous)
            previous = t
    return 1.0 - total / stage_seconds[0]


def frozen_groups_at(fraction: float, times: Sequence[float]) -> int:
    """How many groups are frozen at ``fraction`` of training (those with ``t_i <= fraction``)."""
    return sum(1 for t in times if t <= fraction)


def freezing_stages(times: Sequence[float]) -> list[int]:
    """Distinct numbers of frozen groups the schedule trains through (0 included)."""
    return sorted({0} | {frozen_groups_at(t, times) for t in times if t < 1.0})


def group_costs(model: nn.Module, input_shape: Sequence[int]) -> list[float]:
    """Forward FLOPs of each layer group for one input of ``input_shape`` (with batch dim),
    counted with ``FlopCounterMode`` on the real model."""
    groups = model.layer_groups()
    param = next(model.parameters())
    x = torch.zeros(*input_shape, device=param.device, dtype=param.dtype)
    counts = [0.0] * len(groups)
    hooks = []
    counter = FlopCounterMode(display=False)

    def bracket(i: int) -> tuple[Callable, Callable]:
        def pre(module, args):
            counts[i] -= counter.get_total_flops()

        def post(module, args, out):
            counts[i] += counter.get_total_flops()
        return pre, post

    for i, g in enumerate(groups):
        for root in g.roots:  # a group's roots are disjoint subtrees: their counts add up
            pre, post = bracket(i)
            hooks += [root.register_forward_pre_hook(pre), root.register_forward_hook(post)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return counts


def measure_stage_seconds(
    model: nn.Module,
    make_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    stages: Sequence[int],
    steps: int = 5,
    warmup: int = 2,
    make_step: Callable | None = None,
) -> dict[int, float]:
    """Seconds of one training step with the first ``k`` groups frozen, for each ``k`` in
    ``stages``: the lower quartile of ``steps`` timed steps, since load from other processes only
    ever adds time. Drawing the batch is part of the step, as it is of a run's ``train_seconds``.

    Works on deep copies, so the caller's model and its statistics stay untouched.
    ``make_step(model, optimizer)`` returns the step function ``step(x, y)``, built once per stage
    (so a compiled step compiles during warm-up); the default is cross-entropy + SGD.
    """
    from .freezer import freeze_module  # local: keeps speedup.py free of the controller at import

    make_step = make_step or (lambda m, opt: functools.partial(default_train_step, m, opt))
    device = next(model.parameters()).device
    results: dict[int, float] = {}
    for k in sorted(set(stages)):
        probe = copy.deepcopy(model).train()
        for g in probe.layer_groups()[:k]:
            freeze_module(g)
        params = [p for p in probe.parameters() if p.requires_grad]
        step = make_step(probe, torch.optim.SGD(params, lr=0.0, momentum=0.9, nesterov=True, weight_decay=1e-4))
        samples = []
        for s in range(warmup + steps):
            synchronize(device)
            start = time.perf_counter()
            step(*make_batch())
            synchronize(device)
            if s >= warmup:
                samples.append(time.perf_counter() - start)
        results[k] = sorted(samples)[(len(samples) - 1) // 4]
    return results


def default_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x, y) -> None:
    """One plain training step: forward, cross-entropy, backward, SGD step."""
    loss = nn.functional.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def paper_applies(model: nn.Module, input_shape: Sequence[int]) -> bool:
    """Whether the ``paper`` model is defined here: a DenseNet-BC on 32x32 inputs."""
    return hasattr(model, "growth_rate") and tuple(input_shape[-2:]) == (32, 32)


def calc_speedup(
    model: nn.Module,
    input_shape: Sequence[int],
    t_0: float,
    strategy: str,
    method: str = "flops",
    make_batch: Callable | None = None,
    make_step: Callable | None = None,
) -> float:
    """Predicted fraction of training time saved by FreezeOut for ``model`` on ``input_shape``.

    ``method``: ``flops`` (default), ``paper`` (DenseNet-BC on 32x32 only) or ``time`` (measures
    step times on the model's device; needs ``make_batch`` returning a training batch, and takes
    an optional ``make_step(model, optimizer)``, see :func:`measure_stage_seconds`).
    """
    check_t_0(t_0)
    check_strategy(strategy)
    if method == "flops":
        return flops_speedup(group_costs(model, input_shape), t_0, strategy)
    if method == "paper":
        if not paper_applies(model, input_shape):
            raise ValueError("method='paper' is defined for DenseNet-BC on 32x32 inputs only")
        return paper_speedup(model.growth_rate, model.depth, t_0, strategy)
    if method == "time":
        if make_batch is None:
            raise ValueError("method='time' needs make_batch, a function returning (x, y)")
        times = layer_times(len(model.layer_groups()), t_0, strategy)
        measured = measure_stage_seconds(model, make_batch, freezing_stages(times), make_step=make_step)
        return time_speedup(measured, times)
    raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(METHODS)}")
