"""Where a sweep job runs: its GPU and its share of the CPU, when a launcher runs several jobs at
once on one machine. Called once at the start of each job (``apply_job_placement``).

What each launcher needs (``hydra/launcher=...``):

- Hydra's basic launcher (the default) runs one job at a time in the launching process: nothing.
- ``parallel`` (joblib, loky processes) runs ``n_jobs`` jobs at once on this machine: each job
  takes a visible GPU that no other running job of the sweep holds, and ``cores // n_jobs`` threads.
- ``local`` (submitit_local) starts every job at once, one process each, all seeing the GPUs that
  ``gpus_per_node`` makes visible: a GPU each as above, ``cpus_per_task`` threads.
- ``slurm``: SLURM gives every job its own allocation; a job's GPUs are its ``cuda:0``,
  ``cuda:1``... (SLURM sets ``CUDA_VISIBLE_DEVICES``): the device is left alone; torch's thread
  count is set to ``cpus_per_task``, at most the CPUs the job may run on.

GPU indices are always among the visible devices: ``CUDA_VISIBLE_DEVICES`` is honoured by torch.
Only ``device=auto`` and ``device=cuda`` are placed; ``cpu`` and ``cuda:N`` mean what they say.

The chosen GPU is made torch's current device (``torch.cuda.set_device``) and ``cfg.device`` is
left as it is: ``auto``/``cuda`` then resolve to that GPU, and a re-launched job that lands on
another GPU still matches its run directory's config (``device`` is part of the resume check).

:func:`register_resolvers` registers two resolvers for ``conf/hydra/launcher/``: ``${freezeout.n_jobs:N}``
(the number of visible GPUs, or ``N``, at most one per core, on a machine without one: parallel's
default ``n_jobs``) and ``${freezeout.gpus:}`` (the number of visible GPUs: local's default
``gpus_per_node``). Nothing here imports torch at module level.
"""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger("freezeout")

#: Lock files, one per GPU, that the running jobs of a sweep hold: ``<sweep dir>/.placement/``.
#: Hidden, so that the analysis (which skips hidden folders) never sees it.
LOCK_DIR = ".placement"

#: The launchers, by the class name their config's ``_target_`` ends with.
LAUNCHER_KINDS = {
    "BasicLauncher": "basic",
    "JoblibLauncher": "joblib",
    "LocalLauncher": "submitit_local",
    "SlurmLauncher": "slurm",
    "SlurmTurnsLauncher": "slurm",  # slurm_turns: SLURM's resources, runs taking turns in each job
}

# The GPU lock this process holds: (file descriptor, GPU index, lock folder). Kept for the next
# job of the same process (a loky worker runs many, one after another); dropped when it exits.
_held_lock: tuple[int, int, Path] | None = None


# --- pure functions ---------------------------------------------------------------------------

def job_device(device: str, job_num: int, num_gpus: int) -> str:
    """The device job ``job_num`` of a sweep should use, among ``num_gpus`` visible GPUs.

    ``auto`` or ``cuda`` with two GPUs or more -> ``cuda:{job_num % num_gpus}``; with one GPU or
    none, or an explicit ``cpu`` / ``cuda:N``, the device is returned as it is.
    """
    if device in ("auto", "cuda") and num_gpus > 1:
        return f"cuda:{job_num % num_gpus}"
    return device


def effective_n_jobs(n_jobs: int | None, total_cores: int) -> int:
    """How many jobs joblib runs at once for its ``n_jobs``: ``-1`` all cores, ``-2`` all but one,
    ..., ``None`` or ``0`` one."""
    if not n_jobs:
        return 1
    if n_jobs < 0:
        return max(1, total_cores + 1 + n_jobs)
    return n_jobs


