"""Predicted speedups on a real model: forward FLOPs counted per layer group, step times measured
per freezing stage through the engine, fed to the formulas of :mod:`freezeout.speedup`.

``calc_speedup`` is the public entry point; the trainer uses :func:`group_costs`,
:func:`measure_run` and :func:`predict_run` with the run's own schedule and settings.
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..freezing.controller import FreezeOut, OptimizerFactory
from ..freezing.rules import get_rule
from ..freezing.schedule import Schedule, check_strategy, check_t_0, layer_times
from ..models.flops import group_costs
from ..rundir.load import busy_note, measure_load
from ..training.stagetiming import choose_layout, measure_stage_seconds, median_stage_seconds
from ..training.step import TrainStep
from .cacheplan import apply_cache_plan, plan_cache_stages
from .formulas import METHODS, flops_speedup, freezing_stages, paper_speedup, time_speedup

log = logging.getLogger("freezeout")

#: A schedule long enough that no group freezes by itself while a stage is being timed.
_HOLD_ITERS = 10**9


def held_controller(groups, make_optimizer: OptimizerFactory, k: int = 0, lr: float = 1e-3) -> FreezeOut:
    """A controller with exactly the first ``k`` groups frozen that freezes nothing more by itself:
    what a training step costs at one freezing stage, for measurements."""
    controller = FreezeOut(groups, Schedule((1.0,) * len(groups), _HOLD_ITERS, lr, False), make_optimizer)
    controller.freeze_prefix(k)
    return controller


def paper_applies(model: nn.Module, input_shape: Sequence[int]) -> bool:
    """Whether the ``paper`` model is defined here: a DenseNet-BC on 32x32 inputs."""
    return hasattr(model, "growth_rate") and tuple(input_shape[-2:]) == (32, 32)


def paper_prediction(model: nn.Module, input_shape: Sequence[int], t_0: float, strategy: str) -> float | None:
    """The paper code's estimate where it is defined (DenseNet-BC on 32x32), else None."""
    if not paper_applies(model, input_shape):
        return None
    return paper_speedup(model.growth_rate, model.depth, t_0, strategy)


def measure_stages(model: nn.Module, stages: Sequence[int], make_batches: Callable[[TrainStep], Iterator],
                   make_optimizer: OptimizerFactory, make_step: Callable[[nn.Module, torch.optim.Optimizer], TrainStep],
                   steps: int = 4, chunks: int = 3, warmup: int = 2) -> tuple[dict[int, float], dict[int, float]]:
    """Seconds per training step with the first ``k`` groups frozen, for each ``k`` in ``stages``,
    measured with the engine's loop and the run's own optimizer and step: the median of
    ``chunks`` chunks of ``steps`` steps; and the one-off seconds each stage's start costs (see
    :func:`~freezeout.training.stagetiming.measure_stage_seconds`)."""
    def make_controller(groups):
        return held_controller(groups, make_optimizer)

    timings = measure_stage_seconds(model, make_controller, make_batches, stages, make_step, steps=steps,
                                    chunks=chunks, warmup=warmup)
    return median_stage_seconds(timings.samples), timings.event_seconds


def time_model(model: nn.Module, times: Sequence[float], make_batches: Callable[[TrainStep], Iterator],
               make_optimizer: OptimizerFactory, make_step: Callable[[nn.Module, torch.optim.Optimizer], TrainStep],
               total_iters: int | None = None, **timing) -> tuple[float, dict[int, float]]:
    """The time model for a schedule's ``times``: :func:`measure_stages` for every stage the
    schedule trains through, integrated over the schedule, with each stage's one-off start cost
    spread over a run of ``total_iters`` iterations. Returns (predicted speedup, seconds per
    step by stage)."""
    stage_seconds, event_seconds = measure_stages(model, freezing_stages(times), make_batches, make_optimizer,
                                                  make_step, **timing)
    return time_speedup(stage_seconds, times, event_seconds, total_iters), stage_seconds


