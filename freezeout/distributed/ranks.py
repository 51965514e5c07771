"""What a run on several processes does differently (:mod:`freezeout.distributed` gives the
processes; :mod:`freezeout.distributed.gradsync` the gradient all-reduce): the checks it needs, per-process seeds,
SyncBatchNorm, one model on every process at each epoch end, every process's own states in the
one checkpoint, and rank 0 alone logging. Everything here leaves a single-process run as it was.

Seeds: initial weights come from ``seed`` on every process; the data generator is seeded with
``seed`` on every process, so all draw the same shuffle and the same augmentation for each whole
global batch and each takes its slice (:func:`freezeout.data.train_batches`); torch's global
stream (dropout) is seeded per process from ``(seed, rank)``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError
from ..rundir.checkpoint import checkpoint_device_type
from . import process_group as distributed

#: Test hook: when set to a directory, every process saves its model's state_dict there at each
#: epoch end (``rank{r}-epoch{e}.pt``), so a test can compare the processes' weights.
DEBUG_STATES_ENV = "FREEZEOUT_DEBUG_RANK_STATES"


def check_config(cfg: Any, device: torch.device) -> torch.device:
    """Refuse what a run on this many processes cannot do, before anything is loaded or written;
    returns this process's device (its own GPU on CUDA)."""
    n = distributed.world_size()
    if n == 1:
        return device
    if cfg.batch_size % n:
        near = n * max(1, (cfg.batch_size + n // 2) // n)
        raise ConfigError(f"batch_size={cfg.batch_size} is not divisible by the {n} processes of this run "
                          f"(each takes batch_size / {n} images of every step); use a multiple of {n}, "
                          f"e.g. batch_size={near}")
    if device.type == "cuda":
        if device.index is not None:
            raise ConfigError(f"device={cfg.device} puts all {n} processes on one GPU; use device=cuda or "
                              "device=auto: each process takes GPU LOCAL_RANK")
        device = torch.device("cuda", torch.cuda.current_device())
    if cfg.sync_bn and device.type != "cuda":
        raise ConfigError("sync_bn=true needs CUDA devices (torch.nn.SyncBatchNorm synchronises on GPUs "
                          "only); on the CPU use sync_bn=false: per-process batch statistics")
    return device


def check_resume(checkpoint: dict | None, run_dir: Path, device: torch.device | None = None) -> None:
    """A checkpoint resumes on the world size and the device type (``device``'s) it was written
    on, or not at all: its random states are of its own device type's generator (a CPU run
    resumed on a GPU with ``device=auto`` would hand a CUDA generator the CPU's state)."""
    if checkpoint is None:
        return
    saved_type = checkpoint_device_type(checkpoint)
    if device is not None and saved_type is not None and saved_type != device.type:
        raise ConfigError(f"{run_dir} holds a run trained on {saved_type}; this launch would resume it on {device} "
                          f"(its random states are {saved_type}'s): resume it with "
                          f"device={saved_type} on a machine that has one, or start afresh in another run directory")
    saved, n = checkpoint.get("world_size", 1), distributed.world_size()
    if saved != n:
        raise ConfigError(f"{run_dir} holds a run trained on {saved} process(es); resume it on {saved} "
                          f"(this launch has {n}): its data shards, per-process RNG states and "
                          "BatchNorm statistics depend on the number of processes")


def seed_rank(seed: int) -> None:
    """Give each process its own stream of torch's global RNG, from ``(seed, rank)``. Call after
    the model is built (its weights are the same everywhere); one process keeps its stream."""
    if distributed.active():
        torch.manual_seed(int(np.random.SeedSequence([seed, distributed.rank()]).generate_state(1)[0]))


def prepare_model(model: nn.Module, sync_bn: bool) -> nn.Module:
    """With several processes and ``sync_bn``: SyncBatchNorm, batch statistics over all processes
    (a frozen group's norm layers are in eval mode and use their fixed running statistics)."""
    if distributed.active() and sync_bn:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def end_epoch(model: nn.Module, epoch: int) -> None:
    """Make every process's model rank 0's: the weights are equal already (same all-reduced
    gradients), the running statistics of trainable BatchNorm layers moved on each process's own
    shard. Evaluation, the checkpoint and the next epoch then see one model."""
    if distributed.active():
        for b in model.buffers():
            dist.broadcast(b, src=0)
    debug = os.environ.get(DEBUG_STATES_ENV)
    if debug:
        torch.save(model.state_dict(), Path(debug) / f"rank{distributed.rank()}-epoch{epoch}.pt")


def checkpoint_ranks(own: dict) -> dict:
    """The checkpoint's entries for several processes (a collective: every process calls it):
    ``ranks``, each process's ``own`` states (its RNG states, a stopped epoch's running loss) in
    rank order, gathered to rank 0, which alone writes the checkpoint; and the ``world_size``."""
    states = distributed.gather(on_host(own))
    return {"world_size": distributed.world_size(), **({"ranks": states} if distributed.active() else {})}


def on_host(own: dict) -> dict:
    """A process's own states as they are gathered: the running loss as a number, every tensor
    (the RNG states) a CPU copy. Pickled as they are, a GPU tensor would be unpickled by rank 0
    onto that rank's GPU: a CUDA context and memory on every GPU of the node."""
    def host(value):
        if isinstance(value, dict):
            return {k: host(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(host(v) for v in value)
        return value.detach().cpu() if isinstance(value, torch.Tensor) else value

    loss = own.get("loss_sum")
    return {**host(own), "loss_sum": None if loss is None else float(loss)}


def own_states(checkpoint: dict) -> dict:
    """This process's own states from a checkpoint (rank 0's are the top-level ones); a running
    loss gathered as a number (:func:`on_host`) comes back as the float32 tensor it was."""
    if "ranks" in checkpoint:
        own = checkpoint["ranks"][distributed.rank()]
        loss = own.get("loss_sum")
        return {**own, "loss_sum": torch.tensor(loss, dtype=torch.float32) if isinstance(loss, float) else loss}
    partial = checkpoint.get("partial_epoch")
    return {"rng": checkpoint["rng"], "loss_sum": None if partial is None else partial["loss_sum"]}


def quiet_other_ranks() -> None:
    """On ranks other than 0: no log file (rank 0 writes run.log) and warnings only on the console.
    Works before the process group exists (the rank is read from the launch's environment)."""
    env = distributed.launch_env()
    if env is None or env["RANK"] == "0":
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
    logging.getLogger("freezeout").setLevel(logging.WARNING)
