"""The epochs of a run: each one's batches through the engine's inner loop, then evaluation, a
metrics line, a checkpoint and the summary as it stands. A stop request (SIGINT, SIGTERM) ends
the loop at a step boundary with a checkpoint of the epoch so far, from which a resumed run
goes on exactly as if it had never stopped.

On several processes every process runs these epochs on its shard of each batch; at each epoch
end every process takes rank 0's model, rank 0 alone evaluates and writes the files, and the one
checkpoint holds every process's random states (:mod:`freezeout.distributed.ranks`).

The batches come from the data in memory (drawn from the run's generator) or from the streaming
loader (ordered by ``(seed, epoch)``); either way the seconds each step waited for its batch are
recorded, per epoch in ``metrics.jsonl`` and per freezing stage in ``summary.json``."""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import OmegaConf

from ..data import Splits, epoch_permutation, train_batches
from ..data.loader import worker_died
from ..distributed import process_group as distributed
from ..errors import ConfigError
from ..distributed import ranks as runranks
from ..freezing.controller import FreezeOut
from ..rundir.checkpoint import CHECKPOINT_FILE, restore_rng_state, rng_state, save_checkpoint
from ..rundir.records import METRICS_FILE, RunSummary, append_metrics
from .devices import peak_memory_mb
from .progress import Progress, run_label
from .signals import Interrupted
from .step import TrainStep, add_stage, evaluate, run_iterations

log = logging.getLogger("freezeout")


@dataclass
class LoopState:
    """Where training stands: the last completed epoch and its totals (saved in every checkpoint),
    and ``iteration``, which runs ahead of the epoch when one was stopped midway."""

    epoch: int = 0
    iteration: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    best_val_err: float | None = None
    loader: str = ""  # memory | stream: how the batches came (a run resumes only with the same)
    data_wait_seconds: float = 0.0  # steps waiting for their batch, all epochs so far
    data_wait_by_stage: dict = dataclasses.field(default_factory=dict)  # frozen groups -> [seconds, steps]
    train_by_stage: dict = dataclasses.field(default_factory=dict)  # frozen groups -> [training seconds, steps]


@dataclass
class Run:
    """What the epoch loop works with, built once by the trainer: the config, the model and its
    data, the controller and the train step, the run's data stream, where records go, and the
    callbacks (``on_epoch(summary)`` writes the summary; ``stop()`` asks for a clean stop;
    ``pause(iteration)`` hands the machine to another run every ``pause_every`` iterations
    ("epoch": at the end of every epoch of this run's own length; None: at log points);
    ``loggers`` hear of every log point and epoch)."""

    cfg: Any
    model: torch.nn.Module
    data: Splits
    controller: FreezeOut
    step: TrainStep
    generator: torch.Generator
    run_dir: Path
    iters_per_epoch: int
    on_epoch: Callable[[RunSummary], None]
    stop: Callable[[], bool]
    loggers: Any = None
    pause: Callable[[int], None] | None = None
    pause_every: int | str | None = None


def check_pause_every(pause_every: object) -> None:
    """Refuse a ``pause_every`` that is neither a positive number of iterations, ``"epoch"`` nor
    None, before a run starts (a misspelt ``"epochs"`` would otherwise fail at its first hand-over)."""
    if pause_every is None or pause_every == "epoch":
        return
    if isinstance(pause_every, bool) or not isinstance(pause_every, int) or pause_every < 1:
        raise ConfigError(f"pause_every={pause_every!r} is not allowed: give a positive number of "
                          "iterations, 'epoch' (at the end of each of the run's epochs) or None "
                          "(at every log point)")


def pause_interval(pause_every: int | str | None, iters_per_epoch: int, log_every: int) -> int:
    """Iterations between hand-overs: ``"epoch"`` is the run's own epoch (iterations count from
    the start of training, so every multiple of it ends an epoch), None the log interval."""
    if pause_every == "epoch":
        return iters_per_epoch
    return pause_every or log_every


@dataclass
class PartialEpoch:
    """An epoch stopped midway: its order of images, its running loss, its seconds so far and
    the seconds of those its steps waited for data."""

    perm: torch.Tensor
    loss_sum: torch.Tensor
    seen: int
    seconds: float
    wait: float = 0.0


class TimedBatches:
    """An epoch's batches, timing how long each step waits for its own (the time in ``next``:
    drawing it in memory, or a streamed batch not ready yet), by the freezing stage it trains at."""

    def __init__(self, batches, controller: FreezeOut, state: LoopState):
        self.batches, self.controller, self.state, self.seconds = iter(batches), controller, state, 0.0

    def __iter__(self):
        return self

    def __next__(self):
        start = time.perf_counter()
        batch = next(self.batches)
        waited = time.perf_counter() - start
        self.seconds += waited
        add_stage(self.state.data_wait_by_stage, self.controller.num_frozen, waited, 1)
        return batch