def calc_speedup(model: nn.Module, input_shape: Sequence[int], t_0: float, strategy: str,
                 method: str = "flops", batches: Iterator | None = None,
                 make_optimizer: OptimizerFactory | None = None) -> float:
    """Predicted fraction of training time saved by FreezeOut for ``model`` on ``input_shape``.

    ``method``: ``flops`` (default), ``paper`` (DenseNet-BC on 32x32 only) or ``time``, which
    measures step times on the model's device: it needs ``batches``, an endless iterator of
    training batches ``(x, y)``, and takes the optimizer (default: the paper's SGD).
    """
    check_t_0(t_0)
    check_strategy(strategy)
    times = layer_times(len(model.layer_groups()), t_0, strategy)
    if method == "flops":
        return flops_speedup(group_costs(model, input_shape), times)
    if method == "paper":
        if not paper_applies(model, input_shape):
            raise ValueError("method='paper' is defined for DenseNet-BC on 32x32 inputs only")
        return paper_speedup(model.growth_rate, model.depth, t_0, strategy)
    if method == "time":
        if batches is None:
            raise ValueError("method='time' needs batches, an iterator of training batches (x, y)")
        device = next(model.parameters()).device
        from ..config import SGDConfig  # the paper's SGD at the schema's defaults (one source)
        from ..freezing.optim import optimizer_factory
        make_optimizer = make_optimizer or optimizer_factory(vars(SGDConfig()))
        return time_model(model, times, lambda step: batches, make_optimizer,
                          lambda m, opt: TrainStep(m, opt, "fp32", device))[0]
    raise ValueError(f"method={method!r} is unknown; allowed: {', '.join(METHODS)}")


class Measured(tuple):
    """A run's time-model measurement, the pair ``(stage_seconds, event_seconds)``: seconds a step
    and one-off seconds at each stage's start, as the run will train (with ``cache_frozen=auto``,
    each stage as its plan has it); and as attributes the seconds spent compiling at each stage
    (``compile=true``: the run's steps then compile nothing more) and the stages that read the
    cache's store (None: all, or no cache)."""

    def __new__(cls, stage_seconds: dict[int, float], event_seconds: dict[int, float],
                compile_seconds: dict[int, float] | None = None, cache_stages: set[int] | None = None):
        self = super().__new__(cls, (stage_seconds, event_seconds))
        self.compile_seconds, self.cache_stages = dict(compile_seconds or {}), cache_stages
        return self

    @property
    def stage_seconds(self) -> dict[int, float]:
        return self[0]

    @property
    def event_seconds(self) -> dict[int, float]:
        return self[1]


