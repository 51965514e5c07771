"""Seconds a training step takes at each freezing stage, through the engine's own loop
(:func:`~freezeout.training.step.run_iterations`): what the time model, the sweep plan and
``calc_speedup`` measure before training, on copies of the model, in one of two layouts (the
stages taking turns, or passes over them)."""
from __future__ import annotations

import copy
import gc
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from .compiling import compile_seconds_so_far
from .devices import synchronize
from .step import TrainStep, run_iterations


@dataclass
class StageTimings:
    """What :func:`measure_stage_seconds` measured: every timed chunk's seconds per step, the
    seconds the step took to adapt when each stage began (the cache's store advance; ~0 else),
    the seconds spent compiling at each stage (0 without compile), and the layout it measured in
    (``turns`` or ``passes``)."""

    samples: dict[int, list[float]]
    event_seconds: dict[int, float]
    compile_seconds: dict[int, float] = field(default_factory=dict)
    layout: str = "passes"


#: On a GPU, the fewest steps a sample takes where the budget allows: the host queues a step's
#: kernels while the device runs the previous one's; a sample of one step, synchronised before and
#: after, would time the two one after the other (training overlaps them) and pay a sync a step.
GPU_SAMPLE_STEPS = 4
#: Layouts of the time model's measurement (see :func:`measure_stage_seconds`).
LAYOUTS = ("auto", "turns", "passes")
#: Bytes a model copy holds while it trains, in units of its parameters' and buffers' bytes:
#: the weights, their gradients and up to two optimizer states (AdamW).
_COPY_FACTOR = 4
#: The share of the device's free memory the copies of the ``turns`` layout may take together.
_TURNS_MEMORY_SHARE = 0.25


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on ``device``: the GPU's, or the host's available memory (Linux); None if unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def turns_fit(model: nn.Module, n_stages: int, device: torch.device) -> bool:
    """Whether ``n_stages`` training copies of ``model`` fit at once in a quarter of the device's
    free memory (the ``turns`` layout holds one a stage; unknown free memory: no)."""
    free = free_memory_bytes(device)
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return free is not None and n_stages * _COPY_FACTOR * size <= _TURNS_MEMORY_SHARE * free


def choose_layout(model: nn.Module, n_stages: int, device: torch.device, builds_on_previous: bool) -> str:
    """``turns`` unless a stage builds on the one before (the cache's store, compiled graphs) or
    the copies do not fit (:func:`turns_fit`); ``passes`` else."""
    return "passes" if builds_on_previous or not turns_fit(model, n_stages, device) else "turns"


