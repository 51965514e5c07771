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
    """``cls(param_groups, **settings)``, fused when every parameter is a floating CUDA tensor
    (fused SGD with :func:`zero_momentum_first`)."""
    param_groups = list(param_groups)  # a generator of parameters is read once
    params = [p for g in param_groups for p in (g["params"] if isinstance(g, dict) else [g])]
    if params and all(p.is_cuda and p.is_floating_point() for p in params):
        settings["fused"] = True
    optimizer = cls(param_groups, **settings)
    if settings.get("fused") and isinstance(optimizer, torch.optim.SGD):
        optimizer.register_step_pre_hook(zero_momentum_first)
    return optimizer


def zero_momentum_first(optimizer: torch.optim.Optimizer, args=(), kwargs=None) -> None:
    """Before each step of a fused SGD: a parameter about to be stepped that has no momentum
    buffer gets one of zeros. Fused SGD makes a missing buffer with ``torch.empty_like`` and
    leaves it to the kernel to write; when the gradient scaler finds an inf (fp16's first steps,
    at a scale of 2**16) the kernel skips the step, the buffer keeps whatever the memory held,
    and the next step's momentum starts from it. From zeros it starts right: with no dampening
    (the project never sets one) ``momentum * 0 + grad`` is exactly the ``grad`` SGD's first step
    takes as its buffer, so the updates equal unfused SGD's, skipped steps or not. (Not fusing
    under a scaler would be right too, but costs the host sync a step that fusing avoids: an
    unfused optimizer makes the scaler read whether it found an inf before each step.)"""
    for group in optimizer.param_groups:
        if group["momentum"] == 0:
            continue
        for p in group["params"]:
            if p.grad is not None and optimizer.state[p].get("momentum_buffer") is None:
                optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
