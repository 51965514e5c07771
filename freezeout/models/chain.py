"""From group names to :class:`LayerGroup` objects; the chain check; fewer, balanced groups.

FreezeOut freezes a prefix of the groups, so they must form a chain (docs/design.md): every
parameter in exactly one group, and each group's parameters used by the forward pass after every
earlier group's. A grouping that is not a chain is refused with one line naming the parameter.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..errors import ConfigError
from .base import LayerGroup
from .grouping import GroupSpec
from .trace import Trace


def build_groups(net: nn.Module, specs: Sequence[GroupSpec]) -> list[LayerGroup]:
    """The :class:`LayerGroup` objects of ``specs``, on the modules of ``net``."""
    return [LayerGroup(s.name, [net.get_submodule(m) for m in s.modules], [net.get_parameter(p) for p in s.loose])
            for s in specs]


def check_chain(net: nn.Module, groups: Sequence[LayerGroup], trace: Trace) -> None:
    """Raise :class:`ConfigError` unless ``groups`` is a chain of ``net``'s parameters: each in
    exactly one group, and no group using a parameter before an earlier group's last one."""
    names = {id(p): n for n, p in net.named_parameters()}
    home: dict[int, int] = {}
    for i, g in enumerate(groups):
        for p in g.parameters():
            if id(p) in home:
                raise ConfigError(f"layer groups are not a chain: parameter {names.get(id(p), '?')!r} is in group "
                                  f"{home[id(p)]} ({groups[home[id(p)]].name}) and in group {i} ({g.name})")
            home[id(p)] = i
    for name, p in net.named_parameters():
        if id(p) not in home:
            raise ConfigError(f"layer groups are not a chain: parameter {name!r} is in no group")
    latest: tuple[int, str, int] | None = None  # (time, parameter, group) used last by earlier groups
    for i, g in enumerate(groups):
        used = sorted((trace.param_use[names[id(p)]], names[id(p)]) for p in g.parameters()
                      if names[id(p)] in trace.param_use)
        if not used:
            continue
        if latest is not None and used[0][0] < latest[0]:
            raise ConfigError(
                f"layer groups are not a chain: group {i} ({g.name}) has parameter {used[0][1]!r}, which the "
                f"forward pass uses before parameter {latest[1]!r} of the earlier group {latest[2]} "
                f"({groups[latest[2]].name}); list the groups in forward order")
        if latest is None or used[-1][0] > latest[0]:
            latest = (used[-1][0], used[-1][1], i)


def merge_groups(specs: Sequence[GroupSpec], costs: Sequence[float], max_groups: int) -> list[GroupSpec]:
    """At most ``max_groups`` groups: neighbouring body groups merged into runs of about equal
    forward cost (``costs``, e.g. FLOPs per group); the head stays a group of its own."""
    if max_groups < 2:
        raise ValueError(f"max_groups={max_groups}; need >= 2 (the head is a group of its own)")
    if len(specs) <= max_groups:
        return list(specs)
    body, head = list(specs[:-1]), specs[-1]
    merged, start = [], 0
    for size in balanced_segments(costs[:-1], max_groups - 1):
        run = body[start:start + size]
        start += size
        name = run[0].name if len(run) == 1 else f"{run[0].name} … {run[-1].name}"
        merged.append(GroupSpec(name, [m for s in run for m in s.modules], [p for s in run for p in s.loose]))
    return merged + [head]


def balanced_segments(costs: Sequence[float], k: int) -> list[int]:
    """Sizes of ``min(k, len(costs))`` contiguous runs of ``costs`` whose largest sum is as small
    as it can be (binary search on that bound, then the costliest runs split until there are k)."""
    costs = [max(0.0, float(c)) for c in costs]
    k = min(k, len(costs))

    def runs(bound: float) -> list[int]:
        sizes, total = [], None
        for c in costs:
            if total is None or total + c > bound:
                sizes.append(1)
                total = c
            else:
                sizes[-1] += 1
                total += c
        return sizes

    lo, hi = max(costs), sum(costs)
    for _ in range(100):  # the bound converges to within float precision well before this
        mid = (lo + hi) / 2
        if len(runs(mid)) <= k:
            hi = mid
        else:
            lo = mid
        if hi - lo <= 1e-9 * max(hi, 1.0):
            break
    sizes = runs(hi)
    while len(sizes) < k:  # splitting a run never raises the largest sum: split the costliest
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        keys = [(sum(costs[s:s + n]), n) if n > 1 else (-1.0, n) for s, n in zip(starts, sizes)]
        i = max(range(len(sizes)), key=keys.__getitem__)  # ties (zero costs): the longest run
        first = _best_split(costs[starts[i]:starts[i] + sizes[i]])
        sizes[i:i + 1] = [first, sizes[i] - first]
    return sizes


def _best_split(costs: Sequence[float]) -> int:
    """Where to cut a run in two (1 .. len-1) so that the larger half is smallest (ties: the
    middle)."""
    total, n = sum(costs), len(costs)
    return min(range(1, n), key=lambda i: (max(sum(costs[:i]), total - sum(costs[:i])), abs(2 * i - n)))
