"""Experiment trackers beside a run's own records: TensorBoard, MLflow and plain CSV, any number
at once (``logger=[tensorboard,mlflow,csv]``; settings in conf/logger/).

What they get: every ``log_every`` iterations (the engine's host sync) the training loss, the
learning rate of the first active group, the frozen groups and images per second (steps times
the batch over the wall time since the last call); every epoch the ``metrics.jsonl`` record; at
the start the flattened resolved config and the predicted speedups known then; at the end the
summary's predictions and results. Steps are iterations. Loggers only observe: their time is
not training time (the engine leaves its callback out), and a logger that fails mid-run is
dropped with a warning rather than failing the run. Only the main process (rank 0) logs.

A resumed run continues its logs: TensorBoard writes on in the same directory and hides what the
killed attempt logged after the checkpoint (``purge_step``); CSV drops those rows; MLflow reopens
the run whose id the run directory keeps (``mlflow_run.json``), which still holds the killed
attempt's metrics after the checkpoint (MLflow cannot delete them).
"""
from __future__ import annotations

import csv
import importlib.util
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..rundir.identity import TRACKER_SETTINGS, flatten
from ..rundir.records import read_json, write_json_atomic

log = logging.getLogger("freezeout")

#: Each logger's settings with their defaults (conf/logger/NAME.yaml sets the same, with comments).
LOGGERS = TRACKER_SETTINGS
MLFLOW_RUN_FILE = "mlflow_run.json"  # in the run directory: the tracking URI and run id to resume
#: The summary fields logged at the end, as ``summary/<field>``.
RESULTS = ("final_val_err", "final_val_loss", "best_val_err", "test_err", "train_seconds", "eval_seconds",
           "iterations_done", "frozen_groups")


def is_main_process() -> bool:
    """True unless this is a process of a distributed run other than rank 0."""
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


#: Logger -> the package it needs, installed by the extra of the same name (pyproject.toml).
NEEDS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def check_loggers(logger_cfg) -> None:
    """Unknown loggers or settings (``+logger.wandb.x=1``), or a logger whose package is not
    installed (``pip install 'freezeout[mlflow]'``), are a ConfigError."""
    for name, settings in (logger_cfg or {}).items():
        if name not in LOGGERS:
            raise ConfigError(f"logger={name} is unknown; allowed: {', '.join(LOGGERS)}")
        unknown = sorted(set(settings or {}) - set(LOGGERS[name]))
        if unknown:
            raise ConfigError(f"logger.{name} has no setting {', '.join(unknown)}; allowed: {', '.join(LOGGERS[name])}")
        if name in NEEDS and not _installed(NEEDS[name]):
            raise ConfigError(f"logger={name} needs {NEEDS[name]}: pip install 'freezeout[{name}]'")


def _installed(package: str) -> bool:
    """Whether ``package`` can be imported (found, not imported: mlflow takes seconds to import)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a module without a spec
        return False


def open_loggers(cfg, run_dir: Path, start: int, summary) -> "Loggers":
    """The enabled loggers of a run that starts (or resumes) at iteration ``start``; they log
    the config (``summary.config``, flattened) and, on a fresh start, the predicted speedups."""
    check_loggers(cfg.logger)
    if not cfg.logger or not is_main_process():
        return Loggers([], summary.batch_size, start)
    backends = []
    for name, settings in cfg.logger.items():
        settings = {**LOGGERS[name], **(settings or {})}
        try:
            backends.append(_OPEN[name](settings, Path(run_dir), start))
        except Exception as e:  # before training: tracking was asked for, so it must work
            for b in backends:
                b.close("FAILED")
            first_line = (str(e).strip().splitlines() or [""])[0]
            raise ConfigError(f"logger={name} could not start: {type(e).__name__}: {first_line}") from None
    loggers = Loggers(backends, summary.batch_size, start)
    loggers._each("params", flatten(summary.config or {}))
    if start == 0:
        loggers._each("scalars", 0, _numbers({f"predicted_speedup/{k}": v
                                               for k, v in summary.predicted_speedup.items()}))
    return loggers


class Loggers:
    """The loggers of one run, as the trainer calls them; with none enabled every call is free."""

    def __init__(self, backends: list, batch_size: int, start: int):
        self.backends, self.batch_size, self.status = backends, batch_size, "FAILED"
        self._mark = (start, time.perf_counter())  # (iteration, time) the images/s interval starts at

    def log_step(self, iteration: int, loss: float, lr: float, frozen_groups: int) -> None:
        if not self.backends:
            return
        j, t = self._mark
        values = {"train/loss": loss, "train/lr": lr, "train/frozen_groups": frozen_groups}
        if iteration > j:
            values["train/images_per_second"] = (iteration - j) * self.batch_size / (time.perf_counter() - t)
        self._each("scalars", iteration, _numbers(values))
        self._mark = (iteration, time.perf_counter())

    def log_epoch(self, record: dict) -> None:
        """The epoch's ``metrics.jsonl`` record, at its iteration; called once the epoch's
        evaluation and checkpoint are done, so that they do not count against images/s."""
        if not self.backends:
            return
        self._each("scalars", record["iteration"], _numbers({f"epoch/{k}": v for k, v in record.items()
                                                              if k != "iteration"}))
        self._each("flush")
        self._mark = (record["iteration"], time.perf_counter())

    def log_summary(self, summary) -> None:
        """Predictions and results of the summary as it stands, at ``iterations_done``."""
        values = {f"predicted_speedup/{k}": v for k, v in summary.predicted_speedup.items()}
        values.update({f"summary/{k}": getattr(summary, k) for k in RESULTS})
        self._each("scalars", summary.iterations_done, _numbers(values))
        self.status = {"completed": "FINISHED", "interrupted": "KILLED"}.get(summary.status, "FAILED")

    def close(self) -> None:
        self._each("close", self.status)
        self.backends = []

    def _each(self, method: str, *args) -> None:
        for backend in list(self.backends):
            try:
                getattr(backend, method)(*args)
            except Exception as e:  # tracking must not end a run that trains fine
                log.warning("%s logger failed (%s: %s): dropped for the rest of the run",
                            type(backend).__name__.strip("_"), type(e).__name__, e)
                self.backends.remove(backend)


def _numbers(values: dict) -> dict[str, float]:
    """The finite numbers among ``values`` (None, text and NaN are left out)."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _text(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


