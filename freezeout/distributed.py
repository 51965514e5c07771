"""One run on several processes: the process group, rank helpers, per-process seeds and data shards,
the checks a distributed run needs, and every process's RNG state in the one checkpoint. Built on
PyTorch's own engine (torch.distributed, DDP); the DDP wrapper's life as groups freeze is in
:mod:`freezeout.ddp`. Everything here is a no-op in a single process.

Who starts the processes:
- ``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT;
- a submitit job with several tasks (``hydra/launcher=slurm_ddp`` on SLURM, or the local executor):
  rank, size and local rank come from submitit's ``JobEnvironment``, MASTER_ADDR is the job's first
  host and MASTER_PORT is derived from the job id, so every task finds the same rendezvous.

Backends: gloo for CPU tensors, NCCL for CUDA tensors (``cpu:gloo,cuda:nccl``); each process takes
GPU ``LOCAL_RANK`` (modulo the GPUs it sees, for clusters that give each task one GPU).
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .errors import ConfigError

#: Test hook: when set to a directory, every process saves its model's state_dict there at each
#: epoch end (``rank{r}-epoch{e}.pt``), so a test can compare the processes' weights.
DEBUG_STATES_ENV = "FREEZEOUT_DEBUG_RANK_STATES"


# --- the process group --------------------------------------------------------------------------

def submitit_rendezvous(job: Any) -> dict[str, str]:
    """torchrun's variables for a submitit ``JobEnvironment``: the same on every task of the job.
    The port comes from the job id (SLURM_JOB_ID; the controller's pid locally), so two jobs that
    share a node do not collide."""
    digits = re.sub(r"\D", "", str(job.raw_job_id)) or "0"
    return {"RANK": str(job.global_rank), "WORLD_SIZE": str(job.num_tasks), "LOCAL_RANK": str(job.local_rank),
            "MASTER_ADDR": str(job.hostnames[0]), "MASTER_PORT": str(20000 + int(digits) % 20000)}


def _launch_env() -> dict[str, str] | None:
    """The rendezvous of this process's launch, or None when it is the only process."""
    if os.environ.get("SUBMITIT_EXECUTOR"):  # a submitit task: its JobEnvironment says how many
        import submitit

        job = submitit.JobEnvironment()
        return submitit_rendezvous(job) if job.num_tasks > 1 else None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun (or anything that sets its variables)
        return {"RANK": os.environ["RANK"], "WORLD_SIZE": os.environ["WORLD_SIZE"],
                "LOCAL_RANK": os.environ.get("LOCAL_RANK", "0")}
    return None


def setup() -> None:
    """Join this launch's process group, when the environment says there are several processes.
    Idempotent; a no-op for a single process."""
    if dist.is_initialized():
        return
    env = _launch_env()
    if env is None:
        return
    os.environ.update(env)  # torchrun's names: read by env:// below and by anything after
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(env["LOCAL_RANK"]) % torch.cuda.device_count())  # one GPU per process
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, init_method="env://")


def shutdown() -> None:
    """Leave the process group (when there is one)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes the run's files."""
    return rank() == 0


def active() -> bool:
    """Whether several processes train together."""
    return world_size() > 1


# --- collectives on Python objects and scalars ---------------------------------------------------

