"""``freezeout train``: one model trained with FreezeOut, or a sweep of them with ``-m``:

    freezeout train strategy=cubic t_0=0.8
    freezeout train -m strategy=linear,squared,cubic t_0=0.5,0.8 seed=0,1
    freezeout train -m sweeps=strategies
    freezeout train --resume strategy=cubic t_0=0.8     # go on with the latest interrupted run of it

A Hydra app on the shipped configs: Hydra's flags work as they do for any Hydra app (``-m``,
``--cfg job``, ``--config-dir DIR``, ``hydra/launcher=parallel``, ``hydra.run.dir=...``).

One run on several processes: ``torchrun --nproc_per_node=N -m freezeout train ...`` (one process
group for the launch, joined before Hydra starts, so that every process writes into rank 0's run
directory), or ``-m hydra/launcher=slurm_ddp`` (each job on nodes x tasks_per_node processes).

``--resume`` (:mod:`freezeout.cli.resume`) goes on with the latest unfinished run of the same
config under ``./outputs``; without it, a run that finds one says so before it starts anew.
``--help`` lists the config groups. A config Hydra cannot compose (an unknown option or key, a
value of the wrong type) ends in one ``error:`` line, exit status 2 (:mod:`freezeout.cli.hydraerrors`).

Returns the final validation error as the objective, for Hydra's sweepers. Invalid settings exit
with one line naming the key and the allowed values (``debug=true`` shows the traceback); in a
sweep a failing run is recorded in its ``summary.json`` and the sweep goes on.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from hydra_plugins.freezeout_launch.placement import apply_job_placement, register_resolvers

from ..config import config_dir, register_configs
from ..errors import ConfigError
from ..rundir.records import COMPLETED, DIVERGED, FAILED, SUMMARY_FILE, RunSummary
from .helptext import command_help
from .hydraerrors import one_line_compose_errors
from .project import use_launch_dir, use_shipped_configs
from .resume import RESUME_FLAG, resume_overrides

log = logging.getLogger("freezeout")
#: The Hydra callback (conf/config.yaml) that counts a sweep's failed and diverged runs.
STATUS_CALLBACK = "freezeout.analysis.status.SweepStatusCallback"
# At import, not in main(): a launcher's worker process imports this module to unpickle ``run``,
# and resolves the config's interpolations with these resolvers.
register_configs()
register_resolvers()


def main(argv: Sequence[str] | None = None) -> int:
    """``freezeout train ARGV``; returns the exit status (1 when a sweep had failed runs)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    use_shipped_configs()
    use_launch_dir()
    register_configs()  # again, now that the launch folder is importable: its freezeout_rules/ too
    if {"-h", "--help"} & set(argv):
        print(command_help("train"))
        return 0
    argv = resume_overrides(argv)  # --resume: the run directory of the run to go on with
    if argv is None:
        return 2
    # One id per launch, inherited by launcher worker processes: output directories of two
    # launches in the same second cannot collide.
    launch_id = time.strftime("%Y-%m-%d/%H-%M-%S") + f"-{os.getpid()}"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun with several processes
        launch_id, argv = _join_torchrun(launch_id, argv)
    os.environ["FREEZEOUT_LAUNCH_ID"] = launch_id
    sys.argv = [sys.argv[0], *argv]  # Hydra reads its command line there
    with one_line_compose_errors():
        hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")(run)()
    # A sweep in which runs failed or diverged: say so, to scripts too.
    return 1 if getattr(get_class(STATUS_CALLBACK), "problems", None) else 0


