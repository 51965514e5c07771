"""The one training engine: the train step, the inner loop over iterations and evaluation. The
trainer, the time model (through :mod:`~freezeout.training.stagetiming`) and the benchmark all
train through here; nothing else runs a training step.

The loop keeps the loss on the device and syncs with the host only every ``log_every``
iterations (divergence check, progress, loggers), at freezing events (where a stage's seconds
end) and at its end, as airbench does.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import process_group as distributed
from ..distributed.gradsync import GradSync
from .compiling import CompileLog, compile_groups
from .devices import autocast_dtype, even_chunks, set_fp32_math, synchronize

log = logging.getLogger("freezeout")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; ``iteration`` is how many iterations ran."""

    def __init__(self, loss: float, iteration: int):
        super().__init__(f"training loss became {loss} by iteration {iteration}")
        self.iteration = iteration


class TrainStep:
    """One optimisation step: forward, cross-entropy, backward, optimizer step, with the run's
    precision (autocast; fp16 with a gradient scaler; tf32 or IEEE float32 arithmetic), memory
    format and ``torch.compile`` (two forms a layer group: :mod:`freezeout.training.compiling`).

    Returns the loss as a device tensor: reading it back is left to the loop, once in a while.
    When several processes train together, the forward runs through DDP (``sync``, rebuilt at
    each freezing event), which all-reduces the trainable groups' gradients.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, precision: str = "fp32",
                 device: torch.device = torch.device("cpu"), compile_model: bool = False,
                 channels_last: bool = False, cache=None, compile_log: CompileLog | None = None):
        self.model, self.optimizer, self.device, self.precision = model, optimizer, device, precision
        self.amp_dtype = autocast_dtype(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.channels_last = channels_last
        #: Batches that came in another memory format than the model's and were converted: the
        #: data should be stored channels-last once, not converted every step.
        self.format_copies = 0
        #: The frozen-prefix cache (freezeout.training.cache), when the batches come from it: the step then
        #: runs the model from the group the store stands at.
        self.cache, self.start = cache, 0
        if compile_model:
            compile_log = compile_log if compile_log is not None else CompileLog()
            compile_groups(model, compile_log, device)
        self.compile_log = compile_log if compile_model else None
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
        if self.channels_last and x.dim() == 4 and not x.is_contiguous(memory_format=torch.channels_last):
            x = self._to_channels_last(x)
        set_fp32_math(self.device, self.precision)
        if self.compile_log is not None:
            with self.compile_log.timing():  # a backward compiled at its first call is timed too
                return self._step(x, y)
        return self._step(x, y)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
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

    def _to_channels_last(self, x: torch.Tensor) -> torch.Tensor:
        if self.format_copies == 0:
            log.warning("channels_last=true but the batches come in NCHW: each one is copied to NHWC")
        self.format_copies += 1
        return x.contiguous(memory_format=torch.channels_last)


class RunSteps:
    """``make_step(model, optimizer)``: the run's train step as ``cfg`` sets it (precision,
    compile, memory format), with the frozen-prefix cache over ``train_x`` when ``cache_frozen``
    (``auto``: the store is read only at :attr:`cache_stages`, which the time model picks). The
    one recipe for the trainer, its time model and the sweep plan; the steps it makes book their
    compilations in the run's one :attr:`compile_log`."""

    def __init__(self, cfg, device: torch.device, train_x):
        from .cache import cache_mode

        self.cfg, self.device, self.train_x = cfg, device, train_x
        self.cache_mode = cache_mode(cfg.cache_frozen)  # off | on | auto
        self.cache_stages: set[int] | None = None  # None: every stage reads the store
        self.compile_log = CompileLog(cfg.get("compile_backend", "inductor")) if cfg.compile else None

    def __call__(self, model: nn.Module, optimizer: torch.optim.Optimizer, cached: bool | None = None) -> TrainStep:
        """The run's step; ``cached`` overrides whether it trains from the cache (the time model
        measures both for ``cache_frozen=auto``)."""
        from .cache import FrozenPrefixCache

        cfg = self.cfg
        cached = self.cache_mode != "off" if cached is None else cached
        cache = FrozenPrefixCache(model, self.train_x, cfg.cache_memory_gb * 1e9, cfg.cache_host, cfg.precision,
                                  stages=self.cache_stages) if cached else None
        return TrainStep(model, optimizer, cfg.precision, self.device, compile_model=cfg.compile,
                         channels_last=cfg.channels_last, cache=cache, compile_log=self.compile_log)


def run_step_factory(cfg, device: torch.device, train_x) -> RunSteps:
    """The run's :class:`RunSteps`."""
    return RunSteps(cfg, device, train_x)


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
    #: seconds and steps by freezing stage (groups frozen): ``{k: [seconds, steps]}``, the loop's
    #: ``seconds`` split at its freezing events (the device synchronised there: a handful a run)
    stage_seconds: dict = field(default_factory=dict)


