"""One job of ``hydra/launcher=turns``, in the process of its own that ``freezeout.bench.turns``
starts for it: its logging (console lines named ``[job N]``, its own ``run.log``), its training,
handing over every ``turn_every`` iterations, and the value Hydra gets back for it.
"""
# Nothing heavy at module level: Hydra imports every plugin module at every start.

import logging
import logging.config
import math
from pathlib import Path
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("freezeout")


def file_free(logging_cfg: DictConfig) -> Dict[str, Any]:
    """The jobs' logging config, resolved, without its file handlers (each job adds its own
    ``run.log``): resolved here, where Hydra's config is set, for a process where it is not."""
    cfg = OmegaConf.to_container(logging_cfg, resolve=True)
    handlers = cfg.get("handlers") or {}
    files = [name for name, h in handlers.items() if "filename" in h]
    for name in files:
        del handlers[name]
    for section in [cfg.get("root") or {}, *(cfg.get("loggers") or {}).values()]:
        if "handlers" in section:
            section["handlers"] = [h for h in section["handlers"] if h not in files]
    return cfg


class _Named(logging.Filter):
    """Names every line of the run's logger with its job (``[job N]``)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.job = name

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(f"[{self.job}]"):
            record.msg = f"[{self.job}] {record.msg}"
        return True


def train_job(setup: Dict[str, Any], i: int, cfg: DictConfig, run_dir: Path, pause) -> Any:
    """Job ``i`` of a round (``freezeout.bench.turns.take_turns``' ``run``): ``setup`` holds the
    jobs' ``logging`` (:func:`file_free`), their ``numbers`` and ``turn_every``."""
    logging.config.dictConfig(setup["logging"])
    log.addFilter(_Named(f"job {setup['numbers'][i]}"))
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    logging.getLogger().addHandler(handler)
    try:
        return run_job_in_turn(cfg, run_dir, pause, setup["turn_every"])
    finally:
        logging.getLogger().removeHandler(handler), handler.close()


def run_job_in_turn(cfg: DictConfig, run_dir: Path, pause, turn_every: Optional[int] = None) -> Any:
    """``train`` one job of a round, handing over at ``pause`` every ``turn_every`` iterations
    (None: at its log points); records the load of the whole run when the trainer did not record
    its own."""
    from freezeout.rundir.load import measure_load
    from freezeout.rundir.records import FINAL_STATUSES, SUMMARY_FILE, RunSummary
    from freezeout.training.trainer import train

    log.info("run directory: %s", run_dir)
    try:
        before = RunSummary.read(run_dir / SUMMARY_FILE)
    except ValueError:
        before = None
    with measure_load(str(cfg.device)) as load:
        summary = train(cfg, run_dir, pause=pause, pause_every=turn_every)
    if summary.load is None and not (before is not None and before.status in FINAL_STATUSES):
        summary.load = load.record()
        summary.write(run_dir / SUMMARY_FILE)
    return summary


def record_result(cfg: DictConfig, run_dir: Path, result: Any) -> float:
    """The job's return value (its final validation error, NaN unless completed), as run.py's;
    a failure is logged and, where the trainer wrote no summary, recorded as run.py records it."""
    from freezeout.rundir.lock import RunLocked
    from freezeout.rundir.records import COMPLETED, FAILED, SUMMARY_FILE, RunSummary
    from freezeout.training.signals import Interrupted

    if not isinstance(result, BaseException):
        err = result.final_val_err
        return math.nan if err is None or result.status != COMPLETED else err
    if isinstance(result, RunLocked):
        log.warning("skipped: %s", result)
    elif not isinstance(result, Interrupted):
        log.error("run %s failed: %s: %s", run_dir, type(result).__name__, result)
        if not (run_dir / SUMMARY_FILE).exists():
            RunSummary(status=FAILED, error=f"{type(result).__name__}: {result}",
                       config=OmegaConf.to_container(cfg, resolve=False)).write(run_dir / SUMMARY_FILE)
    return math.nan