def cpu_threads_share(total_cores: int, n_jobs: int) -> int:
    """Threads per job when ``n_jobs`` jobs share ``total_cores`` cores: an equal share, at least 1."""
    return max(1, total_cores // max(1, n_jobs))


def launcher_kind(target: str | None) -> str:
    """``basic`` | ``joblib`` | ``submitit_local`` | ``slurm`` | ``other``, from a launcher's
    ``_target_``."""
    name = str(target or "").rsplit(".", 1)[-1]
    return LAUNCHER_KINDS.get(name, "other")


def job_threads(kind: str, launcher: Any, total_cores: int) -> int | None:
    """Torch threads for a job under a launcher of ``kind`` (its config ``launcher``), or None to
    leave torch's default (basic and unknown launchers)."""
    if kind == "joblib":
        return cpu_threads_share(total_cores, effective_n_jobs(_get(launcher, "n_jobs"), total_cores))
    if kind in ("submitit_local", "slurm"):
        return max(1, min(_get(launcher, "cpus_per_task") or total_cores, total_cores))
    return None


# --- the machine ------------------------------------------------------------------------------

def available_cores() -> int:
    """CPU cores this process may run on (its affinity: taskset, cgroups, SLURM's binding)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """Number of CUDA devices this process sees (after ``CUDA_VISIBLE_DEVICES``)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def default_n_jobs(cpu_jobs: int = 2) -> int:
    """Jobs to run at once on this machine: one per visible GPU, else ``cpu_jobs`` (at most one per
    core). The ``${freezeout.n_jobs:N}`` resolver."""
    gpus = visible_gpus()
    return gpus if gpus > 0 else max(1, min(int(cpu_jobs), available_cores()))


def claim_gpu(lock_dir: str | Path, preferred: int, num_gpus: int) -> tuple[int, bool]:
    """Take a GPU that no other running job holds, trying ``preferred`` first and then the next
    ones; returns ``(index, exclusive)``. If every GPU is taken (more jobs at once than GPUs),
    returns ``(preferred, False)`` and the job shares it.

    A job takes a GPU by holding an exclusive ``flock`` on ``lock_dir/cuda{i}.lock``: unlike
    ``job_num % num_gpus`` alone, this stays right when jobs of unequal length finish out of order.
    A process keeps its GPU until it exits (the kernel then drops the lock): a joblib worker runs
    all its jobs on one GPU, with one CUDA context and one memory cache.
    """
    import fcntl

    global _held_lock
    lock_dir = Path(lock_dir)
    if _held_lock is not None:
        fd, index, held_dir = _held_lock
        if held_dir == lock_dir and index < num_gpus:
            return index, True
        release_gpu()
    lock_dir.mkdir(parents=True, exist_ok=True)
    for k in range(num_gpus):
        index = (preferred + k) % num_gpus
        fd = os.open(lock_dir / f"cuda{index}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                continue
            raise
        _held_lock = (fd, index, lock_dir)
        return index, True
    return preferred % max(1, num_gpus), False


def release_gpu() -> None:
    """Release the GPU lock this process holds, if any."""
    global _held_lock
    if _held_lock is not None:
        try:
            os.close(_held_lock[0])  # closing the descriptor drops its flock
        finally:
            _held_lock = None


# --- the hook ---------------------------------------------------------------------------------

def apply_job_placement(cfg: Any, hydra_cfg: Any) -> str:
    """Place the job that is starting (call once at job start, before training).

    Only in multirun mode, under a launcher that runs jobs side by side (``parallel``/joblib,
    ``local``/submitit_local) or under SLURM: sets torch's CPU thread count to the job's share,
    and on a machine with several visible GPUs picks this job's GPU and makes it torch's current
    device. Returns the device the job will use as a string (``cfg.device`` itself when nothing
    was placed); ``cfg`` is not modified.
    """
    from hydra.types import RunMode

    device = str(cfg.device)
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return device
    launcher = hydra_cfg.launcher
    kind = launcher_kind(_get(launcher, "_target_"))
    threads = job_threads(kind, launcher, available_cores())
    if threads is None:
        return device
    import torch

    torch.set_num_threads(threads)
    if kind == "slurm":  # SLURM bound this job's GPUs: they are its cuda:0, cuda:1, ...
        log.info("job %s: %d CPU threads (slurm launcher)", hydra_cfg.job.num, threads)
        return device
    num_gpus = visible_gpus()
    placed = job_device(device, int(hydra_cfg.job.num), num_gpus)
    if placed != device:
        index, exclusive = claim_gpu(Path(str(hydra_cfg.sweep.dir)) / LOCK_DIR,
                                     int(placed.split(":")[1]), num_gpus)
        torch.cuda.set_device(index)
        placed = f"cuda:{index}"
        if not exclusive:
            log.warning("job %s: all %d GPUs are taken by other jobs of this sweep; sharing %s "
                        "(n_jobs is larger than the number of GPUs)", hydra_cfg.job.num, num_gpus, placed)
    log.info("job %s: device %s, %d CPU threads (%s launcher)", hydra_cfg.job.num, placed, threads, kind)
    return placed


def _get(node: Any, key: str) -> Any:
    """``node.key`` for a DictConfig or a dict, None when missing."""
    if node is None:
        return None
    try:
        return node.get(key)
    except AttributeError:
        return getattr(node, key, None)


def register_resolvers() -> None:
    """Register the resolvers the launcher configs (conf/hydra/launcher/) use:
    ``${freezeout.n_jobs:N}`` and ``${freezeout.gpus:}``, and the run-name resolver of
    conf/config.yaml (``${freezeout.non_semantic_keys:}``). Call once before composing."""
    from freezeout.rundir.identity import register_run_name_resolver

    register_run_name_resolver()
    for name, resolver in (("freezeout.n_jobs", default_n_jobs), ("freezeout.gpus", visible_gpus)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