def add_stage(totals: dict, k: int, seconds: float, steps: int) -> None:
    """Add ``seconds`` over ``steps`` at freezing stage ``k`` to ``totals`` (``{k: [seconds, steps]}``)."""
    got = totals.setdefault(k, [0.0, 0])
    got[0] += seconds
    got[1] += steps


def run_iterations(step: TrainStep, controller, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                   j: int, stop: int, log_every: int,
                   on_log: Callable[[int, float], None] | None = None,
                   interrupted: Callable[[], bool] | None = None, loss_sum: torch.Tensor | None = None,
                   seen: int = 0, on_pause: Callable[[int], None] | None = None, pause_every: int = 1) -> LoopResult:
    """The inner loop: from iteration ``j`` until ``stop``, one controller call and one step per
    iteration; ``batches`` must last until ``stop``. The controller runs before the batch is
    drawn, so that a step whose batches come from the frozen-prefix cache sees the store of the
    stage it trains at (``step.on_freeze``). Every ``log_every`` iterations the summed loss is
    read back (the only host sync), checked and handed to ``on_log(iteration, mean_loss)``; the
    time spent in ``on_log`` is not counted in ``seconds``. ``interrupted()`` is polled at every
    step boundary and ends the loop early when it returns true. ``loss_sum`` and ``seen`` carry
    on an epoch's running loss (a resumed epoch). Every ``pause_every`` iterations, once the
    step's work is done (synchronised), ``on_pause(iteration)`` may hand the machine to another
    run; its time is not counted either. The seconds are also split by freezing stage
    (``LoopResult.stage_seconds``). Raises :class:`Diverged`.

    With several processes, every process runs this loop on its shard of each batch; the losses
    read back are the means over all processes, so all see (and diverge at) the same values, and a
    stop request takes effect where all processes agree on it: at the next log point."""
    device = step.device
    loss_sum = torch.zeros((), device=device) if loss_sum is None else loss_sum.to(device)
    steps, callback_seconds, frozen = 0, 0.0, None
    by_stage: dict[int, list] = {}
    synchronize(device)
    start = time.perf_counter()
    stage_start, stage_steps = start, 0  # the current stage's: its training seconds are split off at each event

    def close_stage(now: float) -> None:
        if frozen is not None and stage_steps:
            add_stage(by_stage, frozen, now - stage_start - (callback_seconds - stage_callbacks), stage_steps)

    stage_callbacks = 0.0
    batches = iter(batches)
    while j < stop and not (interrupted is not None and interrupted()):
        k = controller.step(j)
        if k != frozen:  # freezing events (and the loop's start): the step adapts, timed as training
            if frozen is not None:
                synchronize(device)  # the last stage's work is done: its seconds end here
                now = time.perf_counter()
                close_stage(now)
                stage_start, stage_steps, stage_callbacks = now, 0, callback_seconds
            step.on_freeze(k)
            frozen = k
        x, y = next(batches)
        loss_sum += step(x, y)
        j, seen, steps, stage_steps = j + 1, seen + 1, steps + 1, stage_steps + 1
        if j % log_every == 0:
            mean = _finite(distributed.average(loss_sum).item() / seen, j)
            distributed.agree_stop(interrupted)  # where every process stands at the same iteration
            if on_log is not None:
                t = time.perf_counter()
                on_log(j, mean)
                callback_seconds += time.perf_counter() - t
        if on_pause is not None and j % pause_every == 0:
            synchronize(device)  # the work queued so far is this run's, not the next one's
            t = time.perf_counter()
            on_pause(j)
            callback_seconds += time.perf_counter() - t
    synchronize(device)
    end = time.perf_counter()
    close_stage(end)
    seconds = end - start - callback_seconds
    return LoopResult(_finite(distributed.average(loss_sum).item() / max(seen, 1), j), j, steps, seconds, loss_sum,
                      seen, by_stage)


def _finite(loss: float, iteration: int) -> float:
    if not math.isfinite(loss):
        raise Diverged(loss, iteration)
    return loss


@torch.no_grad()
def evaluate(model: nn.Module, x, y: torch.Tensor, precision: str = "fp32",
             batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and error rate (fraction) of ``model`` on ``(x, y)``, in eval mode (no
    BatchNorm statistic moves); the model's train/eval mode is restored afterwards. Batches of
    near-equal size (at most ``batch_size``): no small last batch for a compiled model."""
    was_training = model.training
    model.eval()
    amp_dtype = autocast_dtype(precision)
    loss_sum = torch.zeros((), device=y.device)
    wrong = torch.zeros((), device=y.device, dtype=torch.long)
    set_fp32_math(y.device, precision)
    try:
        for i, j in even_chunks(len(y), batch_size):
            with torch.autocast(y.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = model(x[i:j])
            loss_sum += F.cross_entropy(out.float(), y[i:j], reduction="sum")
            wrong += (out.argmax(1) != y[i:j]).sum()
    finally:
        model.train(was_training)
    return loss_sum.item() / len(y), wrong.item() / len(y)
