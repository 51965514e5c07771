"""``hydra/launcher=turns``: each comparison group of a sweep (a baseline and the methods compared
with it, one seed of one setting: ``groups.py``) trains as one round, its runs taking turns every
``turn_every`` iterations, each in a process of its own (``freezeout.bench.turns``; the job's side
is ``turns_job.py``), group after group, baseline first.

Runs that take turns train their iteration j at about the same moment, so a slow or fast spell of
a shared machine falls on the run and its baseline alike, and each run records the same load as
its baseline (``summary.json``'s ``load``, one ``turns_group`` per round): the measured speedup
compares like with like. Jobs run in the order of their groups, so a sweep stopped early holds
complete comparisons. What a job writes is what it writes under the basic launcher (``.hydra/``,
``run.log``, ``metrics.jsonl``, ``summary.json``); a run that fails is recorded as failed and the
others of its round train on. Ctrl-C stops every run of the round at its next turn.
"""
# No "from __future__ import annotations": Hydra scans this module outside sys.modules, where
# dataclasses cannot resolve string annotations. Nothing heavy at module level: Hydra imports
# every plugin module at every start.

import functools
import logging
import math
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from .groups import comparison_groups

log = logging.getLogger("freezeout")
launch_log = logging.getLogger(__name__)


def _shared_overrides(overrides: List[List[str]]) -> List[str]:
    """The overrides every job of a launch has (said once, not in every round's line), in the
    first job's order."""
    lists = [filter_overrides(o) for o in overrides]
    return [x for x in lists[0] if all(x in other for other in lists[1:])] if lists else []


@dataclass
class TurnsLauncherConf:
    _target_: str = "hydra_plugins.freezeout_launch.turns_launcher.TurnsLauncher"
    # Runs taking turns at most (null: a whole comparison group). A larger group is cut into
    # rounds, the baseline in the first: the later rounds' runs do not take turns with it.
    max_turns: Optional[int] = None
    # Iterations a run trains in a turn. Short turns put the runs' iteration j at about the same
    # moment; in turns of 50 the study's runs measured every speedup low (docs/sweeps-and-analysis.md).
    turn_every: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="turns_schema", node=TurnsLauncherConf,
                             provider="freezeout")


class TurnsLauncher(Launcher):
    def __init__(self, max_turns: Optional[int] = None, turn_every: int = 1) -> None:
        super().__init__()
        self.max_turns, self.turn_every = max_turns, turn_every
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if not (isinstance(self.turn_every, int) and self.turn_every >= 1):  # one line, as run.py says a bad setting
            print(f"error: hydra.launcher.turn_every={self.turn_every!r}: need an integer >= 1 (iterations a run "
                  "trains in a turn)", file=sys.stderr, flush=True)
            sys.exit(2)
        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        jobs = [(initial_job_idx + i, list(o)) for i, o in enumerate(job_overrides)]
        rounds = comparison_groups(jobs, self.max_turns)
        shared = _shared_overrides([o for _, o in jobs])
        launch_log.info("Launching %d jobs in %d rounds of runs taking turns%s", len(jobs), len(rounds),
                        f" ({' '.join(shared)})" if shared else "")
        returns: Dict[int, JobReturn] = {}
        for number, group in enumerate(rounds):
            launch_log.info("round %d: %s", number, "; ".join(
                f"#{i} {' '.join(x for x in filter_overrides(o) if x not in shared) or '(as above)'}"
                for i, o in group))
            prepared = [self._prepare(i, o) for i, o in group]
            self._train_round(prepared, f"{Path(str(self.config.hydra.sweep.dir)).name}-{number}-"
                                        f"{uuid.uuid4().hex[:8]}")
            returns.update((i, p["ret"]) for (i, _), p in zip(group, prepared))
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [returns[i] for i, _ in jobs]

    def _prepare(self, number: int, overrides: List[str]) -> Dict[str, Any]:
        """Hydra's job set-up (run directory, ``.hydra/``, callbacks) for one job, as the basic
        launcher does it, with a task that only captures the job's config and directory."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg):
            cfg.hydra.job.id = cfg.hydra.job.num = number
        job: Dict[str, Any] = {"number": number, "logging": cfg.hydra.job_logging, "verbose": cfg.hydra.verbose}

        def capture(task_cfg: DictConfig) -> float:
            OmegaConf.resolve(task_cfg)  # ${hydra:...} resolves to this job's, not the last one's
            job.update(cfg=task_cfg, dir=Path(HydraConfig.get().runtime.output_dir))
            return math.nan

        job["ret"] = run_job(hydra_context=self.hydra_context, task_function=capture, config=cfg,
                             job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir",
                             configure_logging=False)
        return job

    def _train_round(self, jobs: List[Dict[str, Any]], group_id: str) -> None:
        """Train the round's runs taking turns, each in a process of its own; fill in each job's
        return value."""
        from freezeout.bench.turns import take_turns  # torch: only once a sweep runs
        from freezeout.rundir.load import JOBS_BESIDE_ENV, TURNS_ENV, TURNS_GROUP_ENV
        from freezeout.training.signals import StopRequest
        from hydra_plugins.freezeout_launch.turns_job import file_free, record_result, train_job

        configure_log(jobs[0]["logging"], jobs[0]["verbose"])  # this process's console, as the jobs'
        root = logging.getLogger()
        for h in list(root.handlers):  # without the first job's run.log: each job writes its own
            if isinstance(h, logging.FileHandler):
                root.removeHandler(h), h.close()
        setup = {"logging": file_free(jobs[0]["logging"]), "numbers": [j["number"] for j in jobs],
                 "turn_every": self.turn_every}
        os.environ.update({JOBS_BESIDE_ENV: "0", TURNS_ENV: str(len(jobs)), TURNS_GROUP_ENV: group_id})
        try:  # the jobs' processes inherit the environment
            with StopRequest() as stop:
                results = take_turns([(j["cfg"], j["dir"]) for j in jobs], keep_going=True,
                                     run=functools.partial(train_job, setup), stop=lambda: stop.signame)
        finally:
            for key in (JOBS_BESIDE_ENV, TURNS_ENV, TURNS_GROUP_ENV):
                os.environ.pop(key, None)
        for job, result in zip(jobs, results):
            job["ret"].status = JobStatus.COMPLETED  # as run.py's jobs: a failure is recorded, not raised
            job["ret"].return_value = record_result(job["cfg"], job["dir"], result)
        if stop():
            log.error("%s: the round's runs stopped at their turn; to resume, re-launch the same sweep with the "
                      "same hydra.sweep.dir", stop.signame)
            sys.exit(130 if stop.signame == "SIGINT" else 143)
