"""The one training engine: the train step, the inner loop over iterations, evaluation, and the
stage timing behind the time model. The trainer, the time model and the benchmark all train
through here; nothing else runs a training step.

The loop keeps the loss on the device and syncs with the host only every ``log_every``
iterations (divergence check, progress, loggers) and at its end, as airbench does.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import process_group as distributed
from ..distributed.gradsync import GradSync
from .devices import autocast_dtype, synchronize


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; ``iteration`` is how many iterations ran."""

    def __init__(self, loss: float, iteration: int):
        super().__init__(f"training loss became {loss} by iteration {iteration}")
        self.iteration = iteration


class TrainStep:
    """One optimisation step: forward, cross-entropy, backward, optimizer step, with the run's
    precision (autocast; fp16 with a gradient scaler), memory format and ``torch.compile``.

    Returns the loss as a device tensor: reading it back is left to the loop, once in a while.
    When several processes train together, the forward runs through DDP (``sync``, rebuilt at
    each freezing event), which all-reduces the trainable groups' gradients.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: str = "fp32",
                 device: torch.device = torch.device("cpu"), compile_model: bool = False,
                 channels_last: bool = False, cache=None):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.amp_dtype = autocast_dtype(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.channels_last = channels_last
        #: The frozen-prefix cache (freezeout.training.cache), when the batches come from it: the step then
        #: runs the model from the group the store stands at.
        self.cache, self.start = cache, 0
        if compile_model:
            compile_groups(model)
        self.sync = GradSync(model) if distributed.active() else None

    def on_freeze(self, frozen: int) -> None:
        """The loop calls this when the frozen prefix has grown to ``frozen`` groups (and once at
        its start): a distributed step rebuilds its DDP wrapper for the trainable groups (first:
        the newly frozen groups then hold rank 0's statistics before the cache stores their
        outputs); a cached step advances its store."""
        if self.sync is not None:
            self.sync.wrap(frozen)
        if self.cache is not None:
            self.start = self.cache.advance(frozen)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            if self.sync is not None:
                out = self.sync.forward(x, self.start)
            else:
                out = self.model(x) if self.start == 0 else self.model.forward_from(self.start, x)
            loss = F.cross_entropy(out, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if self.sync is not None:
            self.sync.step_done()
        return loss.detach()


def run_step_factory(cfg, device: torch.device, train_x: torch.Tensor) -> Callable[[nn.Module, torch.optim.Optimizer],
                                                                                "TrainStep"]:
    """``make_step(model, optimizer)``: the run's train step as ``cfg`` sets it (precision,
    compile, memory format) with the frozen-prefix cache over ``train_x`` when ``cache_frozen``.
    The one recipe for the trainer, its time model and the sweep plan."""
    from .cache import FrozenPrefixCache

    def make_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> TrainStep:
        cache = FrozenPrefixCache(model, train_x, cfg.cache_memory_gb * 1e9, cfg.cache_host) \
            if cfg.cache_frozen else None
        return TrainStep(model, optimizer, cfg.precision, device, compile_model=cfg.compile,
                         channels_last=cfg.channels_last, cache=cache)

    return make_step


def compile_groups(model: nn.Module) -> None:
    """``torch.compile`` each layer group's modules on their own: freezing a group then recompiles
    that group (and the next, whose input stops requiring grad) once, not the whole model.

    Groups share code objects (every bottleneck runs the same forward), so dynamo's per-code
    recompile limit must cover all groups' variants, or it silently falls back to eager."""
    groups = model.layer_groups()
    dynamo_config = torch._dynamo.config
    name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
    setattr(dynamo_config, name, max(getattr(dynamo_config, name), 4 * len(groups)))
    for group in groups:
        for root in group.roots:
            root.compile()


@dataclass
class LoopResult:
    """What :func:`run_iterations` did: the mean loss (over ``steps`` and the steps it continued
    from), the iteration it stopped at, the steps it ran and their seconds (callback time
    excluded), and the running loss sum and count, to continue from."""

    loss: float
    iteration: int
    steps: int
    seconds: float
    loss_sum: torch.Tensor
    seen: int