class _TensorBoard:
    def __init__(self, settings: dict, run_dir: Path, start: int):
        from torch.utils.tensorboard import SummaryWriter

        log_dir = run_dir / settings["log_dir"]
        # An earlier attempt's events after the point this one starts from are hidden: a resumed
        # run keeps what it logged up to its checkpoint, a run trained again from 0 nothing.
        purge = (start + 1 if start else 0) if log_dir.exists() else None
        self.writer, self.start = SummaryWriter(str(log_dir), purge_step=purge), start

    def params(self, flat: dict) -> None:
        if self.start:  # logged when the run started
            return
        from torch.utils.tensorboard.summary import hparams

        rows = "\n".join(f"| {k} | {v} |" for k, v in flat.items())
        self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows, 0)
        metrics = {tag: 0.0 for tag in ("epoch/val_err", "epoch/val_loss", "summary/final_val_err",
                                        "summary/best_val_err", "summary/train_seconds")}
        for event in hparams({k: _text(v) for k, v in flat.items()}, metrics):  # the HParams tab
            self.writer.file_writer.add_summary(event)

    def scalars(self, step: int, values: dict) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def flush(self) -> None:
        self.writer.flush()

    def close(self, status: str) -> None:
        self.writer.close()


class _MLflow:
    def __init__(self, settings: dict, run_dir: Path, start: int):
        from mlflow.tracking import MlflowClient

        uri = settings["tracking_uri"] or (_sweep_dir(run_dir) / "mlruns").resolve().as_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps its file store in maintenance and refuses it unless asked: it is
            # the store that many sweep jobs, on one machine or on a cluster's shared
            # filesystem, can write at once (one folder per run; no database to lock).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        stored = read_json(run_dir / MLFLOW_RUN_FILE) or {}
        self.new = not (stored.get("tracking_uri") == uri and self._exists(stored.get("run_id")))
        if self.new:
            run = self.client.create_run(self._experiment(settings["experiment_name"]),
                                         run_name=settings["run_name"] or run_dir.resolve().name,
                                         tags={"freezeout.run_dir": str(run_dir.resolve())})
            self.run_id = run.info.run_id
            write_json_atomic(run_dir / MLFLOW_RUN_FILE, {"tracking_uri": uri, "run_id": self.run_id})
        else:
            self.run_id = stored["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")

    def _exists(self, run_id: str | None) -> bool:
        try:
            return run_id is not None and self.client.get_run(run_id) is not None
        except Exception:  # deleted, or another store
            return False

    def _experiment(self, name: str) -> str:
        for _ in range(3):  # jobs of a sweep may create it at the same moment
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name)
            except Exception:
                time.sleep(0.5)
        raise RuntimeError(f"could not create the MLflow experiment {name!r}")

    def params(self, flat: dict) -> None:
        if not self.new:  # logged when the run was created (MLflow params cannot change)
            return
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in flat.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def scalars(self, step: int, values: dict) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def flush(self) -> None:
        pass

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)


class _CSV:
    FIELDS = ("wall_time", "step", "name", "value")

    def __init__(self, settings: dict, run_dir: Path, start: int):
        self.dir = run_dir / settings["log_dir"]
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "metrics.csv"
        kept = []
        if path.exists() and start:  # a resumed run keeps the rows up to its checkpoint
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= start]
        self.file = open(path, "w", newline="")
        self.writer = csv.DictWriter(self.file, self.FIELDS)
        self.writer.writeheader()
        self.writer.writerows(kept)
        self.file.flush()

    def params(self, flat: dict) -> None:
        with open(self.dir / "params.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(("name", "value"))
            writer.writerows(flat.items())

    def scalars(self, step: int, values: dict) -> None:
        now = time.time()
        self.writer.writerows({"wall_time": now, "step": step, "name": k, "value": v} for k, v in values.items())
        self.file.flush()

    def flush(self) -> None:
        os.fsync(self.file.fileno())

    def close(self, status: str) -> None:
        self.file.close()


_OPEN = {"tensorboard": _TensorBoard, "mlflow": _MLflow, "csv": _CSV}


def _sweep_dir(run_dir: Path) -> Path:
    """Where a job's MLflow file store goes by default: its sweep's directory in a Hydra
    multirun (one store for the whole sweep), else the run directory itself."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return run_dir
