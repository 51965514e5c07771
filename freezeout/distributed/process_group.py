"""Several processes training one run: the process group, ranks, and the collectives the harness
uses (objects, a lock held by rank 0, a stop request all act on, the mean loss), on PyTorch's own
engine (torch.distributed). What a run does with them is in :mod:`freezeout.distributed.ranks`; the DDP
wrapper's life as groups freeze in :mod:`freezeout.distributed.gradsync`. Everything here is a no-op in a single
process.

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
import gc
import os
import re
import socket
import sys
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError

# --- the process group --------------------------------------------------------------------------

def submitit_rendezvous(job: Any) -> dict[str, str]:
    """torchrun's variables for a submitit ``JobEnvironment``: the same on every task of the job.
    The port comes from the job id (SLURM_JOB_ID; the controller's pid locally), so two jobs that
    share a node do not collide."""
    digits = re.sub(r"\D", "", str(job.raw_job_id)) or "0"
    return {"RANK": str(job.global_rank), "WORLD_SIZE": str(job.num_tasks), "LOCAL_RANK": str(job.local_rank),
            "MASTER_ADDR": str(job.hostnames[0]), "MASTER_PORT": str(20000 + int(digits) % 20000)}


def launch_env() -> dict[str, str] | None:
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
    env = launch_env()
    if env is None:
        return
    os.environ.update(env)  # torchrun's names: read by env:// below and by anything after
    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(env["LOCAL_RANK"]) % torch.cuda.device_count())  # one GPU per process
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend, init_method="env://")


def shutdown() -> None:
    """Leave the process group (when there is one). Garbage that still holds it (a run's DDP
    wrappers sit in reference cycles) is collected first, while the interpreter is whole: left to
    its exit, gloo's threads may be torn down out of order, and a rank of a completed run was once
    seen to abort there ("terminate called without an active exception")."""
    if dist.is_initialized():
        gc.collect()
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


@contextlib.contextmanager
def on_main_only(enter: Callable[[], Any]) -> Iterator[None]:
    """Rank 0 holds the context ``enter()`` returns (e.g. the run directory's lock) for the block;
    the others hold nothing, but raise rank 0's error when it could not enter."""
    if not active():
        with enter():
            yield
        return
    with contextlib.ExitStack() as stack:
        if is_main():
            try:
                stack.enter_context(enter())
            except Exception as e:
                broadcast(e)
                raise
        error = broadcast(None)
        if error is not None:
            raise error
        yield


class SharedStop:
    """A stop request (SIGINT, SIGTERM) that every process acts on at the same step: calling it
    answers the decision the processes last took together; :func:`agree_stop` takes a new one,
    true as soon as any process was asked to stop."""

    def __init__(self, local: Callable[[], bool]):
        self.local, self.stopped = local, False

    def __call__(self) -> bool:
        return self.stopped

    @property
    def signame(self) -> str:
        return getattr(self.local, "signame", None) or "a stop request to another process"


def shared_stop(local: Callable[[], bool]) -> Callable[[], bool]:
    """``local`` (a :class:`~freezeout.training.signals.StopRequest`) as all processes' common decision."""
    return SharedStop(local) if active() else local


def agree_stop(stop: Callable[[], bool] | None) -> None:
    """Where every process stands at the same iteration (the loop's log points): decide together
    whether a :class:`SharedStop` stops them all (one all-reduce of a flag); else nothing."""
    if isinstance(stop, SharedStop) and not stop.stopped:
        flag = torch.tensor([1.0 if stop.local() else 0.0], device=collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        stop.stopped = bool(flag.item())


def collective_device() -> torch.device:
    """Where a tensor for a collective of this process group lives: this process's GPU when
    the group is NCCL alone (NCCL reduces GPU tensors only), else the CPU (gloo, or a group with
    a backend for each device)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard() -> tuple[int, int]:
    """``(rank, world_size)``: this process takes slice ``rank`` of ``world_size`` of every batch."""
    return rank(), world_size()


# --- local processes, as torchrun starts them (the benchmark) -----------------------------------

def spawned(n: int, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn(*args)`` in ``n`` new local processes that form one process group, with torchrun's
    variables, ``1/n`` of torch's CPU threads each and rank 0 alone printing, wait for them and
    return True; False (go on in this process) for ``n = 1`` or in a process that is one of ``n``
    already (started here, or by torchrun: then ``n`` must be its number of processes)."""
    setup()
    if active() and world_size() != n:
        raise ConfigError(f"bench.world_size={n} but this process is one of {world_size()}: use "
                          f"bench.world_size={world_size()}, or start it without torchrun")
    if n <= 1 or active():
        return False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    try:
        torch.multiprocessing.spawn(_spawned, args=(n, port, torch.get_num_threads(), fn, args), nprocs=n)
    except torch.multiprocessing.ProcessRaisedException as e:  # a bad setting stays one line
        last = str(e).strip().splitlines()[-1]
        if last.startswith(f"{ConfigError.__module__}.ConfigError: "):
            raise ConfigError(last.split(": ", 1)[1]) from None
        raise
    return True


def _spawned(r: int, n: int, port: int, threads: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(RANK=str(r), WORLD_SIZE=str(n), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(max(1, threads // n))
    if r != 0:  # one process says what they measure together
        sys.stdout = open(os.devnull, "w")
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