def measure_stage_seconds(model: nn.Module, make_controller: Callable, make_batches: Callable[[TrainStep], Iterator],
                          stages: Sequence[int], make_step: Callable[[nn.Module, torch.optim.Optimizer], TrainStep],
                          steps: int = 4, chunks: int = 3, warmup: int = 2, layout: str = "auto",
                          between_rounds: Callable[[], None] | None = None) -> StageTimings:
    """Seconds per training step with the first ``k`` groups frozen, for each ``k`` in ``stages``,
    each sample ``steps`` steps through the engine's own loop (controller call, step, loss
    read-back) after ``warmup`` untimed steps, on deep copies of ``model`` (the caller's model
    and its statistics stay untouched). ``make_controller(groups)`` returns a controller whose
    schedule freezes nothing by itself; ``make_step(model, optimizer)`` the step;
    ``make_batches(step)`` the endless batch stream it trains on.

    Two layouts, both so that a slow or fast spell of a shared machine hits every stage alike
    (the time model's speedup is a ratio of stage times):

    - ``turns``: one copy frozen at each stage, warmed up once; then ``chunks`` rounds in which
      the stages take turns, ``steps`` steps each (every other round in reverse order). A spell
      lasting a round or more falls on every stage. It holds every stage's copy at once.
    - ``passes``: ``chunks`` passes over the stages, each on a fresh copy frozen further stage by
      stage as in training, ``warmup`` then ``steps`` steps at each stage. Needed where a stage
      builds on the previous one (the frozen-prefix cache advances its store; compiled graphs
      carry over), and where the copies would not fit (see :func:`turns_fit`).

    ``auto`` chooses by :func:`choose_layout` (the step reads the cache or compiles: passes).
    ``between_rounds()``, when given, runs after each round (or pass), untimed: the input-aware
    time model times the loader there, so that it meets the machine's spells as the stages do.
    ``event_seconds[k]``: the seconds ``step.on_freeze(k)`` took (the median over passes). On a
    GPU, samples shorter than :data:`GPU_SAMPLE_STEPS` steps are regrouped (:func:`sample_shape`).
    Copies are freed before this returns (a frozen module refers to itself, so a copy would
    otherwise wait on the garbage collector, on the device)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r}; allowed: {', '.join(LAYOUTS)}")
    stages = sorted(set(stages))
    timings = StageTimings({k: [] for k in stages}, {}, {k: 0.0 for k in stages})
    events: dict[int, list[float]] = {k: [] for k in stages}

    def probe_at(k: int, probe=None):
        """A copy frozen at stage ``k`` (``probe``: one frozen at an earlier stage, frozen further),
        its step adapted as at a freezing event and warmed up."""
        if probe is None:
            model_copy = copy.deepcopy(model).train()
            controller = make_controller(model_copy.layer_groups())
            step = make_step(model_copy, controller.optimizer)
            probe = [model_copy, controller, step, make_batches(step)]
        _, controller, step, batches = probe
        controller.freeze_prefix(k)
        synchronize(step.device)
        start, compiled = time.perf_counter(), compile_seconds_so_far()
        step.on_freeze(k)  # as the loop does at a freezing event
        synchronize(step.device)
        events[k].append(time.perf_counter() - start)
        run_iterations(step, controller, batches, 0, warmup, log_every=max(warmup, 1))
        timings.compile_seconds[k] += compile_seconds_so_far() - compiled
        return probe

    def timed(k: int, probe) -> None:
        _, controller, step, batches = probe
        compiled = compile_seconds_so_far()
        r = run_iterations(step, controller, batches, 0, steps, log_every=steps)
        timings.samples[k].append(r.seconds / r.steps)
        timings.compile_seconds[k] += compile_seconds_so_far() - compiled

    probe = probe_at(stages[0])
    steps, chunks = sample_shape(steps, chunks, probe[2].device)
    if layout == "auto":
        step = probe[2]
        layout = choose_layout(model, len(stages), step.device, step.cache is not None or step.compile_log is not None)
        del step
    timings.layout = layout
    if layout == "turns":
        probes = {stages[0]: probe, **{k: probe_at(k) for k in stages[1:]}}
        for c in range(chunks):
            for k in (stages if c % 2 == 0 else stages[::-1]):
                timed(k, probes[k])
            if between_rounds is not None:
                between_rounds()
        del probes, probe
    else:
        for c in range(chunks):
            probe = probe if c == 0 else probe_at(stages[0])
            timed(stages[0], probe)
            for k in stages[1:]:
                timed(k, probe_at(k, probe))
            probe = None
            gc.collect()  # this pass's copy freed before the next one is made
            if between_rounds is not None:
                between_rounds()
    gc.collect()
    timings.event_seconds = {k: statistics.median(v) for k, v in events.items()}
    return timings


def sample_shape(steps: int, chunks: int, device: torch.device) -> tuple[int, int]:
    """``(steps a sample, samples)`` for ``steps`` x ``chunks`` steps a stage on ``device``: as
    asked on the CPU; on a GPU, samples of up to :data:`GPU_SAMPLE_STEPS` steps (at least two
    samples where there are two steps), the same steps in all, never more."""
    if device.type != "cuda" or steps >= GPU_SAMPLE_STEPS or chunks < 2:
        return steps, chunks
    total = steps * chunks
    grouped = max(steps, min(GPU_SAMPLE_STEPS, total // 2))
    return grouped, total // grouped


def median_stage_seconds(samples: dict[int, list[float]]) -> dict[int, float]:
    """The time model's statistic over :func:`measure_stage_seconds`' chunks: the median."""
    return {k: statistics.median(v) for k, v in samples.items()}
