"""``freezeout groups KEY=VALUE ...`` (also ``python -m freezeout.groups``): a model's layer groups
and when each one freezes, without training:

    freezeout groups model=torchvision model.name=resnet18 data=fashion_mnist
    freezeout groups model=timm model.name=convnext_atto model.max_groups=6 t_0=0.5

Takes the same Hydra overrides as ``freezeout train``, builds the model on the CPU and prints the
table of :mod:`freezeout.models.report`. Bad settings print one line and exit with status 2.
"""
from __future__ import annotations

import logging
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report for the config ``freezeout train`` would compose from ``argv``; 2 on bad input."""
    import torch
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..config import compose_config
    from ..errors import ConfigError, one_line
    from ..freezing.rules import get_rule, run_schedule
    from ..models.factory import build_run_model, describe
    from ..models.report import format_report, grouping_report
    from ..speedup.formulas import flops_speedup
    from ..training.checks import validate
    from .hydraerrors import compose_error_line

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cfg = compose_config(*argv)
        cfg.device = "cpu"  # the report is about the model, wherever the run would train
        checked = validate(cfg)
        in_channels, size = checked.spec.in_channels, tuple(checked.spec.image_size)
        model = build_run_model(cfg, torch.device("cpu"), checked.spec)
        ipe = checked.iterations_per_epoch
        times = run_schedule(cfg, len(model.layer_groups()), ipe, cfg.epochs * ipe).times
        rows = grouping_report(model, (1, in_channels, *size), times)
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        line = None if isinstance(e, ConfigError) else compose_error_line(e, argv)
        if line is None:
            cause = f" ({e.__cause__})" if e.__cause__ is not None else ""
            line = "error: " + " ".join((str(e) if isinstance(e, ConfigError) else one_line(e) + cause).split())
        print(line, file=sys.stderr)
        return 2
    speedup = flops_speedup([r.flops_share for r in rows], times)  # only the shares matter
    how = getattr(model, "grouping", "declared by the model")
    when = "decided during the run" if get_rule(cfg.strategy.name).adaptive else f"predicted speedup (flops) {speedup:.1%}"
    print(f"{describe(cfg.model)} on {cfg.data.name} ({in_channels}x{size[0]}x{size[1]}): {len(rows)} layer "
          f"groups ({how}); {cfg.strategy.name} t_0={cfg.t_0}: {when}")
    print(format_report(rows))
    return 0