def run(cfg: DictConfig) -> float:
    """One job: train ``cfg`` in Hydra's output directory; the final validation error (NaN for a
    run that did not complete)."""
    from ..distributed import (  # after Hydra has parsed the command line: fast --help
        process_group as distributed,
    )
    from ..distributed import ranks as runranks
    from ..rundir.lock import RunLocked
    from ..training.signals import Interrupted
    from ..training.trainer import train

    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    runranks.quiet_other_ranks()  # several processes: rank 0 alone logs to run.log and the console
    if in_sweep:  # jobs that run side by side write into one console: each line names its job
        prefix_log_lines(f"job {hydra_cfg.job.num}")
    announce = _RunDirectory(run_dir)
    log.addFilter(announce)
    try:
        apply_job_placement(cfg, hydra_cfg)  # GPU and CPU threads, when jobs run side by side
        summary = train(cfg)  # joins the job's process group itself (slurm_ddp: several tasks)
    except ConfigError as e:
        if not in_sweep:
            _exit(f"error: {e}", 2)
        _record_failure(run_dir, cfg, e)
        return math.nan
    except RunLocked as e:  # another launch trains it: leave it alone
        if not in_sweep:
            _exit(f"error: {e}", 3)
        log.warning("skipped: %s", e)
        return math.nan
    except Interrupted as e:  # the checkpoint is saved: say how to go on, stop (a sweep too)
        again = "re-launch the same sweep with the same hydra.sweep.dir" if in_sweep else \
            f"run the same command with hydra.run.dir={run_dir}, or with {RESUME_FLAG}"
        _exit(f"{e}: {run_dir} is saved; to resume, {again}", 130 if e.signame == "SIGINT" else 143)
    except Exception as e:
        if cfg.debug:
            raise
        if not in_sweep:  # may be this process's own failure: every process says it, with its rank
            where = f" (rank {distributed.rank()})" if distributed.active() else ""
            _exit(f"error: run failed{where}: {type(e).__name__}: {e} (debug=true shows the traceback)", 1, True)
        _record_failure(run_dir, cfg, e)
        return math.nan
    finally:
        log.removeFilter(announce)
        distributed.shutdown()
    if summary.status == DIVERGED and not in_sweep:
        _exit(f"error: the run diverged: {summary.error} (see {run_dir / SUMMARY_FILE})", 1)
    err = summary.final_val_err
    return math.nan if err is None or summary.status != COMPLETED else err


class _RunDirectory(logging.Filter):
    """Says where the run writes just before its first log line, so that a run refused by its
    checks says nothing but its one-line error."""

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir, self.said = run_dir, False

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.said:
            self.said = True
            log.info("run directory: %s", self.run_dir)
        return True


class _JobPrefix(logging.Filter):
    """Starts every line of the harness's log with the name of the job it belongs to."""

    job = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"[{self.job}] {record.msg}"
        return True


def prefix_log_lines(name: str) -> None:
    """From now on, the harness's log lines (console and run.log) start with ``[name]``. One
    filter per process, found by its class name: a launcher's worker runs many jobs, each with
    its own unpickled copy of this module."""
    prefix = next((f for f in log.filters if type(f).__name__ == "_JobPrefix"), None)
    if prefix is None:
        prefix = _JobPrefix()
        log.addFilter(prefix)
    prefix.job = name


def _record_failure(run_dir: Path, cfg: DictConfig, error: Exception) -> None:
    """A sweep job failed: say so in its summary.json, unless the trainer already did, or that
    file belongs to another run already there (a config clash: that run must stay as it is)."""
    from ..distributed import process_group as distributed

    log.error("run %s failed: %s: %s", run_dir, type(error).__name__, error)
    if not distributed.is_main() or (run_dir / SUMMARY_FILE).exists():
        return
    RunSummary(status=FAILED, error=f"{type(error).__name__}: {error}",
               config=OmegaConf.to_container(cfg, resolve=False)).write(run_dir / SUMMARY_FILE)


def _exit(message: str, code: int, every_rank: bool = False) -> None:
    """One line on the console, as it is (the last line a script reads), and in run.log, then exit
    with ``code``. With several processes, which all meet the same end, rank 0 alone says it
    (unless ``every_rank``)."""
    if not every_rank and os.environ.get("RANK", "0") != "0":
        sys.exit(code)
    print(message, file=sys.stderr, flush=True)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):  # run.log
            handler.handle(record)
    sys.exit(code)


def _join_torchrun(launch_id: str, argv: list[str]) -> tuple[str, list[str]]:
    """Under torchrun: join the process group before Hydra starts, and take rank 0's launch id,
    so that all processes write into one run directory (Hydra's default names it by the time
    and the pid, which differ between processes). Returns the launch id and the arguments."""
    from ..distributed import process_group as distributed

    if {"-m", "--multirun"} & set(argv):
        _exit("error: a sweep (-m) cannot run under torchrun; run each job on several processes with "
              "-m hydra/launcher=slurm_ddp, or launch torchrun once per run", 2)
    distributed.setup()
    if not distributed.is_main():
        argv = [*argv, "hydra.output_subdir=null"]  # .hydra/ is written once, by rank 0
    return distributed.broadcast(launch_id), argv
