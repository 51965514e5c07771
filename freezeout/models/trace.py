"""Forward order of a model's modules and parameters, from one pass on a dummy input.

Layer groups must form a chain: what a group computes runs after every earlier group. A module's
position is when its forward starts; a parameter's is when a torch function first receives it,
which also places parameters no module of their own runs (a ViT's class token). Both share one
clock, so they can be compared.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten


@dataclass(frozen=True)
class Trace:
    """When each module first started and each parameter was first used (names relative to the
    traced model, ``""`` for itself); what never ran is missing."""

    module_start: dict[str, int]
    param_use: dict[str, int]


class _Clock:
    def __init__(self) -> None:
        self.now = 0

    def tick(self) -> int:
        self.now += 1
        return self.now


class _ParamUse(TorchFunctionMode):
    """Records the first torch call that receives each parameter."""

    def __init__(self, names: dict[int, str], clock: _Clock, first_use: dict[str, int]):
        super().__init__()
        self.names, self.clock, self.first_use = names, clock, first_use

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        now = self.clock.tick()
        for a in tree_flatten((args, kwargs))[0]:
            name = self.names.get(id(a)) if isinstance(a, torch.Tensor) else None
            if name is not None and name not in self.first_use:
                self.first_use[name] = now
        return func(*args, **kwargs)


def dummy_input(model: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """Zeros of ``input_shape`` on the model's device, in its dtype (meta models get meta)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(*input_shape, device=device, dtype=dtype)


def trace_forward(model: nn.Module, input_shape: Sequence[int]) -> Trace:
    """Run ``model`` once on zeros of ``input_shape`` (eval mode, no grad, RNG untouched) and
    record the forward order. The model's weights, buffers and train/eval flags are left as
    they were: eval mode keeps BatchNorm statistics still."""
    clock = _Clock()
    module_start: dict[str, int] = {}
    param_use: dict[str, int] = {}
    names = {id(p): n for n, p in model.named_parameters()}

    def pre_hook(name: str):
        def hook(module, args):
            if name not in module_start:
                module_start[name] = clock.tick()
        return hook

    hooks = [m.register_forward_pre_hook(pre_hook(n)) for n, m in model.named_modules()]
    flags = {m: m.training for m in model.modules()}
    x = dummy_input(model, input_shape)
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]), _ParamUse(names, clock, param_use):
            model(x)
    finally:
        for h in hooks:
            h.remove()
        for m, training in flags.items():
            m.training = training  # restore flags directly: a frozen module's train() is pinned
    return Trace(module_start, param_use)


class _Found(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def first_conv(model: nn.Module, input_shape: Sequence[int]) -> str | None:
    """Name of the first ``nn.Conv2d`` the forward pass runs (the stem), or None.

    The pass stops at that conv, so only what precedes it must accept ``input_shape``.
    """
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            def hook(module, args, name=name):
                raise _Found(name)
            hooks.append(m.register_forward_pre_hook(hook))
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model(dummy_input(model, input_shape))
    except _Found as found:
        return found.name
    finally:
        for h in hooks:
            h.remove()
        for m, training in flags.items():
            m.training = training
    return None