def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` computed by rank 0 alone, its result handed to every process."""
    return broadcast(fn() if is_main() else None)


def gather(obj: Any) -> list | None:
    """Every process's ``obj`` in rank order, on rank 0 (None elsewhere)."""
    if not active():
        return [obj]
    out = [None] * world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def agree(value: Any, what: str) -> None:
    """Raise when the processes hold different ``value``s of something they must decide alike."""
    if not active():
        return
    values: list = [None] * world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"the {len(values)} processes disagree on the {what}: {values} (by rank)")


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. downloads or unpacks a dataset), then the others; when it
    fails there, the others raise rank 0's error instead of waiting for it."""
    if not active():
        yield
    elif is_main():
        try:
            yield
        except Exception as e:
            broadcast(e)
            raise
        broadcast(None)
    else:
        error = broadcast(None)
        if error is not None:
            raise error
        yield


def average(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over the processes (a new tensor; ``t`` itself is left alone)."""
    if not active():
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / world_size()


# --- what a distributed run needs ----------------------------------------------------------------

def shard() -> tuple[int, int]:
    """``(rank, world_size)``: this process takes slice ``rank`` of ``world_size`` of every batch."""
    return rank(), world_size()


def seed_rank(seed: int) -> None:
    """Give each process its own stream of torch's global RNG (dropout), derived from
    ``(seed, rank)``. Call after the model is built: initial weights (seeded with ``seed``) and the
    data generator (``seed`` on every process: one shuffle, one augmentation draw per global batch)
    are shared. A single process keeps its stream, so single-process runs are unchanged."""
    if active():
        torch.manual_seed(int(np.random.SeedSequence([seed, rank()]).generate_state(1)[0]))


def check_config(cfg: Any, device: torch.device) -> torch.device:
    """Refuse what a run on this many processes cannot do, before anything is loaded or written;
    returns this process's device (its own GPU on CUDA)."""
    n = world_size()
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


def check_resume(checkpoint: dict | None, run_dir: Path) -> None:
    """A checkpoint resumes on the world size it was written on, or not at all."""
    if checkpoint is None:
        return
    saved, n = checkpoint.get("world_size", 1), world_size()
    if saved != n:
        raise ConfigError(f"{run_dir} holds a run trained on {saved} process(es); resume it on {saved} "
                          f"(this launch has {n}): its data shards, per-process RNG states and "
                          "BatchNorm statistics depend on the number of processes")


def prepare_model(model: nn.Module, sync_bn: bool) -> nn.Module:
    """With several processes and ``sync_bn``: SyncBatchNorm, batch statistics over all processes
    (a frozen group's norm layers are in eval mode and use their fixed running statistics)."""
    if active() and sync_bn:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def end_epoch(model: nn.Module, epoch: int) -> None:
    """Make every process's model rank 0's: the weights are equal already (same all-reduced
    gradients), the running statistics of trainable BatchNorm layers moved on each process's own
    shard. Evaluation, the checkpoint and the next epoch then see one model."""
    if active():
        for b in model.buffers():
            dist.broadcast(b, src=0)
    debug = os.environ.get(DEBUG_STATES_ENV)
    if debug:
        torch.save(model.state_dict(), Path(debug) / f"rank{rank()}-epoch{epoch}.pt")


def rng_entries(state: dict) -> dict:
    """The checkpoint's RNG entries (a collective: every process calls it): ``rng``, this process's
    state as before; with several processes ``rng_ranks``, every process's state in rank order,
    gathered to rank 0, which alone writes the checkpoint; and the ``world_size``."""
    states = gather(state)
    return {"rng": state, "world_size": world_size(), **({"rng_ranks": states} if active() else {})}


def own_rng(checkpoint: dict) -> dict:
    """This process's RNG state from a checkpoint written by :func:`rng_entries`."""
    return checkpoint["rng_ranks"][rank()] if "rng_ranks" in checkpoint else checkpoint["rng"]


def quiet_other_ranks() -> None:
    """On ranks other than 0: no log file (rank 0 writes run.log) and warnings only on the console."""
    if is_main():
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
    logging.getLogger("freezeout").setLevel(logging.WARNING)


# --- local processes, as torchrun starts them (the benchmark) -----------------------------------

def spawned(n: int, fn: Callable[..., Any], *args: Any) -> bool:
    """Unless this process already trains with others (torchrun, or started here): run ``fn(*args)``
    in ``n`` new local processes that form one process group, with torchrun's variables and ``1/n``
    of torch's CPU threads each, wait for them and return True. False: go on in this process."""
    setup()
    if n <= 1 or active():
        return False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(_spawned, args=(n, port, torch.get_num_threads(), fn, args), nprocs=n)
    return True


def _spawned(r: int, n: int, port: int, threads: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(r), WORLD_SIZE=str(n), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(max(1, threads // n))
    setup()
    try:
        fn(*args)
    finally:
        shutdown()


def ddp(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel, every parameter registered, when several processes
    train (what a hand-written loop does); else ``model`` itself."""
    if not active():
        return model
    device = next(model.parameters()).device
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
