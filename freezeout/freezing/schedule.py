"""FreezeOut's schedule: when each layer group freezes and its learning rate until then.

Pure math, no torch. The semantics (docs/design.md, "FreezeOut, exactly"):
``t_i = s(t_0 + (1 - t_0) * i / (n - 1))`` with ``s`` the strategy's power, and a cosine-annealed
rate that reaches zero at ``t_i * T``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

#: Strategy name -> power of the scaling function s(x) = x ** p.
STRATEGY_POWERS = {"linear": 1, "squared": 2, "cubic": 3}
BASELINE = "none"  # the baseline's strategy: every t_i = 1 (plain cosine annealing, nothing frozen)
STRATEGIES = (BASELINE, *STRATEGY_POWERS)


@dataclass
class FreezeOutSettings:
    """FreezeOut's own settings, top-level keys of a run config (the run schema,
    ``freezeout.config.Config``, extends this class): the one place their defaults are written."""

    t_0: float = 0.8  # fraction of training after which the first group freezes, before scaling
    scale_lr: bool = True  # start group i at lr / t_i
    const_time: bool = False  # train T / (1 - predicted speedup) iterations: the baseline's budget


def check_strategy(strategy: str) -> None:
    """Raise ValueError unless ``strategy`` is a known strategy name."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is unknown; allowed: {', '.join(STRATEGIES)}")


def check_t_0(t_0: float) -> None:
    """Raise ValueError unless ``0 < t_0 <= 1``."""
    if isinstance(t_0, bool) or not isinstance(t_0, (int, float)) or not 0.0 < t_0 <= 1.0:
        raise ValueError(f"t_0={t_0!r} is outside the allowed range (0, 1]")


def scale(x: float, strategy: str) -> float:
    """The strategy's scaling function s(x); identity for ``none`` (whose times are all 1)."""
    check_strategy(strategy)
    return x ** STRATEGY_POWERS.get(strategy, 1)


def layer_times(n: int, t_0: float, strategy: str) -> list[float]:
    """Fraction of training after which each of ``n`` groups freezes; the last group gets 1.0."""
    if n < 1:
        raise ValueError(f"n={n!r} layer groups; need at least 1")
    check_t_0(t_0)
    check_strategy(strategy)
    if strategy == BASELINE or n == 1:
        return [1.0] * n
    return [scale(t_0 + (1.0 - t_0) * i / (n - 1), strategy) for i in range(n - 1)] + [1.0]


def freeze_iteration(t_i: float, total_iters: int) -> int:
    """First 0-based iteration ``j`` with ``j >= t_i * T``: the group is frozen from then on."""
    # Round off float noise first: 0.8**3 * 1000 == 512.0000000000001 must freeze at 512, not 513.
    return math.ceil(round(t_i * total_iters, 9))


def learning_rate(j: int, t_i: float, total_iters: int, lr: float, scale_lr: bool) -> float:
    """Learning rate of a group with time ``t_i`` at iteration ``j``; 0.0 once it is frozen.

    ``lr`` is the base rate; with ``scale_lr`` the group starts at ``lr / t_i`` so that groups
    trained for less time take larger steps (the 0.5 of the paper's code kept).
    """
    if j >= freeze_iteration(t_i, total_iters):
        return 0.0
    lr0 = lr / t_i if scale_lr else lr
    return 0.5 * lr0 * (1.0 + math.cos(math.pi * j / (t_i * total_iters)))


@dataclass(frozen=True)
class Schedule:
    """A run's schedule, computed once and passed around as a value: when each layer group
    freezes and its learning rate until then. The controller, the FLOP model and the time model
    all read the same one."""

    times: tuple[float, ...]  # t_i: fraction of training after which group i freezes
    total_iters: int  # T: iterations of the whole run
    lr: float  # base learning rate
    scale_lr: bool  # start group i at lr / t_i (FreezeOut's annealing only)
    #: "per_group": group i anneals to zero at t_i (FreezeOut); "global": every group follows the
    #: baseline's cosine over all of training and is cut off when it freezes (the peer rules).
    anneal: str = "per_group"
    freeze_at: tuple[int, ...] = field(init=False)  # first frozen iteration of each group

    def __post_init__(self):
        if self.total_iters < 1:
            raise ValueError(f"total_iters={self.total_iters!r}; need at least 1 iteration")
        if self.anneal not in ("per_group", "global"):
            raise ValueError(f"anneal={self.anneal!r}; allowed: per_group, global")
        object.__setattr__(self, "times", tuple(self.times))
        object.__setattr__(self, "freeze_at", tuple(freeze_iteration(t, self.total_iters) for t in self.times))

    @classmethod
    def freezeout(cls, n: int, t_0: float, strategy: str, total_iters: int, lr: float,
                  scale_lr: bool) -> "Schedule":
        """FreezeOut's schedule for ``n`` groups (docs/design.md, "Freezing times")."""
        return cls(tuple(layer_times(n, t_0, strategy)), total_iters, lr, scale_lr)

    def lr_at(self, i: int, j: int) -> float:
        """Learning rate of group ``i`` at iteration ``j`` (0.0 once it is frozen)."""
        if self.anneal == "global":
            return 0.0 if j >= self.freeze_at[i] else learning_rate(j, 1.0, self.total_iters, self.lr, False)
        return learning_rate(j, self.times[i], self.total_iters, self.lr, self.scale_lr)
