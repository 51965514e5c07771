"""``train(cfg) -> summary``: one FreezeOut run, from config to per-run records.

The loop makes one call to the controller per iteration, keeps the data on the device, and syncs
with the host only every ``log_every`` iterations (progress, divergence check) and at epoch ends.
``train_seconds`` counts training steps only: evaluation and checkpointing are timed apart.
"""
from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .checkpoint import CHECKPOINT_FILE, load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from .config import model_kwargs, validate
from .data import Splits, batch_stream, dataset_spec, iterations_per_epoch, load_data, train_batches
from .devices import autocast_dtype, peak_memory_mb, synchronize
from .errors import ConfigError
from .freezer import FreezeOut
from .metrics import METRICS_FILE, SUMMARY_FILE, append_metrics, read_json, read_metrics, rewrite_metrics, write_json_atomic
from .models import factory
from .runkeys import NON_SEMANTIC_KEYS, flatten, under
from .provenance import device_name, git_revision, library_versions
from .speedup import calc_speedup, paper_applies

log = logging.getLogger("freezeout")

FINAL_STATUSES = ("completed", "diverged")


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def train(cfg: DictConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """Train one model with FreezeOut as ``cfg`` says; write the per-run files into ``run_dir``
    (default: Hydra's output directory) and return the summary. Invalid settings raise
    :class:`ConfigError` before anything is written. A completed run in ``run_dir`` is returned
    as it is; an interrupted one is resumed from its last checkpoint."""
    device = validate(cfg)
    run_dir = Path(run_dir) if run_dir is not None else _hydra_output_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    previous = read_json(run_dir / SUMMARY_FILE)
    for stored in (previous and previous.get("config"), checkpoint and checkpoint.get("config")):
        if stored is not None:
            _check_same_run(stored, cfg, run_dir)
    if previous and previous.get("status") in FINAL_STATUSES:
        log.info("%s already holds a %s run: nothing to do", run_dir, previous["status"])
        return previous

    model = build_run_model(cfg, device)
    data = load_data(cfg.data.name, cfg.data.root, device, cfg.data.val_size, cfg.data.subset,
                     with_test=cfg.eval_test, download=cfg.data.download)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fastest kernels; bitwise resume is a CPU promise

    ipe = iterations_per_epoch(len(data.train_x), cfg.batch_size)
    if ipe < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} is larger than the {len(data.train_x)} training images")
    input_shape = (1, *data.train_x.shape[1:])
    predicted = _predicted_speedups(model, input_shape, cfg)
    total_iters = cfg.epochs * ipe
    if cfg.const_time:  # spend the baseline's budget: T' = T / (1 - s) (DESIGN §1 "const_time")
        total_iters = round(total_iters / (1.0 - predicted["flops"]))
    freezer = FreezeOut(model.layer_groups(), total_iters, cfg.t_0, cfg.strategy.name, cfg.lr,
                        cfg.scale_lr, cfg.momentum, cfg.nesterov, cfg.weight_decay)
    step = make_train_step(model, freezer.optimizer, cfg.precision, device, cfg.compile)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    if cfg.predict_time:
        predicted["time"] = _predict_time_speedup(model, data, cfg, device)
    summary = _base_summary(cfg, model, data, device, ipe, total_iters, freezer, predicted)
    log.info("%s (%d layer groups, %.2fM params) on %s: %d iterations (%d a epoch); predicted speedup "
             "%s", cfg.model.name, len(freezer.groups), summary["num_params"] / 1e6, device, total_iters,
             ipe, ", ".join(f"{k} {100 * v:.1f}%" for k, v in predicted.items() if v is not None))
    state = {"epoch": 0, "iteration": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "best_val_err": None}
    metrics_path = run_dir / METRICS_FILE
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        freezer.load_state_dict(checkpoint["freezer"])
        if step.scaler is not None and checkpoint.get("scaler"):
            step.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng_state(checkpoint["rng"], generator)
        state.update(checkpoint["loop"])
        log.info("resuming %s from epoch %d (iteration %d)", run_dir, state["epoch"], state["iteration"])
    # Each epoch exactly once: drop records written after the checkpoint we resume from.
    records = [r for r in read_metrics(metrics_path) if r["epoch"] <= state["epoch"]]
    rewrite_metrics(metrics_path, records)
    if records:  # a run killed after its last checkpoint still reports its final error
        summary.update(final_val_err=records[-1]["val_err"], final_val_loss=records[-1]["val_loss"])
    summary.update(status="running", started_at=_now())
    write_json_atomic(run_dir / SUMMARY_FILE, summary)

    try:
        _loop(cfg, model, data, freezer, step, generator, state, summary, run_dir, device, ipe, total_iters)
        summary["status"] = "completed"
        if cfg.eval_test:
            _, summary["test_err"] = evaluate(model, data.test_x, data.test_y, cfg.precision, device)
    except Diverged as e:
        summary.update(status="diverged", error=str(e))
        log.warning("%s", e)
    except BaseException as e:
        summary.update(status="failed", error=f"{type(e).__name__}: {e}")
        raise
    finally:
        summary.update(finished_at=_now(), iterations_done=state["iteration"],
                       train_seconds=state["train_seconds"], eval_seconds=state["eval_seconds"],
                       best_val_err=state["best_val_err"], frozen_groups=freezer.num_frozen)
        write_json_atomic(run_dir / SUMMARY_FILE, summary)
    log.info("%s: val err %.2f%% in %.1f s of training (predicted speedup %.1f%%)", summary["status"],
             100 * (summary["final_val_err"] or math.nan), summary["train_seconds"], 100 * predicted["flops"])
    return summary