def run_iterations(step: TrainStep, controller, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   j: int, stop: int, log_every: int,
                   on_log: Callable[[int, float], None] | None = None,
                   interrupted: Callable[[], bool] | None = None, loss_sum: torch.Tensor | None = None,
                   seen: int = 0) -> LoopResult:
    """The inner loop: from iteration ``j`` until ``stop``, one controller call and one step per
    iteration; ``batches`` must last until ``stop``. The controller runs before the batch is
    drawn, so that a step whose batches come from the frozen-prefix cache sees the store of the
    stage it trains at (``step.on_freeze``). Every ``log_every`` iterations the summed loss is
    read back (the only host sync), checked and handed to ``on_log(iteration, mean_loss)``; the
    time spent in ``on_log`` is not counted in ``seconds``. ``interrupted()`` is polled at every
    step boundary and ends the loop early when it returns true. ``loss_sum`` and ``seen`` carry
    on an epoch's running loss (a resumed epoch). Raises :class:`Diverged`.

    With several processes, every process runs this loop on its shard of each batch; the losses
    read back are the means over all processes, so all see (and diverge at) the same values, and a
    stop request takes effect where all processes agree on it: at the next log point."""
    device = step.device
    loss_sum = torch.zeros((), device=device) if loss_sum is None else loss_sum.to(device)
    steps, callback_seconds, frozen = 0, 0.0, None
    synchronize(device)
    start = time.perf_counter()
    batches = iter(batches)
    while j < stop and not (interrupted is not None and interrupted()):
        k = controller.step(j)
        if k != frozen:  # freezing events (and the loop's start): the step adapts, timed as training
            step.on_freeze(k)
            frozen = k
        x, y = next(batches)
        loss_sum += step(x, y)
        j, seen, steps = j + 1, seen + 1, steps + 1
        if j % log_every == 0:
            mean = _finite(distributed.average(loss_sum).item() / seen, j)
            distributed.agree_stop(interrupted)  # where every process stands at the same iteration
            if on_log is not None:
                t = time.perf_counter()
                on_log(j, mean)
                callback_seconds += time.perf_counter() - t
    synchronize(device)
    seconds = time.perf_counter() - start - callback_seconds
    return LoopResult(_finite(distributed.average(loss_sum).item() / max(seen, 1), j), j, steps, seconds, loss_sum,
                      seen)


def _finite(loss: float, iteration: int) -> float:
    if not math.isfinite(loss):
        raise Diverged(loss, iteration)
    return loss


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32",
             batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and error rate (fraction) of ``model`` on ``(x, y)``, in eval mode (no
    BatchNorm statistic moves); the model's train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    amp_dtype = autocast_dtype(precision)
    loss_sum = torch.zeros((), device=x.device)
    wrong = torch.zeros((), device=x.device, dtype=torch.long)
    try:
        for i in range(0, len(x), batch_size):
            with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = model(x[i:i + batch_size])
            loss_sum += F.cross_entropy(out.float(), y[i:i + batch_size], reduction="sum")
            wrong += (out.argmax(1) != y[i:i + batch_size]).sum()
    finally:
        model.train(was_training)
    return loss_sum.item() / len(x), wrong.item() / len(x)


@dataclass
class StageTimings:
    """What :func:`measure_stage_seconds` measured: every timed chunk's seconds per step, and the
    seconds the step took to adapt when each stage began (the cache's store advance; ~0 else)."""

    samples: dict[int, list[float]]
    event_seconds: dict[int, float]


def measure_stage_seconds(model: nn.Module, make_controller: Callable, make_batches: Callable[[TrainStep], Iterator],
                          stages: Sequence[int], make_step: Callable[[nn.Module, torch.optim.Optimizer], TrainStep],
                          steps: int = 4, chunks: int = 3, warmup: int = 2) -> StageTimings:
    """Seconds per training step with the first ``k`` groups frozen, for each ``k`` in ``stages``.

    ``chunks`` passes over the stages: each pass takes a fresh deep copy of ``model`` (the
    caller's model and its statistics stay untouched), freezes it further stage by stage as in
    training, and at each stage runs the engine's own loop (controller call, step, loss read-back)
    ``warmup`` steps untimed, then ``steps`` timed steps. Each stage's samples thus come from
    different passes, so a slow spell of a shared machine hits every stage alike instead of
    tilting the ratios. ``make_controller(groups)`` returns a controller whose schedule freezes
    nothing by itself; ``make_step(model, optimizer)`` the step; ``make_batches(step)`` the
    endless batch stream it trains on. ``event_seconds[k]``: the median over passes.
    """
    stages = sorted(set(stages))
    samples: dict[int, list[float]] = {k: [] for k in stages}
    events: dict[int, list[float]] = {k: [] for k in stages}
    for _ in range(chunks):
        probe = copy.deepcopy(model).train()
        controller = make_controller(probe.layer_groups())
        step = make_step(probe, controller.optimizer)
        batches = make_batches(step)
        for k in stages:
            controller.freeze_prefix(k)
            synchronize(step.device)
            start = time.perf_counter()
            step.on_freeze(k)  # as the loop does at a freezing event
            synchronize(step.device)
            events[k].append(time.perf_counter() - start)
            run_iterations(step, controller, batches, 0, warmup, log_every=max(warmup, 1))
            r = run_iterations(step, controller, batches, 0, steps, log_every=steps)
            samples[k].append(r.seconds / r.steps)
    return StageTimings(samples, {k: statistics.median(v) for k, v in events.items()})


def median_stage_seconds(samples: dict[int, list[float]]) -> dict[int, float]:
    """The time model's statistic over :func:`measure_stage_seconds`' chunks: the median."""
    return {k: statistics.median(v) for k, v in samples.items()}
