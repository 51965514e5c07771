"""``train(cfg) -> RunSummary``: one FreezeOut run, from config to per-run records.

Wires config, data, model, schedule, controller and the engine (:mod:`freezeout.engine`, which
runs every training step), and writes ``metrics.jsonl``, ``summary.json`` and checkpoints.
``train_seconds`` counts training steps only: evaluation and checkpointing are timed apart.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from .checkpoint import CHECKPOINT_FILE, restore_rng_state, rng_state, save_checkpoint
from .config import model_kwargs, validate
from .data import Splits, batch_stream, dataset_spec, iterations_per_epoch, load_data, train_batches
from .devices import peak_memory_mb
from .cache import FrozenPrefixCache
from .engine import Diverged, TrainStep, evaluate, run_iterations
from .freezer import FreezeOut, make_controller
from .loggers import Loggers, open_loggers
from .metrics import (COMPLETED, DIVERGED, FAILED, FINAL_STATUSES, METRICS_FILE, RUNNING, SUMMARY_FILE,
                      RunSummary, append_metrics, read_metrics, rewrite_metrics)
from .models import build_model
from .optim import optimizer_factory
from .predict import group_costs, paper_prediction, time_model
from .progress import Progress
from .provenance import device_name, git_revision, library_versions
from .rundir import hydra_output_dir, prior_run
from .schedule import STRATEGIES as FREEZEOUT_STRATEGIES
from .schedule import Schedule
from .speedup import flops_speedup
from .strategies import ADAPTIVE, realised_times, strategy_schedule

log = logging.getLogger("freezeout")


@dataclass
class LoopState:
    """Where training stands after the last completed epoch (saved in every checkpoint)."""

    epoch: int = 0
    iteration: int = 0
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    best_val_err: float | None = None


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> RunSummary:
    """Train one model with FreezeOut as ``cfg`` says; write the per-run files into ``run_dir``
    (default: Hydra's output directory) and return the summary. Invalid settings raise
    :class:`~freezeout.errors.ConfigError` before anything is written. A finished run in
    ``run_dir`` is returned as it is; an interrupted one is resumed from its last checkpoint."""
    device = validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else hydra_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    previous, checkpoint = prior_run(run_dir, cfg)
    if previous is not None and previous.status in FINAL_STATUSES:
        log.info("%s already holds a %s run: nothing to do", run_dir, previous.status)
        return previous

    model = build_run_model(cfg, device)
    data = load_data(cfg.data, device, with_test=cfg.eval_test)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fastest kernels; bitwise resume is a CPU promise
    ipe = iterations_per_epoch(len(data.train_x), cfg.batch_size)
    groups = model.layer_groups()
    make_optimizer = optimizer_factory(cfg.optimizer)
    make_step = functools.partial(TrainStep, precision=cfg.precision, device=device, compile_model=cfg.compile,
                                  channels_last=cfg.channels_last)
    total_iters, const_time_prediction = cfg.epochs * ipe, None
    schedule = _schedule(cfg, len(groups), ipe, total_iters)
    costs = group_costs(model, (1, *data.train_x.shape[1:]))
    predicted = {"flops": None, "paper": None, "time": None}  # an adaptive rule's: known once it has run
    if cfg.strategy.name not in ADAPTIVE:
        predicted = _predict(cfg, model, data, costs, schedule.times, make_optimizer, make_step, total_iters)
    if cfg.const_time:  # spend the baseline's budget: T' = T / (1 - s) (DESIGN §1 "const_time")
        const_time_prediction = "time" if predicted["time"] is not None else "flops"
        total_iters = round(total_iters / (1.0 - predicted[const_time_prediction]))
        schedule = _schedule(cfg, len(groups), ipe, total_iters)
    controller = make_controller(cfg.strategy, groups, schedule, make_optimizer)
    cache = None
    if cfg.cache_frozen:
        cache = FrozenPrefixCache(model, data.train_x, cfg.cache_memory_gb * 1e9, cfg.cache_host)
    step = make_step(model, controller.optimizer, cache=cache)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    summary = _new_summary(cfg, model, data, device, ipe, controller, predicted, const_time_prediction)
    log.info("%s (%d layer groups, %.2fM params) on %s: %d iterations (%d a epoch); predicted speedup %s",
             cfg.model.name, len(groups), summary.num_params / 1e6, device, total_iters, ipe,
             ", ".join(f"{k} {100 * v:.1f}%" for k, v in predicted.items() if v is not None))
    state = LoopState()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        controller.load_state_dict(checkpoint["freezer"])
        if step.scaler is not None and checkpoint.get("scaler"):
            step.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_state(checkpoint["rng"], generator)
        state = LoopState(**checkpoint["loop"])
        log.info("resuming %s from epoch %d (iteration %d)", run_dir, state.epoch, state.iteration)
    # Trackers (freezeout/loggers.py), before the summary says running: one that cannot start fails the run here.
    loggers = open_loggers(cfg, run_dir, state.iteration, summary)
    # Each epoch exactly once: drop records written after the checkpoint we resume from.
    records = [r for r in read_metrics(run_dir / METRICS_FILE) if r["epoch"] <= state.epoch]
    rewrite_metrics(run_dir / METRICS_FILE, records)
    if records:  # a run killed after its last checkpoint still reports its final error
        summary.final_val_err, summary.final_val_loss = records[-1]["val_err"], records[-1]["val_loss"]
    summary.started_at = _now()
    _update(summary, state, controller)
    summary.write(run_dir / SUMMARY_FILE)

    try:
        _train_epochs(cfg, model, data, controller, step, generator, state, summary, run_dir, ipe, loggers)
        if cfg.strategy.name in ADAPTIVE:  # its schedule is known now: predict from what happened
            times = realised_times(controller.frozen_at, controller.schedule.total_iters)
            summary.layer_times = times
            summary.predicted_speedup = _predict(cfg, model, data, costs, times, make_optimizer, make_step,
                                                 controller.schedule.total_iters)
        summary.status = COMPLETED
        if cfg.eval_test:
            summary.test_err = evaluate(model, data.test_x, data.test_y, cfg.precision)[1]
    except Diverged as e:
        summary.status, summary.error = DIVERGED, str(e)
        state.iteration = e.iteration  # the iterations it really did
        log.warning("%s", e)
    except BaseException as e:
        summary.status, summary.error = FAILED, f"{type(e).__name__}: {e}"
        raise
    finally:
        summary.finished_at = _now()
        _update(summary, state, controller)
        summary.write(run_dir / SUMMARY_FILE)
        loggers.log_summary(summary)
        loggers.close()
    log.info("%s: val err %.2f%% in %.1f s of training (predicted speedup %.1f%%)", summary.status,
             100 * (summary.final_val_err or math.nan), summary.train_seconds,
             100 * (summary.predicted_speedup["flops"] or math.nan))
    return summary


def _train_epochs(cfg, model, data: Splits, controller: FreezeOut, step: TrainStep, generator, state: LoopState,
                  summary: RunSummary, run_dir: Path, ipe: int, loggers: Loggers) -> None:
    """Epochs until the schedule's iterations are done; after each: evaluation, a metrics line,
    a checkpoint and the summary as it stands."""
    total = controller.schedule.total_iters
    epochs, n = math.ceil(total / ipe), len(controller.groups)
    progress = Progress(total, state.iteration, cfg.progress, f"{cfg.strategy.name} t_0={cfg.t_0}")

    def on_log(j: int, loss: float) -> None:
        progress.update(j, loss=loss, frozen=f"{controller.num_frozen}/{n}", val_err=state.best_val_err)
        loggers.log_step(j, loss, controller.current_lr(), controller.num_frozen)

    try:
        for epoch in range(state.epoch + 1, epochs + 1):
            model.train()
            if step.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(step.device)
            images = data.train_x if step.cache is None else step.cache  # the store looks like the images
            batches = train_batches(images, data.train_y, cfg.batch_size, generator, cfg.data.augment,
                                    data.spec.black)
            result = run_iterations(step, controller, batches, state.iteration, min(total, epoch * ipe),
                                    cfg.log_every, on_log)
            start = time.perf_counter()
            val_loss, val_err = evaluate(model, data.val_x, data.val_y, cfg.precision)
            eval_seconds = time.perf_counter() - start
            state.epoch, state.iteration = epoch, result.iteration
            state.train_seconds += result.seconds
            state.eval_seconds += eval_seconds
            state.best_val_err = val_err if state.best_val_err is None else min(state.best_val_err, val_err)
            record = {
                "epoch": epoch, "iteration": result.iteration, "train_loss": result.loss, "val_loss": val_loss,
                "val_err": val_err, "frozen_groups": controller.num_frozen, "lr": controller.current_lr(),
                "train_seconds": state.train_seconds, "epoch_seconds": result.seconds,
                "eval_seconds": eval_seconds, "peak_memory_mb": peak_memory_mb(step.device),
            }
            append_metrics(run_dir / METRICS_FILE, record)
            summary.final_val_err, summary.final_val_loss = val_err, val_loss
            if cfg.checkpoint:
                save_checkpoint(run_dir / CHECKPOINT_FILE, {
                    "model": model.state_dict(), "freezer": controller.state_dict(),
                    "scaler": step.scaler.state_dict() if step.scaler is not None else None,
                    "rng": rng_state(generator), "loop": dataclasses.asdict(state),
                    "config": OmegaConf.to_container(cfg, resolve=True),
                })
            _update(summary, state, controller)
            summary.write(run_dir / SUMMARY_FILE)
            loggers.log_epoch(record)  # after evaluation and checkpoint: they are not images/s
            progress.update(result.iteration, loss=result.loss, frozen=f"{controller.num_frozen}/{n}",
                            val_err=val_err)
            log.info("epoch %d/%d  loss %.4f  val err %.2f%%  frozen %d/%d  train %.1f s  eval %.1f s",
                     epoch, epochs, result.loss, 100 * val_err, controller.num_frozen, n, result.seconds,
                     eval_seconds)
    finally:
        progress.close()


def build_run_model(cfg: DictConfig, device: torch.device) -> torch.nn.Module:
    """The run's model with its initial weights (which depend on the seed only), on ``device``
    and in the run's memory format. The benchmark builds its models here too."""
    torch.manual_seed(cfg.seed)
    spec = dataset_spec(cfg.data)
    model = build_model(cfg.model.name, spec.num_classes, spec.in_channels, **model_kwargs(cfg)).to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def _schedule(cfg, n: int, ipe: int, total_iters: int) -> Schedule:
    return strategy_schedule(cfg.strategy, n, cfg.t_0, cfg.scale_lr, ipe, total_iters, cfg.optimizer.lr)


def _predict(cfg, model, data: Splits, costs, times, make_optimizer, make_step,
             total_iters: int) -> dict[str, float | None]:
    """Predicted speedups of a schedule's ``times``: flops always, paper where it is defined (a
    FreezeOut strategy on DenseNet-BC 32x32), time with ``predict_time``."""
    paper = None
    if cfg.strategy.name in FREEZEOUT_STRATEGIES:
        paper = paper_prediction(model, (1, *data.train_x.shape[1:]), cfg.t_0, cfg.strategy.name)
    time_pred = _time_prediction(model, data, cfg, times, make_optimizer, make_step, total_iters) \
        if cfg.predict_time else None
    return {"flops": flops_speedup(costs, times), "paper": paper, "time": time_pred}


def _time_prediction(model, data: Splits, cfg, times, make_optimizer, make_step, total_iters: int) -> float:
    """The time model, measured on this run's device, model, batch size, optimizer and step
    settings (the cache included), from its own batch stream and without touching the run's
    random streams (so a run trains the same with or without it)."""
    def make_cached_step(m, optimizer):
        cache = FrozenPrefixCache(m, data.train_x, cfg.cache_memory_gb * 1e9, cfg.cache_host) if cfg.cache_frozen \
            else None
        return make_step(m, optimizer, cache=cache)

    def make_batches(step):
        images = data.train_x if step.cache is None else step.cache
        return batch_stream(images, data.train_y, cfg.batch_size, cfg.seed + 1, cfg.data.augment, data.spec.black)

    device = data.train_x.device
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        speedup, _ = time_model(model, times, make_batches, make_optimizer, make_cached_step, total_iters)
    log.info("time-model speedup %.1f%% (measured in %.1f s)", 100 * speedup, time.perf_counter() - start)
    return speedup


def _new_summary(cfg, model, data: Splits, device, ipe: int, controller: FreezeOut, predicted: dict,
                 const_time_prediction: str | None) -> RunSummary:
    container = OmegaConf.to_container(cfg, resolve=True)
    return RunSummary(
        status=RUNNING, strategy=cfg.strategy.name, t_0=cfg.t_0, scale_lr=cfg.scale_lr, const_time=cfg.const_time,
        seed=cfg.seed, model=container["model"], data=container["data"], optimizer=container["optimizer"],
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.optimizer.lr, precision=cfg.precision,
        device=device_name(device), iterations=controller.schedule.total_iters, iterations_per_epoch=ipe,
        train_images=len(data.train_x), val_images=len(data.val_x), num_groups=len(controller.groups),
        layer_times=list(controller.times), predicted_speedup=predicted,
        const_time_prediction=const_time_prediction, num_params=sum(p.numel() for p in model.parameters()),
        versions=library_versions(), git_revision=git_revision(), config=container,
    )


def _update(summary: RunSummary, state: LoopState, controller: FreezeOut) -> None:
    """Bring the summary's progress fields up to date with the loop and the controller."""
    summary.iterations_done, summary.train_seconds = state.iteration, state.train_seconds
    summary.eval_seconds, summary.best_val_err = state.eval_seconds, state.best_val_err
    summary.frozen_groups, summary.freeze_iterations = controller.num_frozen, list(controller.frozen_at)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