def measure_run(cfg, model: nn.Module, data, stages: Sequence[int], make_optimizer: OptimizerFactory, make_step,
                total_iters: int, times: Sequence[float] | None = None,
                between_rounds: Callable[[], None] | None = None, notes: dict | None = None) -> Measured | None:
    """The time model's measurement for a run (``predict_time``), taken before it trains: seconds
    per step with the first ``k`` groups frozen for each ``k`` in ``stages``, and each stage's
    one-off start cost, on the run's own device, model, batch size, optimizer and step settings
    (the cache included), from its own batch stream and without touching the run's random streams
    (so a run trains the same with or without it). None when ``predict_time`` is off or measuring
    would cost more than ``predict_time_share`` of the run. On several processes the steps it
    times are the distributed ones (a shard of each batch, gradients all-reduced).

    With ``cache_frozen=auto`` (measured even when ``predict_time`` is off) it times each stage
    with and without the store and picks the stages that read it (:func:`plan_cache_stages` over
    the schedule's ``times``; None: an adaptive rule's, unknown yet), setting them on
    ``make_step``; when it cannot measure, no stage reads the store. ``between_rounds()`` runs
    between the rounds of the (first) measurement: the streamed loader's timing
    (:class:`~freezeout.speedup.inputmodel.LoaderTiming`).

    ``notes``, when given, receives what ``summary.json``'s ``time_model`` records: ``skipped`` (why
    nothing was measured, else None), ``load`` (the machine's load while it measured,
    :func:`~freezeout.rundir.load.measure_load`) and ``busy`` (the warning when that load was heavy,
    also logged)."""
    from ..distributed import process_group as distributed

    notes = {} if notes is None else notes
    notes.update(skipped=None, load=None, busy=None)
    auto = getattr(make_step, "cache_mode", None) == "auto"
    if not (cfg.predict_time or auto):
        notes["skipped"] = "predict_time=false"
        return None
    make_batches = run_batches(cfg, data)
    device, start = data.train_x.device, time.perf_counter()
    # chosen here, not by the measurement: the budget depends on it
    layout = choose_layout(model, len(stages), device, cfg.compile or getattr(make_step, "cache_mode", "off") != "off")
    layout = distributed.broadcast(layout)  # rank 0's: every process must run the same steps (all-reduces)
    timing = time_model_budget(len(stages) * (2 if auto else 1), total_iters, cfg.predict_time_share, layout)
    if timing is None:
        notes["skipped"] = (f"measuring its {len(stages)} stages would cost more than predict_time_share="
                            f"{cfg.predict_time_share:g} of the run's {total_iters} iterations (raise "
                            "predict_time_share, or train longer)")
        log.warning("time model skipped: %s%s", notes["skipped"], "; cache_frozen=auto reads no store" if auto else "")
        if auto:
            make_step.cache_stages = set()
        return None

    def measure(cached: bool | None, between=None):
        step = make_step if cached is None else functools.partial(make_step, cached=cached)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return measure_stage_seconds(model, lambda groups: held_controller(groups, make_optimizer), make_batches,
                                         stages, step, layout=layout, between_rounds=between, **timing)

    with measure_load(str(device)) as load:  # what shared the machine while it measured
        first = measure(False if auto else None, between_rounds)
        cached = measure(True) if auto else None
    notes.update(load=load.record())
    notes["busy"] = busy_note(notes["load"])
    if notes["busy"]:
        log.warning("time model %s", notes["busy"])
    stage_seconds, events = median_stage_seconds(first.samples), first.event_seconds
    compiling, plan = dict(first.compile_seconds or {}), None
    if auto:
        plan = plan_cache_stages(times, total_iters, stage_seconds, median_stage_seconds(cached.samples),
                                 cached.event_seconds)
        stage_seconds, events = apply_cache_plan(plan, stage_seconds, median_stage_seconds(cached.samples),
                                                 cached.event_seconds)
        make_step.cache_stages = plan
        log.info("cache_frozen=auto: the store is read with %s group(s) frozen", ", ".join(map(str, sorted(plan)))
                 or "no")
    log.info("time model: %d stages measured in %.1f s (%s: %d round(s) of %d step(s) a stage)", len(stages),
             time.perf_counter() - start, first.layout, timing["chunks"], timing["steps"])
    return Measured(stage_seconds, events, compiling, plan)


def note_compile(make_step, measured: Measured | None, times: Sequence[float] | None, total_iters: int) -> None:
    """Hand the time model's compile seconds (and its speedup with them) to the run's compile log."""
    compile_log = getattr(make_step, "compile_log", None)
    if compile_log is None or measured is None:
        return
    compile_log.time_model = {
        "seconds_by_stage": {str(k): v for k, v in sorted(measured.compile_seconds.items())},
        "predicted_speedup_with_compile": None if times is None else speedup_with_compile(measured, times, total_iters)}