def epoch_batches(run: Run, epoch: int, start: int, partial: PartialEpoch | None):
    """Epoch ``epoch``'s batches from batch ``start`` on, and its progress record (a new one
    unless ``partial`` goes on with a stopped epoch)."""
    cfg, data, step = run.cfg, run.data, run.step
    if data.stream is not None:  # streamed: ordered by (seed, epoch); the store once the cache has one
        if partial is None:
            partial = PartialEpoch(data.stream.order(cfg.seed, epoch), None, 0, 0.0)
        return data.stream.batches(partial.perm, cfg.seed, epoch, cfg.batch_size, start, distributed.shard(),
                                   cache=step.cache), partial
    images = data.train_x if step.cache is None else step.cache  # the store looks like the images
    if partial is None:
        partial = PartialEpoch(epoch_permutation(len(images), run.generator, images.device), None, 0, 0.0)
    return train_batches(images, data.train_y, cfg.batch_size, run.generator, cfg.data.augment, data.spec.black,
                         perm=partial.perm, start=start, shard=distributed.shard()), partial


def train_epochs(run: Run, state: LoopState, summary: RunSummary, partial: PartialEpoch | None = None) -> None:
    """Epochs until the schedule's iterations are done, from ``state`` (and a stopped epoch's
    ``partial`` progress). ``run.on_epoch(summary)`` brings the summary up to date and writes it
    after each epoch; ``run.pause`` is called every ``run.pause_every`` iterations ("epoch": at
    epoch ends; None: at log points), its time not counted as training.
    Raises :class:`~freezeout.training.signals.Interrupted` after a stop request, with a
    checkpoint of the epoch so far."""
    cfg, model, data, controller, step, generator = run.cfg, run.model, run.data, run.controller, run.step, run.generator
    run_dir, ipe, stop, loggers, pause = run.run_dir, run.iters_per_epoch, run.stop, run.loggers, run.pause
    total = controller.schedule.total_iters
    epochs, n = math.ceil(total / ipe), len(controller.groups)
    main = distributed.is_main()
    progress = Progress(total, state.iteration, cfg.progress and main, run_label(cfg.strategy.name, cfg.t_0),
                        cfg.batch_size)
    if state.loader and state.loader != data.loader:
        raise ConfigError(f"the checkpoint in {run_dir} was trained with data.loader={state.loader}; this run would "
                          f"use {data.loader} (another order of images): set data.loader={state.loader} to resume it")
    state.loader = data.loader

    def on_log(j: int, loss: float) -> None:
        progress.update(j, loss=loss, frozen=f"{controller.num_frozen}/{n}", val_err=state.best_val_err)
        if loggers is not None:  # trackers (freezeout/training/trackers.py)
            loggers.log_step(j, loss, controller.current_lr(), controller.num_frozen)

    try:
        for epoch in range(state.epoch + 1, epochs + 1):
            model.train()
            if step.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(step.device)
            start_at = state.iteration - (epoch - 1) * ipe  # > 0: a stopped epoch goes on where it was
            batches, partial = epoch_batches(run, epoch, start_at, partial)
            batches = TimedBatches(batches, controller, state)
            result = run_iterations(step, controller, batches, state.iteration, min(total, epoch * ipe),
                                    cfg.log_every, on_log, stop, partial.loss_sum, partial.seen,
                                    pause, pause_interval(run.pause_every, ipe, cfg.log_every))
            seconds, wait = partial.seconds + result.seconds, partial.wait + batches.seconds
            add_stage_seconds(state.train_by_stage, result.stage_seconds)
            state.data_wait_seconds += batches.seconds
            if stop() and result.iteration < min(total, epoch * ipe):
                state.iteration = result.iteration
                if cfg.checkpoint:  # the epoch so far, so that a resumed run goes on exactly
                    save(run_dir, cfg, model, controller, step, generator, state,
                         PartialEpoch(partial.perm, result.loss_sum, result.seen, seconds, wait))
                state.train_seconds += seconds  # for the summary; the checkpoint holds the epoch apart
                input_record(summary, state, data)
                raise Interrupted(getattr(stop, "signame", None) or "a stop request", result.iteration, total)
            partial = None
            runranks.end_epoch(model, epoch)  # one model on every process: rank 0's
            (val_loss, val_err), eval_seconds = distributed.on_main(
                lambda: _timed(evaluate, model, data.val_x, data.val_y, cfg.precision))
            state.epoch, state.iteration = epoch, result.iteration
            state.train_seconds += seconds
            state.eval_seconds += eval_seconds
            state.best_val_err = val_err if state.best_val_err is None else min(state.best_val_err, val_err)
            record = {"epoch": epoch, "iteration": result.iteration, "train_loss": result.loss,
                      "val_loss": val_loss, "val_err": val_err, "frozen_groups": controller.num_frozen,
                      "lr": controller.current_lr(), "train_seconds": state.train_seconds, "epoch_seconds": seconds,
                      "eval_seconds": eval_seconds, "peak_memory_mb": peak_memory_mb(step.device),
                      "data_wait_seconds": wait}
            if data.loader == "stream" or data.bad_images:
                record["bad_images"] = len(data.bad_images)
            if step.sync is not None:
                record["allreduce_bytes_per_step"] = step.sync.take_epoch_bytes_per_step()
            if main:
                append_metrics(run_dir / METRICS_FILE, record)
            summary.final_val_err, summary.final_val_loss = val_err, val_loss
            input_record(summary, state, data)
            if cfg.checkpoint:
                save(run_dir, cfg, model, controller, step, generator, state)
            run.on_epoch(summary)
            if loggers is not None:
                loggers.log_epoch(record)  # after evaluation and checkpoint: they are not images/s
            progress.update(result.iteration, loss=result.loss, frozen=f"{controller.num_frozen}/{n}",
                            val_err=val_err)
            log.info("epoch %d/%d  loss %.4f  val err %.2f%%  frozen %d/%d  train %.1f s  eval %.1f s",
                     epoch, epochs, result.loss, 100 * val_err, controller.num_frozen, n, seconds, eval_seconds)
        if data.stream is not None:  # here, so that a worker that died before the end is still reported
            data.stream.close()
    except RuntimeError as e:  # a streamed run's worker died: PyTorch may say so anywhere (its SIGCHLD handler)
        died = worker_died(e, data.stream.stats, f"in epoch {state.epoch + 1}") if data.stream is not None else None
        if died is None:
            raise
        raise died from None
    finally:
        progress.close()
        if data.stream is not None:  # a failed run's workers too (a sweep goes on in this process)
            data.stream.close()