def _loop(cfg, model, data: Splits, freezer: FreezeOut, step, generator, state, summary, run_dir,
          device, ipe: int, total_iters: int) -> None:
    """Epochs until ``total_iters`` iterations are done; metrics and a checkpoint after each."""
    epochs = math.ceil(total_iters / ipe)
    # Plain locals: a config lookup per iteration would cost more than the controller's call.
    log_every, channels_last, augment = cfg.log_every, cfg.channels_last, cfg.data.augment
    bar = tqdm(total=total_iters, initial=state["iteration"], disable=not cfg.progress, unit="it",
               dynamic_ncols=True, mininterval=1.0, desc=f"{cfg.strategy.name} t_0={cfg.t_0}")
    try:
        for epoch in range(state["epoch"] + 1, epochs + 1):
            model.train()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            loss_sum = torch.zeros((), device=device)
            seen = 0
            synchronize(device)
            start = time.perf_counter()
            j = state["iteration"]
            for x, y in train_batches(data.train_x, data.train_y, cfg.batch_size, generator, augment):
                if j >= total_iters:
                    break
                freezer.step(j)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss_sum += step(x, y)
                j, seen = j + 1, seen + 1
                if j % log_every == 0:  # the only host sync inside an epoch
                    mean_loss = _check_finite(loss_sum.item() / seen, j)
                    bar.set_postfix(loss=f"{mean_loss:.3f}", frozen=f"{freezer.num_frozen}/{len(freezer.groups)}",
                                    val_err=_pct(state["best_val_err"]), refresh=False)
                    bar.update(j - bar.n)
            synchronize(device)
            epoch_seconds = time.perf_counter() - start
            train_loss = _check_finite(loss_sum.item() / max(seen, 1), j)
            bar.update(j - bar.n)

            start = time.perf_counter()
            val_loss, val_err = evaluate(model, data.val_x, data.val_y, cfg.precision, device)
            eval_seconds = time.perf_counter() - start
            best = state["best_val_err"]
            state.update(epoch=epoch, iteration=j, train_seconds=state["train_seconds"] + epoch_seconds,
                         eval_seconds=state["eval_seconds"] + eval_seconds,
                         best_val_err=val_err if best is None else min(best, val_err))
            append_metrics(run_dir / METRICS_FILE, {
                "epoch": epoch, "iteration": j, "train_loss": train_loss, "val_loss": val_loss,
                "val_err": val_err, "frozen_groups": freezer.num_frozen, "lr": freezer.current_lr(),
                "train_seconds": state["train_seconds"], "epoch_seconds": epoch_seconds,
                "eval_seconds": eval_seconds, "peak_memory_mb": peak_memory_mb(device),
            })
            summary.update(final_val_err=val_err, final_val_loss=val_loss)
            if cfg.checkpoint:
                save_checkpoint(run_dir / CHECKPOINT_FILE, {
                    "model": model.state_dict(), "freezer": freezer.state_dict(),
                    "scaler": step.scaler.state_dict() if step.scaler is not None else None,
                    "rng": rng_state(generator), "loop": dict(state),
                    "config": OmegaConf.to_container(cfg, resolve=True),
                })
            bar.set_postfix(loss=f"{train_loss:.3f}", frozen=f"{freezer.num_frozen}/{len(freezer.groups)}",
                            val_err=_pct(val_err))
            log.info("epoch %d/%d  loss %.4f  val err %.2f%%  frozen %d/%d  train %.1f s  eval %.1f s",
                     epoch, epochs, train_loss, 100 * val_err, freezer.num_frozen, len(freezer.groups),
                     epoch_seconds, eval_seconds)
    finally:
        bar.close()


class TrainStep:
    """One optimisation step (forward, loss, backward, optimizer) with optional autocast/compile.

    Returns the loss as a device tensor: reading it back is left to the caller, once in a while.
    """

    def __init__(self, model, optimizer, precision: str, device: torch.device, compile_model: bool = False):
        self.model, self.optimizer, self.device = model, optimizer, device
        self.amp_dtype = autocast_dtype(precision)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        if compile_model:
            # One compiled graph per layer group: freezing a group recompiles that group (and the
            # next, whose input stops requiring grad) once, instead of the whole model per stage.
            # Groups share code objects (every bottleneck runs the same forward), so dynamo's
            # per-code recompile limit must cover all groups' variants, or it silently falls
            # back to eager for the rest.
            groups = model.layer_groups()
            limit = 4 * len(groups)
            dynamo_config = torch._dynamo.config
            name = "recompile_limit" if hasattr(dynamo_config, "recompile_limit") else "cache_size_limit"
            setattr(dynamo_config, name, max(getattr(dynamo_config, name), limit))
            for group in groups:
                for root in group.roots:
                    root.compile()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss.detach()


