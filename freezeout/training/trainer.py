"""``train(cfg) -> RunSummary``: one FreezeOut run, from config to per-run records.

Wires config, data, model, schedule, controller and the engine (:mod:`freezeout.training.step`, which
runs every training step; :mod:`freezeout.training.loop` runs the epochs), and writes
``metrics.jsonl``, ``summary.json`` and checkpoints. ``train_seconds`` counts training steps
only: evaluation and checkpointing are timed apart. One process at a time trains a run
directory (:mod:`freezeout.rundir.lock`); SIGINT and SIGTERM stop it cleanly (:mod:`freezeout.training.signals`).

On several processes (torchrun, ``hydra/launcher=slurm_ddp``) every process runs this same flow on
its shard of each batch (:mod:`freezeout.distributed`, :mod:`freezeout.distributed.ranks`); rank 0 alone
holds the lock, evaluates and writes files.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from ..data import Splits, iterations_per_epoch, load_data
from ..distributed import process_group as distributed
from ..distributed import ranks as runranks
from ..freezing.controller import FreezeOut
from ..freezing.optim import optimizer_factory
from ..freezing.rules import get_rule, make_controller, realised_times, run_schedule
from ..models.factory import build_run_model
from ..models.flops import group_costs
from ..models.report import format_report, grouping_rows
from ..rundir.load import measure_load
from ..rundir.lock import hold_run_lock
from ..rundir.provenance import device_name, git_revision, library_versions
from ..rundir.records import (
    COMPLETED,
    DIVERGED,
    FAILED,
    FINAL_STATUSES,
    INTERRUPTED,
    METRICS_FILE,
    RUNNING,
    SUMMARY_FILE,
    RunSummary,
    read_metrics,
    rewrite_metrics,
)
from ..rundir.resume import hydra_output_dir, prior_run
from ..rundir.sanity import OK as SANITY_OK
from ..rundir.sanity import sanity_problem
from ..speedup.formulas import const_time_iters, freezing_stages
from ..speedup.inputmodel import LoaderTiming, measure_input
from ..speedup.timemodel import measure_run, note_compile, predict_run
from .checks import CheckedRun, validate
from .devices import configure_backends
from .loop import LoopState, Run, check_pause_every, restore, train_epochs
from .signals import Interrupted, StopRequest
from .step import Diverged, TrainStep, evaluate, run_step_factory
from .trackers import open_loggers

log = logging.getLogger("freezeout")


def train(cfg: DictConfig, run_dir: str | Path | None = None,
          pause: Callable[[int], None] | None = None, pause_every: int | str | None = None) -> RunSummary:
    """Train one model with FreezeOut as ``cfg`` says; write the per-run files into ``run_dir``
    (default: Hydra's output directory) and return the summary. ``pause(iteration)``, when given,
    is called every ``pause_every`` iterations ("epoch": at the end of each of this run's epochs;
    None: at every log point, every ``log_every``),
    outside the timed steps: runs taking turns hand the machine to one another there. Invalid settings raise
    :class:`~freezeout.errors.ConfigError` before anything is written. A finished run in
    ``run_dir`` is returned as it is; an interrupted one is resumed from its last checkpoint.
    Raises :class:`~freezeout.rundir.lock.RunLocked` when another process trains ``run_dir``, and
    :class:`~freezeout.training.signals.Interrupted` after SIGINT/SIGTERM (with a checkpoint)."""
    check_pause_every(pause_every)
    distributed.setup()  # joins the launch's process group when started on several processes
    checked = validate(cfg)
    device = runranks.check_config(cfg, checked.device)
    run_dir = Path(run_dir) if run_dir is not None else hydra_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    with distributed.on_main_only(lambda: hold_run_lock(run_dir)), StopRequest() as stop:
        return _train(cfg, run_dir, device, checked, distributed.shared_stop(stop), pause, pause_every)


def _train(cfg: DictConfig, run_dir: Path, device: torch.device, checked: CheckedRun, stop, pause,
           pause_every: int | str | None) -> RunSummary:
    main = distributed.is_main()  # the one process that writes files
    previous, checkpoint = prior_run(run_dir, cfg)
    if previous is not None and previous.status in FINAL_STATUSES:
        log.info("%s already holds a %s run: nothing to do", run_dir, previous.status)
        return previous
    runranks.check_resume(checkpoint, run_dir, device)  # same world size, same device type
    distributed.barrier()  # every process has read the run directory before rank 0 writes to it

    model = runranks.prepare_model(build_run_model(cfg, device, checked.spec), cfg.sync_bn)
    runranks.seed_rank(cfg.seed)
    with distributed.main_first():  # rank 0 unpacks or downloads the data, then the others read it
        data = load_data(cfg.data, device, with_test=cfg.eval_test, spec=checked.spec, channels_last=cfg.channels_last)
    log.info("data: %s", describe_data(cfg.data, data, device))
    configure_backends(device, cfg.precision)
    ipe = iterations_per_epoch(len(data.train_x), cfg.batch_size)  # fewer if unreadable images were skipped
    groups = model.layer_groups()
    make_optimizer = optimizer_factory(cfg.optimizer)
    make_step = run_step_factory(cfg, device, data.train_x)  # with the frozen-prefix cache when cache_frozen
    total_iters, const_time_prediction = cfg.epochs * ipe, None
    schedule = run_schedule(cfg, len(groups), ipe, total_iters)
    costs = group_costs(model, (1, *data.train_x.shape[1:]))
    # The time model measures the untrained model before training: an adaptive rule's every possible stage.
    adaptive, input_shape = get_rule(cfg.strategy.name).adaptive, (1, *data.train_x.shape[1:])
    stages = range(len(groups)) if adaptive else freezing_stages(schedule.times)
    # streamed: the loader is timed between the time model's rounds (LoaderTiming)
    loader_timing = (LoaderTiming(data.stream, cfg.seed + 2, cfg.batch_size, distributed.shard())
                     if data.stream is not None else None)
    time_model = {}  # what the time model measured under, or why it was skipped (summary.json's time_model)
    step_times = measure_run(cfg, model, data, stages, make_optimizer, make_step, total_iters,
                             None if adaptive else schedule.times,  # cache_frozen=auto: its plan, set on make_step
                             between_rounds=loader_timing, notes=time_model)
    note_compile(make_step, step_times, None if adaptive else schedule.times, total_iters)
    step_times, input_info = measure_input(cfg, data, step_times, None if adaptive else schedule.times, total_iters,
                                           loader_timing)
    log.info("layer groups (%s):\n%s", getattr(model, "grouping", "declared by the model"),
             format_report(grouping_rows(groups, costs, schedule.times), input_info.get("input_bound_from")))
    predicted = {"flops": None, "paper": None, "time": None}  # an adaptive rule's: known once it has run
    if not adaptive:
        predicted = predict_run(cfg, model, input_shape, costs, schedule.times, step_times, total_iters)
    if cfg.const_time:  # spend the baseline's budget
        const_time_prediction = "time" if predicted["time"] is not None else "flops"
        total_iters = const_time_iters(total_iters, predicted[const_time_prediction])
        schedule = run_schedule(cfg, len(groups), ipe, total_iters)
    controller = make_controller(cfg.strategy, groups, schedule, make_optimizer)
    step = make_step(model, controller.optimizer)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)  # the same on every process

    summary = _new_summary(cfg, model, data, device, ipe, controller, predicted, const_time_prediction)
    summary.input, summary.time_model, summary.num_classes = input_info, time_model, data.spec.num_classes
    if step_times is not None:
        summary.step_seconds = {str(k): v for k, v in sorted(step_times[0].items())}
    log.info("%s (%d layer groups, %.2fM params) on %s%s: %d iterations (%d a epoch); predicted speedup %s",
             cfg.model.name, len(groups), summary.num_params / 1e6, device,
             f" x {summary.world_size} processes" if summary.world_size > 1 else "", total_iters, ipe,
             ", ".join(f"{k} {100 * v:.1f}%" for k, v in predicted.items() if v is not None))
    state, partial = LoopState(), None
    if checkpoint is not None:
        state, partial = restore(checkpoint, model, controller, step, generator)
        log.info("resuming %s from epoch %d (iteration %d)", run_dir, state.epoch, state.iteration)
    # Trackers (freezeout/training/trackers.py), before the summary says running: one that cannot start fails the run here.
    with distributed.main_first():  # rank 0's (the others have none); one that cannot start stops all
        loggers = open_loggers(cfg, run_dir, state.iteration, summary)
    # Each epoch exactly once: drop records written after the checkpoint we resume from.
    records = [r for r in read_metrics(run_dir / METRICS_FILE) if r["epoch"] <= state.epoch]
    if main:
        rewrite_metrics(run_dir / METRICS_FILE, records)
    if records:  # a run killed after its last checkpoint still reports its final error
        summary.final_val_err, summary.final_val_loss = records[-1]["val_err"], records[-1]["val_loss"]
    summary.started_at = _now()

    def write(s: RunSummary) -> None:
        _update(s, state, controller, step)
        if main:
            s.write(run_dir / SUMMARY_FILE)

    write(summary)
    load = measure_load(str(device))  # what shared the machine while it trained (jobs beside it, CPU share)
    try:
        with load:
            train_epochs(Run(cfg, model, data, controller, step, generator, run_dir, ipe, write, stop, loggers, pause,
                             pause_every),
                         state, summary, partial)
        if adaptive:  # its schedule is known now: predict from what happened
            times = realised_times(controller.frozen_at, controller.schedule.total_iters)
            summary.layer_times = times
            summary.predicted_speedup = predict_run(cfg, model, input_shape, costs, times, step_times,
                                                    controller.schedule.total_iters)
        summary.status = COMPLETED
        if main:  # one warning line when the run looks as if it never learned
            summary.sanity = _sanity(summary, run_dir)
        if cfg.eval_test:
            summary.test_err = distributed.on_main(lambda: evaluate(model, data.test_x, data.test_y,
                                                                    cfg.precision)[1])
    except Diverged as e:
        summary.status, summary.error = DIVERGED, str(e)
        state.iteration = e.iteration  # the iterations it really did
        log.warning("%s", e)
    except Interrupted as e:
        summary.status, summary.error = INTERRUPTED, str(e)
        raise
    except BaseException as e:
        summary.status, summary.error = FAILED, f"{type(e).__name__}: {e}"
        raise
    finally:
        summary.load = load.record()
        summary.finished_at = _now()
        write(summary)
        loggers.log_summary(summary)
        loggers.close()
    kind = "time" if summary.predicted_speedup.get("time") is not None else "flops"  # the measured one first
    predicted_final = summary.predicted_speedup.get(kind)
    log.info("%s: val err %.2f%% in %.1f s of training (predicted speedup %.1f%%, %s)", summary.status,
             100 * (summary.final_val_err or math.nan), summary.train_seconds,
             100 * (math.nan if predicted_final is None else predicted_final),
             "time model" if kind == "time" else "flops; no time model")
    return summary


def describe_data(opts, data: Splits, device) -> str:
    """One line a user checks first: images per split, classes, image size, where they are kept."""
    n, c, h, w = data.train_x.shape
    test = f", {len(data.test_y):,} test" if data.test_y is not None else ""
    workers = opts.workers
    where = (f"streamed from {opts.root} by {workers} loader worker{'' if workers == 1 else 's'}" if data.stream is not None
             else f"in memory on {device} ({n * c * h * w / 1e6:,.{0 if n * c * h * w >= 1e7 else 1}f} MB of training "
                  "images as uint8)")
    return (f"{opts.name}: {n:,} training, {len(data.val_y):,} validation{test} images, {data.spec.num_classes} "
            f"classes, {c}x{h}x{w}, {where}")


def _new_summary(cfg, model, data: Splits, device, ipe: int, controller: FreezeOut, predicted: dict,
                 const_time_prediction: str | None) -> RunSummary:
    container = OmegaConf.to_container(cfg, resolve=True)
    return RunSummary(
        status=RUNNING, strategy=cfg.strategy.name, rule=get_rule(cfg.strategy.name).facts(), t_0=cfg.t_0, scale_lr=cfg.scale_lr, const_time=cfg.const_time,
        seed=cfg.seed, model=container["model"], data=container["data"], optimizer=container["optimizer"],
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.optimizer.lr, precision=cfg.precision,
        device=device_name(device), iterations=controller.schedule.total_iters, iterations_per_epoch=ipe,
        train_images=len(data.train_x), val_images=len(data.val_x), num_groups=len(controller.groups),
        layer_times=list(controller.times), predicted_speedup=predicted,
        const_time_prediction=const_time_prediction, num_params=sum(p.numel() for p in model.parameters()),
        world_size=distributed.world_size(),
        versions=library_versions(), git_revision=git_revision(), config=container,
    )


def _update(summary: RunSummary, state: LoopState, controller: FreezeOut, step: TrainStep) -> None:
    """Bring the summary's progress fields up to date with the loop, the controller and the step."""
    summary.iterations_done, summary.train_seconds = state.iteration, state.train_seconds
    summary.eval_seconds, summary.best_val_err = state.eval_seconds, state.best_val_err
    summary.frozen_groups, summary.freeze_iterations = controller.num_frozen, list(controller.frozen_at)
    if step.sync is not None:
        summary.allreduce_bytes_per_step = {str(k): v for k, v in sorted(step.sync.bytes_per_step.items())}
    if step.compile_log is not None:
        summary.compile = step.compile_log.record()
    if step.cache is not None:
        summary.cache = step.cache.record()


def _sanity(summary: RunSummary, run_dir: Path) -> str:
    """``"ok"``, or why the run looks as if it never learned (freezeout/rundir/sanity.py), logged."""
    problem = sanity_problem(summary.final_val_err, read_metrics(run_dir / METRICS_FILE), summary.num_classes)
    if problem:
        log.warning("%s", problem)
    return problem or SANITY_OK


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
