"""``hydra/sweeper=frontier``: search for the front of (speedup, relative error) with Optuna's
multi-objective samplers, instead of a grid.

Each trial is a paired comparison: the method the sampler draws (a rule and its settings, from
the search space, ``frontier_space.py``) trained once per seed of ``seeds``, each run against the
baseline (``strategy=none``) of its seed, which the search trains once, first. The trial's two
objectives are the mean speedup (its runs' time model by default) and the mean relative error
(``frontier_study.py``). Runs go through the configured launcher into the sweep dir like any
sweep's, so resume, the analysis and the launchers work as for a grid.

The study lives in ``storage`` (by default SQLite in the sweep dir): re-launching the same sweep
continues it up to ``n_trials`` finished trials, without training the finished ones again;
trials a killed launch left running are run again with the same settings (their runs resume).
One launch at a time per study: a second one would take the first one's running trials for
killed ones.
``dry_run=true`` prints what the search will train and the time it will take, and trains nothing.
"""
# No "from __future__ import annotations": Hydra scans this module outside sys.modules, where
# dataclasses cannot resolve string annotations. Optuna is imported when a search starts.

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from freezeout.errors import ConfigError
from freezeout.rundir.records import COMPLETED

from .frontier_space import FrontierError, draw, override_text, split_space
from .frontier_study import SAMPLERS, SPEEDUPS, failed_reason
from .groups import is_method_key

log = logging.getLogger(__name__)  # not "freezeout": a job's name prefix stays off the search's lines


@dataclass
class FrontierSweeperConf:
    _target_: str = "hydra_plugins.freezeout_launch.frontier.FrontierSweeper"
    n_trials: int = 20  # finished trials the study should hold (a re-launch runs the rest)
    seeds: List[int] = field(default_factory=lambda: [0, 1, 2])  # every trial runs each seed
    storage: Optional[str] = None  # Optuna storage URL; null: sqlite:///<sweep dir>/frontier.db
    study_name: str = "frontier"
    sampler: str = "tpe"  # tpe | nsga2 | random
    sampler_seed: int = 0
    speedup: str = "time"  # the speedup objective: time (the run's time model) | flops | measured
    budget: float = 0.03  # relative error budget of the "best within budget" setting (fraction)
    float_step: Optional[float] = 0.01  # floats drawn on this grid (readable run dirs); null: continuous
    trials_per_launch: int = 1  # trials launched together (a parallel launcher runs them side by side)
    heartbeat_s: int = 10  # a worker's heartbeat, seconds; a trial silent for twice that is run again
    dry_run: bool = False
    params: Optional[Dict[str, Any]] = None  # the search space, as sweep overrides (null drops a key)


ConfigStore.instance().store(group="hydra/sweeper", name="frontier_schema", node=FrontierSweeperConf,
                             provider="freezeout")


