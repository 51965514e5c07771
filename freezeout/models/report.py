"""A model's layer groups and when each one freezes, without training:

    python -m freezeout.groups model=torchvision model.name=resnet18 data=fashion_mnist
    python -m freezeout.groups model=timm model.name=convnext_atto model.max_groups=6 t_0=0.5

Takes the same Hydra overrides as ``run.py``, builds the model on the CPU and prints one row a
group: index, name, parameters, share of the forward FLOPs, and the freezing time ``t_i``.
Bad settings print one line and exit with status 2.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..freezing.rules import get_rule, run_schedule
from ..speedup.formulas import flops_speedup
from .flops import group_costs


@dataclass(frozen=True)
class GroupRow:
    """One layer group in the report."""

    index: int
    name: str
    params: int
    flops_share: float  # fraction of the model's forward FLOPs spent in this group
    t_i: float  # fraction of training after which the group freezes (1.0: never, the head)


def grouping_rows(groups: Sequence, costs: Sequence[float], times: Sequence[float]) -> list[GroupRow]:
    """The report's rows from a model's groups, their forward FLOPs and the schedule's times."""
    total = sum(costs) or 1.0
    return [GroupRow(i, g.name, sum(p.numel() for p in g.parameters()), c / total, t)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report for the config ``run.py`` would compose from ``argv``; 2 on bad input."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..errors import ConfigError, one_line
    from ..training.checks import validate
    from .factory import build_run_model, describe

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        cfg = _compose(list(sys.argv[1:] if argv is None else argv))
        cfg.device = "cpu"  # the report is about the model, wherever the run would train
        checked = validate(cfg)
        in_channels, size = checked.spec.in_channels, tuple(checked.spec.image_size)
        model = build_run_model(cfg, torch.device("cpu"), checked.spec)
        shape = (1, in_channels, *size)
        ipe = checked.iterations_per_epoch
        n = len(model.layer_groups())
        times = run_schedule(cfg, n, ipe, cfg.epochs * ipe).times
        rows = grouping_report(model, shape, times)
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        cause = f" ({e.__cause__})" if e.__cause__ is not None else ""
        message = str(e) if isinstance(e, ConfigError) else one_line(e) + cause
        print(f"error: {' '.join(message.split())}", file=sys.stderr)
        return 2
    speedup = flops_speedup([r.flops_share for r in rows], times)  # only the shares matter
    how = getattr(model, "grouping", "declared by the model")
    when = "decided during the run" if get_rule(cfg.strategy.name).adaptive else f"predicted speedup (flops) {speedup:.1%}"
    print(f"{describe(cfg.model)} on {cfg.data.name} ({in_channels}x{size[0]}x{size[1]}): {len(rows)} layer "
          f"groups ({how}); {cfg.strategy.name} t_0={cfg.t_0}: {when}")
    print(format_report(rows))
    return 0


def _compose(overrides: list[str]):
    from ..config import compose_config

    return compose_config(*overrides)


if __name__ == "__main__":
    sys.exit(main())