def speedup_with_compile(measured: Measured, times: Sequence[float], total_iters: int) -> float | None:
    """The time model's speedup over the run's whole cost, compilation included: the FreezeOut
    run compiles at every stage (``measured.compile_seconds``), a baseline its training forms
    (stage 0's) alone. None without compile seconds."""
    if not measured.compile_seconds:
        return None
    base = measured.stage_seconds[0] * total_iters
    trained = base * (1.0 - time_speedup(measured.stage_seconds, times, measured.event_seconds, total_iters))
    own = sum(measured.compile_seconds.values())
    return 1.0 - (trained + own) / (base + measured.compile_seconds.get(0, 0.0))


def predict_run(cfg, model: nn.Module, input_shape: Sequence[int], costs: Sequence[float], times: Sequence[float],
                step_times: tuple[dict[int, float], dict[int, float]] | None, total_iters: int) -> dict:
    """A run's predicted speedups for its schedule's ``times``: flops always, paper where it is
    defined (a FreezeOut strategy on DenseNet-BC 32x32), time from ``step_times`` (see
    :func:`measure_run`) when they were measured. On several processes all take rank 0's time
    figure: a const_time run's length must agree."""
    from ..distributed import process_group as distributed

    paper = None
    if get_rule(cfg.strategy.name).freezeout:
        paper = paper_prediction(model, input_shape, cfg.t_0, cfg.strategy.name)
    predicted = {"flops": flops_speedup(costs, times), "paper": paper, "time": None}
    if step_times is not None:
        predicted["time"] = distributed.broadcast(time_speedup(step_times[0], times, step_times[1], total_iters))
        log.info("time-model speedup %.1f%%", 100 * predicted["time"])
    return predicted


def run_batches(cfg, data) -> Callable:
    """``make_batches(step)``: what the time model trains on for a run, the run's batches (from
    the cache's store for a cached step) on a stream seeded apart from the run's, sharded as the
    run's."""
    from ..data import batch_stream
    from ..distributed import process_group as distributed

    if getattr(data, "stream", None) is not None:  # streamed: batches kept on the device (see inputmodel)
        from .inputmodel import stream_batches

        return stream_batches(cfg, data)

    def make_batches(step):
        images = data.train_x if step.cache is None else step.cache
        return batch_stream(images, data.train_y, cfg.batch_size, cfg.seed + 1, cfg.data.augment, data.spec.black,
                            distributed.shard())

    return make_batches


#: The time model's default measurement: 3 rounds (or passes) over the stages, each stage 2 warm-up
#: steps then 4 timed steps a round (warm-up once a stage when they take turns, once a pass else).
FULL_TIMING = {"warmup": 2, "chunks": 3, "steps": 4}
#: At most this many rounds when stages take turns and the run leaves room for more.
MAX_ROUNDS = 12


def time_model_budget(stages: int, total_iters: int, share: float, layout: str = "passes") -> dict[str, int] | None:
    """How the time model measures so that it costs at most ``share`` of a run's iterations (a
    frozen stage's step costs no more than a training step), or None (skip it: too short a run).

    ``passes`` (each pass warms every stage up again): the full measurement when it fits, else
    one pass of one warm-up step and a shorter chunk per stage. ``turns`` (warm-up once a stage):
    the full measurement with as many rounds of 4 steps as fit (up to :data:`MAX_ROUNDS`), else
    one warm-up step and rounds of a single step, so that even a short run's stages take turns."""
    per_stage = int(share * total_iters) // max(stages, 1)
    warmup, steps, chunks = FULL_TIMING["warmup"], FULL_TIMING["steps"], FULL_TIMING["chunks"]
    if layout == "turns":
        if per_stage >= warmup + chunks * steps:
            return {"warmup": warmup, "chunks": min(MAX_ROUNDS, (per_stage - warmup) // steps), "steps": steps}
        if per_stage >= 3:
            return {"warmup": 1, "chunks": min(MAX_ROUNDS, per_stage - 1), "steps": 1}
        return None
    if per_stage >= chunks * (warmup + steps):
        return dict(FULL_TIMING)
    if per_stage >= 3:
        return {"warmup": 1, "chunks": 1, "steps": per_stage - 1}
    return None