def save(run_dir: Path, cfg, model, controller: FreezeOut, step: TrainStep, generator: torch.Generator,
         state: LoopState, partial: PartialEpoch | None = None) -> None:
    """The checkpoint: model, controller (optimizer included), scaler, every random state, the
    loop's position (and the stopped epoch's progress, if any) and the resolved config. Every
    process calls it; rank 0 writes it, with every process's own states (gathered)."""
    own = {"rng": rng_state(generator), "loss_sum": None if partial is None else partial.loss_sum}
    ranks = runranks.checkpoint_ranks(own)
    if distributed.is_main():
        save_checkpoint(run_dir / CHECKPOINT_FILE, {
            "model": model.state_dict(), "freezer": controller.state_dict(),
            "scaler": step.scaler.state_dict() if step.scaler is not None else None,
            "rng": own["rng"], "loop": dataclasses.asdict(state),
            "partial_epoch": None if partial is None else dataclasses.asdict(partial),
            # where the loader stands: the next batch is batch `iteration` of the run (epochs are
            # ordered by the generator in memory, by (seed, epoch) streamed)
            "loader": {"kind": state.loader, "iteration": state.iteration, "in_epoch": partial is not None},
            "config": OmegaConf.to_container(cfg, resolve=True), **ranks,
            "grad_sync": step.sync.state_dict() if step.sync is not None else None,
        })


def restore(checkpoint: dict, model, controller: FreezeOut, step: TrainStep,
            generator: torch.Generator) -> tuple[LoopState, PartialEpoch | None]:
    """Load a checkpoint into the run's objects; returns the loop state and a stopped epoch."""
    model.load_state_dict(checkpoint["model"])
    controller.load_state_dict(checkpoint["freezer"])
    if step.scaler is not None and checkpoint.get("scaler"):
        step.scaler.load_state_dict(checkpoint["scaler"])
    own = runranks.own_states(checkpoint)  # this process's (rank 0's in a one-process checkpoint)
    restore_rng_state(own["rng"], generator)
    if step.sync is not None and checkpoint.get("grad_sync"):
        step.sync.load_state_dict(checkpoint["grad_sync"])
    partial = checkpoint.get("partial_epoch")
    if partial is not None:
        partial = PartialEpoch(**{**partial, "loss_sum": own["loss_sum"]})
    return LoopState(**checkpoint["loop"]), partial


def input_record(summary: RunSummary, state: LoopState, data: Splits) -> None:
    """The summary's record of the input: seconds steps waited for data, per freezing stage
    (total and per step), and the unreadable images skipped; kept beside what the time model
    measured before training (``summary.input``). And the seconds a training step took at each
    freezing stage (``summary.train_step_seconds``), beside the time model's ``step_seconds``."""
    by_stage = {str(k): {"seconds": v[0], "steps": v[1], "per_step": v[0] / max(v[1], 1)}
                for k, v in sorted(state.data_wait_by_stage.items())}
    summary.input = {**(summary.input or {}), "loader": data.loader, "data_wait_seconds": state.data_wait_seconds,
                     "data_wait_by_stage": by_stage, "bad_images": len(data.bad_images)}
    if data.stream is not None:
        summary.input["images_read"] = data.stream.stats.read  # by this process, since it started
    summary.train_step_seconds = {str(k): v[0] / v[1] for k, v in sorted(state.train_by_stage.items()) if v[1]}


def add_stage_seconds(totals: dict, stage_seconds: dict) -> None:
    """Add a loop's ``{k: [seconds, steps]}`` by freezing stage to the run's ``totals``."""
    for k, (seconds, steps) in stage_seconds.items():
        add_stage(totals, k, seconds, steps)


def _timed(fn, *args):
    """``(fn(*args), seconds it took)``."""
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start
