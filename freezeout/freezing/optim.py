"""Optimizers by name (``optimizer=sgd|adamw``): a factory the controller calls with its
per-layer-group parameter groups. The controller sets each group's rate every iteration, so the
``lr`` given here is only the optimizer's default."""
from __future__ import annotations

import functools
from typing import Any, Mapping

import torch

from ..errors import ConfigError
from .controller import OptimizerFactory

OPTIMIZERS = ("sgd", "adamw")


def check_optimizer(cfg: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key and what is allowed, for any bad setting."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    name = cfg["name"]
    need(name in OPTIMIZERS, f"optimizer={name!r} is unknown; allowed: {', '.join(OPTIMIZERS)}")
    need(cfg["lr"] > 0, f"optimizer.lr={cfg['lr']}; need a learning rate > 0")
    need(cfg["weight_decay"] >= 0, f"optimizer.weight_decay={cfg['weight_decay']}; need >= 0")
    if name == "sgd":
        need(0.0 <= cfg["momentum"] < 1.0, f"optimizer.momentum={cfg['momentum']}; allowed: [0, 1)")
        need(not (cfg["nesterov"] and cfg["momentum"] == 0),
             "optimizer.nesterov=true needs optimizer.momentum > 0 (momentum=0); "
             "set a momentum or nesterov=false")
    else:
        betas = list(cfg["betas"])
        need(len(betas) == 2 and all(0.0 <= b < 1.0 for b in betas),
             f"optimizer.betas={betas}; need two values in [0, 1)")
        need(cfg["eps"] > 0, f"optimizer.eps={cfg['eps']}; need > 0")


def optimizer_factory(cfg: Mapping[str, Any]) -> OptimizerFactory:
    """The optimizer ``cfg`` names, as a function of the controller's parameter groups. On CUDA
    it is the fused implementation (one kernel for all parameters; with fp16's gradient scaler it
    takes the inf check and unscaling inside, where a plain optimizer would sync the host every
    step to read whether the scaler found an inf)."""
    check_optimizer(cfg)
    if cfg["name"] == "sgd":
        return functools.partial(_build, torch.optim.SGD, lr=cfg["lr"], momentum=cfg["momentum"],
                                 nesterov=cfg["nesterov"], weight_decay=cfg["weight_decay"])
    return functools.partial(_build, torch.optim.AdamW, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
                             weight_decay=cfg["weight_decay"])


def _build(cls: type, param_groups, **settings) -> torch.optim.Optimizer:
    """``cls(param_groups, **settings)``, fused when every parameter is a floating CUDA tensor."""
    param_groups = list(param_groups)  # a generator of parameters is read once
    params = [p for g in param_groups for p in (g["params"] if isinstance(g, dict) else [g])]
    if params and all(p.is_cuda and p.is_floating_point() for p in params):
        settings["fused"] = True
    return cls(param_groups, **settings)
