"""The input-aware time model: FreezeOut saves computation (the frozen prefix's backward), never
input work. With streamed data the loader's workers decode and augment the next batches while the
step computes, so a step takes the larger of the two; once freezing has made the computation
faster than the loader, the run is input-bound and freezing further saves nothing.

Before training (``predict_time``) the loader is timed alone (images a second with the run's
workers, the model not running: :meth:`~freezeout.data.loader.TrainStream.throughput`) beside the
per-stage step times, which are timed on batches already on the device. Each stage's predicted
step is ``max(compute, input)``, plus the wait for an epoch's first batch spread over its steps
(the workers start an epoch only when it is asked for); the time speedup is predicted from those, and the stage from
which the run is input-bound and the most FreezeOut can then save are reported. With
``data.workers=0`` nothing overlaps: the input's time adds to every step.
"""
from __future__ import annotations

import itertools
import logging
import math
import statistics
from typing import Sequence

from .formulas import time_speedup

log = logging.getLogger("freezeout")
DEVICE_BATCHES = 2  # streamed batches kept on the device to time the computation on


def stream_batches(cfg, data):
    """``make_batches(step)`` for streamed data: a few batches read once and kept on the device
    as uint8, normalised at every step as streamed batches are (so the computation is timed
    alone); a cached step at a stage that reads the store (``cache.reading`` > 0: the stages the
    plan reads) reads it, as in training; at any other stage it trains on the kept batches, as
    training reads the files then."""
    from ..data import batch_stream
    from ..data.store import normalise_batch
    from ..distributed import process_group as distributed

    stream = data.stream
    kept = stream.device_batches(cfg.seed + 1, cfg.batch_size, distributed.shard(), DEVICE_BATCHES)

    def make_batches(step):
        kept_batches, stored = itertools.cycle(kept), None
        while True:
            if step.cache is not None and step.cache.reading > 0:
                if stored is None:
                    stored = batch_stream(step.cache, data.train_y, cfg.batch_size, cfg.seed + 1, cfg.data.augment,
                                          data.spec.black, distributed.shard())
                yield next(stored)
            else:
                x, y = next(kept_batches)
                yield normalise_batch(x, stream.mean, stream.std, stream.channels_last), y

    return make_batches


class LoaderTiming:
    """The streamed loader timed in short windows, one after each round of the time model's
    stages (``measure_run(between_rounds=...)``), so that the loader and the computation are
    timed through the same spells of a shared machine: a rate timed alone in one go moved the
    input-bound prediction by 15 points from run to run. Each window reads its own order of
    images; the rate is pooled over the windows (the harmonic mean: each window lasts about as
    long), the first-batch wait is their median."""

    WINDOW_SECONDS = 0.5  # timed in each window, after the batches prepared ahead are drained

    def __init__(self, stream, seed: int, batch_size: int, shard: tuple[int, int]):
        self.stream, self.seed, self.batch_size, self.shard = stream, seed, batch_size, shard
        self.windows: list[tuple[float, float]] = []  # (images a second, first-batch seconds)

    def __call__(self) -> None:
        self.windows.append(self.stream.throughput(self.seed, self.batch_size, self.shard, self.WINDOW_SECONDS,
                                                   window=len(self.windows)))

    def result(self) -> tuple[float, float] | None:
        """``(images a second, first-batch seconds)`` over the windows; None before any."""
        if not self.windows:
            return None
        rates = [r for r, _ in self.windows if math.isfinite(r) and r > 0]
        rate = len(rates) / sum(1.0 / r for r in rates) if rates else math.inf
        return rate, statistics.median(f for _, f in self.windows)


def measure_input(cfg, data, step_times, times: Sequence[float] | None, total_iters: int,
                  timing: LoaderTiming | None = None):
    """``(step_times, info)``: the time model's step times made input-aware (each stage's step
    the larger of its computation and the loader's time for a batch) and what was measured of
    the input, for ``summary.input``. Data in memory is drawn on the device inside the timed
    step: nothing to add. ``times``: the schedule's freezing times (None: an adaptive rule's,
    known once it has run). ``timing``: the loader timed between the time model's rounds (else
    it is timed here, alone, for about 2 s)."""
    from ..data.batches import iterations_per_epoch
    from ..distributed import process_group as distributed

    info = {"loader": data.loader, "workers": cfg.data.workers if data.loader == "stream" else None}
    if step_times is None or data.stream is None:
        return step_times, info
    world = distributed.world_size()
    timed = timing.result() if timing is not None else None
    rate, first_batch = timed or data.stream.throughput(cfg.seed + 2, cfg.batch_size, distributed.shard())
    info["loader_windows"] = len(timing.windows) if timed else 1
    rate, first_batch = distributed.broadcast((rate, first_batch))  # rank 0's figures: predictions agree
    per_step = (cfg.batch_size // world) / rate
    overlapped = cfg.data.workers > 0
    # Every epoch starts with the workers idle: its first batch's wait, spread over its steps.
    restart = first_batch / max(1, iterations_per_epoch(len(data.stream), cfg.batch_size)) if overlapped else 0.0
    compute, events = step_times
    aware = input_aware(compute, per_step, overlapped, restart)
    info.update(loader_images_per_second=rate * world, input_seconds_per_step=per_step,
                epoch_start_seconds=first_batch if overlapped else None,
                compute_step_seconds={str(k): v for k, v in sorted(compute.items())},
                **input_bound(compute, per_step))
    if times is not None:
        info["compute_only_speedup"] = time_speedup(compute, times, events, total_iters)
        info["input_aware_speedup"] = time_speedup(aware, times, events, total_iters)
    log.info("input: the loader gives %.0f images/s (%d worker%s%s): %.4f s a step against %.4f s of computation "
             "unfrozen; %s", rate * world, cfg.data.workers, "" if cfg.data.workers == 1 else "s",
             f" x {world} processes" if world > 1 else "", per_step,
             compute[min(compute)], describe(info))
    return (aware, events), info


def input_aware(compute: dict, per_step: float, overlapped: bool = True, restart: float = 0.0) -> dict:
    """Each stage's predicted step: the larger of its computation and the input's time for a
    batch, which the workers prepare while the step computes; their sum with ``data.workers=0``
    (the training process decodes, then computes). ``restart`` (seconds a step): the wait for
    each epoch's first batch, spread over the epoch's steps; every stage pays it alike."""
    return {k: (max(v, per_step) if overlapped else v + per_step) + restart for k, v in compute.items()}


def input_bound(compute: dict, per_step: float) -> dict:
    """The first measured stage (groups frozen) whose computation the loader cannot keep up
    with (None: compute-bound throughout), and the most FreezeOut can save: every step at the
    loader's pace instead of the unfrozen step's."""
    bound = next((k for k in sorted(compute) if compute[k] <= per_step), None)
    first = max(compute[min(compute)], per_step)
    return {"input_bound_from": bound, "max_saving": max(0.0, 1.0 - per_step / first) if bound is not None else None}


def describe(info: dict) -> str:
    """One line: "input-bound from stage 4 (4 groups frozen): at most 31% saved", or not."""
    if info.get("input_bound_from") is None:
        return "compute-bound at every stage measured: freezing saves what the time model says"
    k = info["input_bound_from"]
    return (f"input-bound from stage {k} ({k} groups frozen): at most {100 * info['max_saving']:.0f}% saved"
            + (f" (this schedule: {100 * info['input_aware_speedup']:.1f}% predicted, "
               f"{100 * info['compute_only_speedup']:.1f}% if the input kept up)"
               if "input_aware_speedup" in info else ""))
