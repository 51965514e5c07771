"""A model's layer groups and when each one freezes, as a table: one row a group with its index,
name, parameters, share of the forward FLOPs and freezing time ``t_i``. Printed by ``freezeout
groups`` (:mod:`freezeout.cli.groups`) and at the start of every run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from torch import nn

from .flops import group_costs


@dataclass(frozen=True)
class GroupRow:
    """One layer group in the report."""

    index: int
    name: str
    params: int
    flops_share: float  # fraction of the model's forward FLOPs spent in this group
    t_i: float  # fraction of training after which the group freezes (1.0: never, the head)


#: Short names of the layers a head holds (``6 (head: pool, flatten, fc)``); others: the class name.
SHORT = {"Linear": "fc", "Flatten": "flatten", "Dropout": "dropout", "Identity": None}
_KINDS = (("Pool", "pool"), ("Norm", "norm"), ("ReLU", "relu"), ("GELU", "gelu"), ("SiLU", "silu"))


def head_label(group) -> str:
    """The head's name with the layers it holds, so that pooling and flattening, which a head
    often carries without parameters, are seen: ``6 (head: pool, flatten, fc)``."""
    kinds = []
    for module in group.modules():
        if next(module.children(), None) is not None:  # containers: their layers are listed
            continue
        name = type(module).__name__
        kind = SHORT.get(name, next((short for key, short in _KINDS if key in name), name.lower()))
        if kind and (not kinds or kinds[-1] != kind):
            kinds.append(kind)
    return f"{group.name} (head: {', '.join(kinds)})" if len(kinds) > 1 else f"{group.name} (head)"


def grouping_rows(groups: Sequence, costs: Sequence[float], times: Sequence[float]) -> list[GroupRow]:
    """The report's rows from a model's groups, their forward FLOPs and the schedule's times;
    the head (last) is labelled with the layers it holds."""
    total = sum(costs) or 1.0
    last = len(groups) - 1
    return [GroupRow(i, head_label(g) if i == last else g.name, sum(p.numel() for p in g.parameters()), c / total, t)
            for i, (g, c, t) in enumerate(zip(groups, costs, times))]


def grouping_report(model: nn.Module, input_shape: Sequence[int], times: Sequence[float]) -> list[GroupRow]:
    """The table of ``model``'s layer groups for inputs of ``input_shape`` (with batch dim) and a
    schedule's freezing ``times``."""
    return grouping_rows(model.layer_groups(), group_costs(model, input_shape), times)


def format_report(rows: Sequence[GroupRow], input_bound_from: int | None = None) -> str:
    """``rows`` as an aligned text table; ``input_bound_from`` (the time model's, streamed data):
    the group whose freezing makes the loader the bound is marked."""
    width = max([len("group")] + [len(r.name) for r in rows])
    lines = [f"{'#':>3}  {'group':<{width}}  {'params':>11}  {'FLOPs':>6}  {'t_i':>5}"]
    lines += [f"{r.index:>3}  {r.name:<{width}}  {r.params:>11,}  {r.flops_share:>6.1%}  {r.t_i:>5.3f}" for r in rows]
    if input_bound_from == 0:
        lines.append("input-bound before any group freezes: the loader sets the pace, freezing saves no time")
    elif input_bound_from is not None and input_bound_from <= len(rows):
        lines[input_bound_from] += "  <- input-bound once frozen: freezing later groups saves no time"
    return "\n".join(lines)
