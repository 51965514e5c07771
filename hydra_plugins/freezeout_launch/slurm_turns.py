"""``hydra/launcher=slurm_turns``: each comparison group of a sweep (a baseline and the methods
compared with it, one seed of one setting: ``groups.py``) is ONE SLURM job, one task of a job
array, in which the group's runs take turns (the turns launcher, ``turns_launcher.py``, run inside
the job). A run and its baseline then train on the same node, the same device, under the same
load, however busy the cluster: the measured speedups of a cluster sweep compare like with like,
as under ``hydra/launcher=turns`` on one machine. Every run records its SLURM job and node
(``summary.json``'s ``load``: ``slurm_job``, ``slurm_node``), so the analysis can tell pairs of
one job from pairs of different jobs.

Every setting of ``hydra/launcher=slurm`` applies (a job's resources are one group's: its runs
hold their models and data at the same time), plus ``max_turns`` and ``turn_every`` of the turns
launcher. Timed-out or preempted jobs are requeued and their runs resume from their checkpoints.
"""
# No "from __future__ import annotations": Hydra scans this module outside sys.modules, where
# dataclasses cannot resolve string annotations.

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides, setup_globals
from omegaconf import OmegaConf

from .groups import comparison_groups

log = logging.getLogger(__name__)

try:  # the `slurm` extra; without it this launcher is not offered
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
except ImportError:  # pragma: no cover - exercised where the extra is missing
    SlurmLauncher = None


if SlurmLauncher is not None:

    @dataclass
    class SlurmTurnsLauncherConf(SlurmQueueConf):
        _target_: str = "hydra_plugins.freezeout_launch.slurm_turns.SlurmTurnsLauncher"
        max_turns: Optional[int] = None  # runs taking turns at most in one job (null: a whole group)
        turn_every: int = 1  # iterations a run trains in a turn

    ConfigStore.instance().store(group="hydra/launcher", name="slurm_turns_schema", node=SlurmTurnsLauncherConf,
                                 provider="freezeout")

    class SlurmTurnsLauncher(SlurmLauncher):
        """One SLURM job per comparison group, its runs taking turns inside it."""

        def __init__(self, max_turns: Optional[int] = None, turn_every: int = 1, **params: Any) -> None:
            super().__init__(**params)
            self.max_turns, self.turn_every = max_turns, turn_every

        def __call__(self, group: List[Tuple[int, List[str]]], singleton_state: Dict[Any, Any]) -> List[JobReturn]:
            """In the SLURM job: the turns launcher on this group's jobs, in this process."""
            from .placement import available_cores
            from .turns_launcher import TurnsLauncher

            Singleton.set_state(singleton_state)
            setup_globals()
            import torch

            torch.set_num_threads(max(1, min(self.params.get("cpus_per_task") or available_cores(),
                                             available_cores())))
            turns = TurnsLauncher(max_turns=None, turn_every=self.turn_every)
            turns.setup(hydra_context=self.hydra_context, task_function=self.task_function, config=self.config)
            return list(turns.launch([o for _, o in group], initial_job_idx=group[0][0]))

        def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
            import submitit

            assert self.config is not None
            jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
            rounds = comparison_groups(jobs, self.max_turns)
            executor = submitit.AutoExecutor(cluster="slurm", folder=self.params["submitit_folder"],
                                             slurm_max_num_timeout=self.params.get("max_num_timeout", 0))
            base = set(OmegaConf.structured(BaseQueueConf).keys())
            executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in self.params.items()
                                          if k not in ("submitit_folder", "max_num_timeout")})
            sweep_dir = Path(str(self.config.hydra.sweep.dir))
            sweep_dir.mkdir(parents=True, exist_ok=True)
            log.info("Submitit 'slurm' sweep output dir : %s; %d jobs in %d SLURM jobs, one per comparison "
                     "group, its runs taking turns", sweep_dir, len(jobs), len(rounds))
            for number, group in enumerate(rounds):
                log.info("\tjob %d: %s", number, "; ".join(f"#{i} {' '.join(filter_overrides(o))}" for i, o in group))
            state = Singleton.get_state()
            submitted = executor.map_array(self, rounds, [state] * len(rounds))
            returns: Dict[int, JobReturn] = {}
            for group, job in zip(rounds, submitted):
                returns.update((i, ret) for (i, _), ret in zip(group, job.results()[0]))
            return [returns[i] for i, _ in jobs]
