"""FreezeOut in training code the harness does not own: :class:`FreezeController`, the harness's
own controller (:func:`freezeout.freezing.rules.make_controller` over the rule's schedule) behind
one object for a plain PyTorch loop or any trainer:

    controller = FreezeController(net, lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9),
                                  total_steps=epochs * len(loader), rule="cubic", t_0=0.8,
                                  input_shape=(1, 1, 28, 28))
    for x, y in loader:                     # every epoch
        controller.optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        controller.optimizer.step()
        controller.step()                   # rates for the next step; freezes what is due

The optimizer is built by the controller, from a factory (an optimizer class, a
``functools.partial`` or a lambda taking the parameter groups): FreezeOut needs one parameter
group per layer group, with a rate of its own, and takes a frozen group out of the optimizer.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..freezing.rules import check_strategy_config, get_rule, make_controller, realised_times, strategy_schedule
from ..freezing.rules.registry import SCHEDULE_KEYS
from ..models.adapters import group_model
from ..models.base import LayerGroup
from ..models.flops import group_costs
from ..speedup.formulas import flops_speedup


class FreezeController:
    """Per-layer-group learning rates and freezing for ``model`` over ``total_steps`` optimizer steps.

    ``model``: any ``nn.Module``. Its layer groups (input to output, the head last) are
    ``groups`` when given (modules, or parameter-name prefixes / regexes), else the model's own
    ``layer_groups()``, else found by tracing one forward pass of an input of ``input_shape``
    (batch dimension included) with the harness's grouping.
    ``optimizer``: a factory ``f(param_groups) -> torch.optim.Optimizer``; the controller builds
    the optimizer (:attr:`optimizer`) with one parameter group per layer group.
    ``rule``: ``linear | squared | cubic`` (FreezeOut, with ``t_0`` and ``scale_lr``), ``none``
    (the baseline: cosine annealing, nothing frozen), ``layer_freezing`` (``freeze_start``,
    ``freeze_level``; needs ``steps_per_epoch``: it acts at epoch ends) or ``autofreeze``
    (``interval``, ``percentile``, ``max_per_check``); options left out take the harness's
    defaults (its schema, e.g. ``LayerFreezingConfig``). ``lr``: the base rate of the schedule; default: the
    optimizer's own (``optimizer.defaults["lr"]``).

    Call :meth:`step` after every optimizer step (before the next ``zero_grad``: ``autofreeze``
    reads the gradients). Bad settings raise ``ValueError`` (one line).
    """

    def __init__(self, model: nn.Module, optimizer: Callable[[list[dict]], torch.optim.Optimizer], total_steps: int,
                 rule: str = "cubic", *, t_0: float | None = None, scale_lr: bool | None = None,
                 lr: float | None = None, groups: Sequence | None = None,
                 input_shape: Sequence[int] | None = None, steps_per_epoch: int | None = None, **options: Any):
        if isinstance(optimizer, torch.optim.Optimizer) or not callable(optimizer):
            raise TypeError("optimizer: give a factory such as `lambda groups: torch.optim.SGD(groups, lr=0.1)`, "
                            "not a built optimizer: the controller builds it with one parameter group per layer group")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps={total_steps!r}; need an integer >= 1 (optimizer steps in all)")
        strategy = rule_settings(rule, options)
        settings = {"t_0": SCHEDULE_KEYS["t_0"] if t_0 is None else t_0,
                    "scale_lr": SCHEDULE_KEYS["scale_lr"] if scale_lr is None else scale_lr}
        check_strategy_config({"strategy": strategy, **settings})
        if get_rule(rule).at_epoch_ends and steps_per_epoch is None:
            raise ValueError(f"rule={rule} freezes at epoch ends: give steps_per_epoch")
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.model, layer_groups = _grouped(model, groups, self.input_shape)
        self.rule, self.total_steps = rule, total_steps
        self.settings = {**strategy, **settings}  # the rule's settings, defaults filled in
        base_lr = _default_lr(optimizer) if lr is None else lr
        schedule = strategy_schedule(strategy, len(layer_groups), settings["t_0"], settings["scale_lr"],
                                     steps_per_epoch or total_steps, total_steps, base_lr)
        self._controller = make_controller(strategy, layer_groups, schedule, optimizer)
        self.iteration = 0  # the optimizer step the current rates are for
        self._controller.step(0)

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer to step: one parameter group per layer group (a frozen group's is empty)."""
        return self._controller.optimizer

    @property
    def groups(self) -> list:
        """The layer groups, input to output, the head last."""
        return self._controller.groups

    @property
    def num_frozen(self) -> int:
        """How many groups are frozen (always the first ones)."""
        return self._controller.num_frozen

    @property
    def frozen_at(self) -> list[int | None]:
        """The step at which each group froze (None while it trains)."""
        return list(self._controller.frozen_at)

    @property
    def freeze_at(self) -> tuple[int, ...]:
        """The step at which each group freezes by the schedule (``total_steps``: never)."""
        return self._controller.schedule.freeze_at

    def rates(self) -> list[float]:
        """Each group's learning rate for the next optimizer step (0.0 once frozen)."""
        return [pg["lr"] for pg in self.optimizer.param_groups]

    def step(self) -> int:
        """After an optimizer step: set each group's rate for the next one and freeze the groups
        whose time has come. Returns how many groups are frozen. Past ``total_steps`` nothing
        changes any more."""
        self.iteration += 1
        if self.iteration < self.total_steps:
            self._controller.step(self.iteration)
        return self.num_frozen

    def predicted_speedup(self, input_shape: Sequence[int] | None = None) -> float:
        """The fraction of training compute saved, by the FLOPs model: each group's forward FLOPs
        (counted on the model for one input of ``input_shape``) weighed by its freezing time. An
        adaptive rule's (``autofreeze``) is that of the freezing so far."""
        shape = tuple(input_shape) if input_shape is not None else self.input_shape
        if shape is None:
            raise ValueError("predicted_speedup needs input_shape (one input, batch dimension included)")
        schedule = self._controller.schedule
        times = realised_times(self.frozen_at, self.total_steps) if get_rule(self.rule).adaptive else schedule.times
        return flops_speedup(group_costs(self.model, shape), times)

    def state_dict(self) -> dict:
        """The step count, the frozen prefix, when each group froze and the optimizer's state."""
        return {"iteration": self.iteration, **self._controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: re-freeze the same groups, then load the optimizer. Without
        an ``"optimizer"`` entry the optimizer is left as it is (for trainers that checkpoint it)."""
        inner = self._controller
        inner.freeze_prefix(state["num_frozen"])
        inner.load_state_dict({"optimizer": self.optimizer.state_dict(), **state})
        self.iteration = state["iteration"]
        if self.iteration < self.total_steps:  # the rates of the step it stopped before
            for i in range(inner.num_frozen, len(inner.groups)):
                self.optimizer.param_groups[i]["lr"] = inner.schedule.lr_at(i, self.iteration)

    def __repr__(self) -> str:
        return (f"FreezeController(rule={self.rule!r}, {len(self.groups)} groups, {self.num_frozen} frozen, "
                f"step {self.iteration}/{self.total_steps})")


def rule_settings(rule: str, options: dict) -> dict:
    """``{"name": rule, **options}``, the options the caller left out taken from the rule's schema
    (its dataclass, the one place their defaults are written); ValueError for an unknown rule or
    option, or an option without a default left out."""
    declared = get_rule(rule)
    allowed = declared.options
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"{unknown[0]}={options[unknown[0]]!r} does not apply to rule={rule}; its options: "
                         f"{', '.join(allowed) or 'none'} (and t_0, scale_lr for linear, squared, cubic)")
    defaults = declared.defaults()
    settings = {k: options.get(k, defaults[k]) for k in allowed}
    missing = [k for k, v in settings.items() if v is None or v == "???"]
    if missing:
        raise ValueError(f"rule={rule} needs {', '.join(missing)}")
    return {"name": rule, **settings}


class _Listed(nn.Module):
    """The user's net with the layer groups given for it (what FLOP counting needs)."""

    def __init__(self, net: nn.Module, groups: list):
        super().__init__()
        self.net, self._groups = net, groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def layer_groups(self) -> list:
        return self._groups


def _grouped(model: nn.Module, groups: Sequence | None, input_shape: tuple | None) -> tuple[nn.Module, list]:
    """The model as a grouped model (``layer_groups()``) and its layer groups."""
    if groups is None and hasattr(model, "layer_groups"):
        return model, model.layer_groups()
    if groups is None or all(isinstance(g, str) for g in groups):
        if input_shape is None:
            raise ValueError("finding the layer groups traces one forward pass: give input_shape (e.g. (1, 3, 32, 32)), "
                             "or the groups as a list of modules")
        grouped = group_model(model, input_shape, "auto" if groups is None else list(groups))
        return grouped, grouped.layer_groups()
    own = {id(m) for m in model.modules()}
    listed = [g if hasattr(g, "roots") else LayerGroup(f"group {i} ({type(g).__name__})", _roots(g, own))
              for i, g in enumerate(groups)]
    covered = {id(p) for g in listed for p in g.parameters()}
    left = [name for name, p in model.named_parameters() if p.requires_grad and id(p) not in covered]
    if left:
        raise ValueError(f"{len(left)} trainable parameters are in no layer group (e.g. {', '.join(left[:3])}): "
                         "every one must be in a group, or it would never train")
    return _Listed(model, listed), listed


def _roots(module: nn.Module, own: set[int]) -> list[nn.Module]:
    """The model's own modules that make up ``module``: itself, or for a container built for the
    occasion (``net[0:4]`` makes a new ``nn.Sequential``), its children; the forward pass runs
    those, so the FLOP counter's hooks on them see it."""
    if id(module) in own:
        return [module]
    return [root for child in module.children() for root in _roots(child, own)]


def _default_lr(factory: Callable[[list[dict]], torch.optim.Optimizer]) -> float:
    """The rate ``factory``'s optimizer uses by default, read off a throwaway instance."""
    probe = factory([{"params": [nn.Parameter(torch.zeros(1))]}])
    return float(probe.defaults["lr"])