class FrontierSweeper(Sweeper):
    def __init__(self, n_trials: int = 20, seeds: Optional[List[int]] = None, storage: Optional[str] = None,
                 study_name: str = "frontier", sampler: str = "tpe", sampler_seed: int = 0, speedup: str = "time",
                 budget: float = 0.03, float_step: Optional[float] = 0.01, trials_per_launch: int = 1,
                 heartbeat_s: int = 10, dry_run: bool = False, params: Optional[Dict[str, Any]] = None) -> None:
        self.n_trials, self.seeds, self.storage, self.study_name = n_trials, list(seeds or []), storage, study_name
        self.sampler, self.sampler_seed, self.speedup, self.budget = sampler, sampler_seed, speedup, budget
        self.float_step, self.trials_per_launch, self.dry_run = float_step, trials_per_launch, dry_run
        self.heartbeat_s = heartbeat_s
        self.params = dict(params or {})
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.launcher: Any = None
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def check(self) -> None:
        """Bad settings, before anything runs: one line each."""
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise FrontierError(f"hydra.sweeper.n_trials={self.n_trials}: give at least 1 trial")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise FrontierError(f"hydra.sweeper.seeds={self.seeds}: give one or more distinct seeds")
        for key, value, allowed in (("sampler", self.sampler, SAMPLERS), ("speedup", self.speedup, SPEEDUPS)):
            if value not in allowed:
                raise FrontierError(f"hydra.sweeper.{key}={value}: allowed: {', '.join(allowed)}")
        if self.trials_per_launch < 1:
            raise FrontierError(f"hydra.sweeper.trials_per_launch={self.trials_per_launch}: at least 1")
        if not isinstance(self.heartbeat_s, int) or self.heartbeat_s < 1:
            raise FrontierError(f"hydra.sweeper.heartbeat_s={self.heartbeat_s}: a whole number of seconds, at least 1")

    def sweep(self, arguments: List[str]) -> Any:
        # One line, as run.py says a bad setting, not Hydra's two. ConfigError, not FrontierError:
        # Hydra's plugin scan may load this package twice, each with its own FrontierError class.
        try:
            return self._sweep(arguments)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    def _sweep(self, arguments: List[str]) -> Any:
        from .frontier_shared import Heartbeat, requeue_stale, running_elsewhere, take_trial
        from .frontier_study import all_failed, counted, front_report, front_rows, open_study, write_front

        assert self.config is not None and self.hydra_context is not None
        self.check()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        params = [f"{k}={v}" for k, v in self.params.items() if v is not None]  # null: an inherited key dropped
        space, fixed = split_space(parser.parse_overrides(params + arguments))
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        storage = self.storage or f"sqlite:///{sweep_dir.resolve() / 'frontier.db'}"
        if self.dry_run:  # opens no store, creates nothing, then ends the launch (no analysis of nothing)
            self._dry_run(fixed, space, storage)
            sys.exit(0)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        study = open_study(storage, self.study_name, self.sampler, self.sampler_seed, self.heartbeat_s)
        requeued = requeue_stale(study)
        done = counted(study)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("frontier search: %d of %d trials done, %d to run (%d re-queued); %d seeds a trial; study %r in %s",
                 min(done, self.n_trials), self.n_trials, max(self.n_trials - done, 0), requeued, len(self.seeds),
                 self.study_name, storage)
        baselines = self._baselines(fixed)
        while True:  # other workers may share the study: take trials while the budget has room
            batch = []
            for _ in range(self.trials_per_launch):
                trial = take_trial(study, self.n_trials)
                if trial is None:
                    break
                batch.append(trial)
            if batch:
                with Heartbeat(study, batch, self.heartbeat_s):
                    self._run_trials(study, batch, fixed, space, baselines, sweep_dir)
            elif running_elsewhere(study, []):  # others' trials: wait, and take over a dead worker's
                time.sleep(self.heartbeat_s)
                requeue_stale(study)
            else:
                break
        rows = front_rows(study, self.budget)
        write_front(rows, sweep_dir)
        failed = all_failed(study)
        print(front_report(rows, self.budget, self.speedup, len(failed)), flush=True)
        if failed and not rows:
            print(f"error: {failed_reason(failed, self.speedup, self.config)}", file=sys.stderr, flush=True)
            sys.exit(1)
        return rows

    def _launch(self, jobs: List[List[str]]) -> List[Path]:
        """Launch ``jobs`` as one batch; their run directories, in order."""
        returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
        self.job_idx += len(jobs)
        return [Path(str(r.hydra_cfg.hydra.runtime.output_dir)) for r in returns]

    def _baseline_jobs(self, fixed: List[str]) -> List[List[str]]:
        kept = [f for f in fixed if not is_method_key(f.split("=", 1)[0])]
        return [kept + ["strategy=none", f"seed={s}"] for s in self.seeds]

    def _baselines(self, fixed: List[str]) -> List[Path]:
        """Train each seed's baseline (once: a finished one is found in its directory; one that
        another worker trains is waited for, then trained here only if it did not complete)."""
        from .frontier_shared import wait_for_runs
        from .frontier_study import read_summary

        jobs = self._baseline_jobs(fixed)
        dirs = self._launch(jobs)
        wait_for_runs(dirs)
        again = [(j, d) for j, d in zip(jobs, dirs) if getattr(read_summary(d), "status", None) != COMPLETED]
        if again:
            self._launch([j for j, _ in again])
        return dirs

    def _run_trials(self, study: Any, trials: List[Any], fixed: List[str], space: Dict[str, Any],
                    baselines: List[Path], sweep_dir: Path) -> None:
        from optuna.trial import TrialState

        from .frontier_shared import wait_for_runs
        from .frontier_study import reseed, trial_values

        drawn = []
        for t in trials:
            reseed(study, self.sampler, self.sampler_seed, t)
            drawn.append(draw(t, space, fixed, self.float_step))
        jobs = [fixed + [override_text(k, v) for k, v in params.items()] + [f"seed={s}", "predict_time=true"]
                for params in drawn for s in self.seeds]
        dirs = self._launch(jobs)
        wait_for_runs(dirs)  # a run another worker trains (the same settings drawn twice): its result
        n = len(self.seeds)
        for i, (trial, params) in enumerate(zip(trials, drawn)):
            try:
                values, details = trial_values(dirs[i * n:(i + 1) * n], baselines, self.speedup, sweep_dir)
            except ValueError as e:
                trial.set_user_attr("error", str(e))
                study.tell(trial, state=TrialState.FAIL)
                log.warning("frontier trial %d failed: %s", trial.number, e)
                continue
            for key, value in details.items():
                trial.set_user_attr(key, value)
            study.tell(trial, values)
            log.info("frontier trial %d: %s -> speedup %.1f%%, relative error %+.1f%%", trial.number,
                     " ".join(override_text(k, v) for k, v in params.items()), 100 * values[0], 100 * values[1])

    def _dry_run(self, fixed: List[str], space: Dict[str, Any], storage: str) -> None:
        from .frontier_plan import dry_run
        from .frontier_study import existing_trials

        assert self.config is not None and self.hydra_context is not None
        done, running = existing_trials(storage, self.study_name)
        dry_run(self.config, self.hydra_context.config_loader, self._baseline_jobs(fixed), space,
                max(self.n_trials - done, 0), running, len(self.seeds))