def make_train_step(model, optimizer, precision: str, device: torch.device, compile_model: bool = False) -> TrainStep:
    """The step function the trainer, the time model and the benchmark all use."""
    return TrainStep(model, optimizer, precision, device, compile_model)


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, precision: str, device: torch.device,
             batch_size: int = 500) -> tuple[float, float]:
    """Mean cross-entropy and error rate (fraction) of ``model`` on ``(x, y)``, in eval mode."""
    was_training = model.training
    model.eval()
    amp_dtype = autocast_dtype(precision)
    loss_sum = torch.zeros((), device=device)
    wrong = torch.zeros((), device=device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = model(x[i:i + batch_size])
        loss_sum += F.cross_entropy(out.float(), y[i:i + batch_size], reduction="sum")
        wrong += (out.argmax(1) != y[i:i + batch_size]).sum()
    model.train(was_training)
    return loss_sum.item() / len(x), wrong.item() / len(x)


def build_run_model(cfg: DictConfig, device: torch.device) -> torch.nn.Module:
    """The run's model (see :func:`freezeout.models.factory.build_run_model`), sized by the data."""
    return factory.build_run_model(cfg, *factory.data_dims(cfg.data.name), device)


def _predicted_speedups(model, input_shape, cfg) -> dict[str, float | None]:
    """flops always; paper where it is defined (DenseNet-BC on 32x32); time filled in later."""
    def predict(method):
        return calc_speedup(model, input_shape, cfg.t_0, cfg.strategy.name, method=method)
    return {"flops": predict("flops"), "paper": predict("paper") if paper_applies(model, input_shape) else None,
            "time": None}


def _predict_time_speedup(model, data: Splits, cfg, device) -> float:
    """The time model, measured on this run's device, model, batch size and step settings, from
    its own batch stream and without touching the run's random streams (so a run trains the same
    with or without it)."""
    channels_last = cfg.channels_last
    stream = batch_stream(data.train_x, data.train_y, cfg.batch_size, cfg.seed + 1, cfg.data.augment)

    def make_batch():
        x, y = next(stream)
        return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y

    def make_step(probe, optimizer):
        return make_train_step(probe, optimizer, cfg.precision, device, cfg.compile)

    devices = [device] if device.type == "cuda" else []
    start = time.perf_counter()
    with torch.random.fork_rng(devices=devices):
        speedup = calc_speedup(model, (1, *data.train_x.shape[1:]), cfg.t_0, cfg.strategy.name,
                               method="time", make_batch=make_batch, make_step=make_step)
    log.info("time-model speedup %.1f%% (measured in %.1f s)", 100 * speedup, time.perf_counter() - start)
    return speedup


def _base_summary(cfg, model, data: Splits, device, ipe, total_iters, freezer: FreezeOut, predicted) -> dict:
    container = OmegaConf.to_container(cfg, resolve=True)
    return {
        "status": "running", "error": None,
        "strategy": cfg.strategy.name, "t_0": cfg.t_0, "scale_lr": cfg.scale_lr, "const_time": cfg.const_time,
        "seed": cfg.seed, "model": container["model"], "data": container["data"],
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
        "iterations": total_iters, "iterations_done": 0, "iterations_per_epoch": ipe,
        "train_images": len(data.train_x), "val_images": len(data.val_x),
        "num_groups": len(freezer.groups), "layer_times": freezer.times,
        "predicted_speedup": predicted, "train_seconds": 0.0, "eval_seconds": 0.0,
        "final_val_err": None, "final_val_loss": None, "best_val_err": None, "test_err": None,
        "num_params": sum(p.numel() for p in model.parameters()),
        "device": device_name(device), "versions": library_versions(), "git_revision": git_revision(),
        "config": container,
    }


def _check_same_run(stored: dict, cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume or skip over a run directory that holds a different configuration."""
    current = flatten(OmegaConf.to_container(cfg, resolve=True))
    stored = flatten(stored)
    differ = sorted(k for k in set(current) | set(stored)
                    if not under(k, NON_SEMANTIC_KEYS) and current.get(k) != stored.get(k))
    if differ:
        shown = ", ".join(f"{k}: {stored.get(k)!r} there, {current.get(k)!r} now" for k in differ[:5])
        raise ConfigError(f"{run_dir} holds a run with a different config ({shown}); "
                          "start this one in a new directory (hydra.run.dir=...)")


def _hydra_output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()


def _check_finite(value: float, iteration: int) -> float:
    if not math.isfinite(value):
        raise Diverged(f"training loss became {value} by iteration {iteration}")
    return value


def _pct(err: float | None) -> str:
    return "-" if err is None else f"{100 * err:.1f}%"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
