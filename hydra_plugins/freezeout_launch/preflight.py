"""Checks a sweep's SLURM settings before any job is submitted (``hydra.callbacks.preflight``,
called when a ``-m`` launch starts): a bad setting ends the launch with one ``error:`` line
naming it, exit status 2, and nothing is written.

Under ``hydra/launcher=slurm`` and ``slurm_ddp``:

- the SLURM client (``sbatch``, ``sinfo``) is on PATH and its controller answers;
- ``hydra.launcher.partition``, when set, is a partition of that cluster;
- ``slurm_ddp``: every job's ``batch_size`` (swept values included) is divisible by its
  ``nodes x tasks_per_node`` processes (each takes an equal share of every step).

Other launchers are not checked here (their settings are checked where each job starts).
"""
# No "from __future__ import annotations": Hydra scans this package outside sys.modules.

import shutil
import subprocess
import sys
from typing import Any, List

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from freezeout.errors import ConfigError

from .placement import launcher_kind


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"hydra/launcher=slurm: {name} is not on PATH (no SLURM client on this machine); launch "
                          "from a login node of the cluster, or try the path here with hydra/launcher=local")
    return path


def partitions() -> List[str]:
    """The cluster's partitions, as ``sinfo`` names them; a ConfigError when it cannot ask."""
    try:
        proc = subprocess.run([_tool("sinfo"), "-h", "-o", "%R"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ConfigError("hydra/launcher=slurm: sinfo did not answer within 60 s (is the SLURM controller "
                          "up?)") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ConfigError(f"hydra/launcher=slurm: sinfo failed, the SLURM controller cannot be reached ({why})")
    return sorted({p.strip() for p in proc.stdout.split() if p.strip()})


def check_partition(partition: Any) -> None:
    if partition in (None, ""):
        return
    known = partitions()
    if str(partition) not in known:
        raise ConfigError(f"hydra.launcher.partition={partition}: no such partition on this cluster; "
                          f"it has {', '.join(known) or 'none'}")


def batch_sizes(config: DictConfig) -> List[Any]:
    """Every batch_size the sweep's jobs will take: the swept values of a ``batch_size=...``
    override (or of ``hydra.sweeper.params``), else the composed config's."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    texts = [str(o) for o in config.hydra.overrides.task]
    params = config.hydra.sweeper.get("params") or {}
    texts += [f"{k}={v}" for k, v in params.items() if v is not None]
    values = [config.get("batch_size")]
    for override in OverridesParser.create().parse_overrides(texts):  # the last one wins, as in Hydra
        if override.get_key_element() == "batch_size":
            values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    return values


def check_processes(config: DictConfig) -> None:
    launcher = config.hydra.launcher
    tasks = launcher.get("tasks_per_node") or 1
    nodes = launcher.get("nodes") or 1
    n = int(nodes) * int(tasks)
    if n <= 1:
        return
    for batch in batch_sizes(config):
        if batch is None or int(batch) % n:
            fix = n * max(1, -(-int(batch or 1) // n))
            raise ConfigError(f"batch_size={batch} is not divisible by the {n} processes of each job "
                              f"(hydra.launcher.nodes={nodes} x tasks_per_node={tasks}; each takes batch_size / {n} "
                              f"images of every step); use a multiple of {n}, e.g. batch_size={fix}")


def check_slurm(config: DictConfig) -> None:
    """All the checks above, for a config whose launcher is SLURM's; raises ConfigError."""
    check_processes(config)
    _tool("sbatch")
    check_partition(config.hydra.launcher.get("partition"))
    if not config.hydra.launcher.get("partition"):
        partitions()  # the controller answers


class PreflightCallback(Callback):
    """Runs :func:`check_slurm` when a multirun under a SLURM launcher starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if launcher_kind(config.hydra.launcher.get("_target_")) != "slurm":
            return
        try:
            check_slurm(config)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
