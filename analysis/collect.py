"""Find the run directories under a sweep (or runs) folder and load each into one flat record.

A run directory is any directory holding ``summary.json`` or ``.hydra/config.yaml``. A run killed
before it wrote ``summary.json`` is kept with status ``incomplete``: no run is ever dropped.

Files are read with ``freezeout.rundir.records`` (``RunSummary``, the one definition of ``summary.json``),
which needs no torch: the analysis never loads it.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from freezeout.rundir.records import COMPLETED, METRICS_FILE, RUNNING, SUMMARY_FILE, RunSummary, read_metrics
from freezeout.rundir.sanity import recorded_problem, sanity_problem

from .methods import cache_frozen, rule_facts, strategy_params

INCOMPLETE = "incomplete"  # no summary.json: killed before it wrote one
DEFAULT_PRECISION = "fp32"  # the trainer's default, for runs that recorded none
PREDICTION_KINDS = tuple(RunSummary().predicted_speedup)  # flops, paper, time: as the summary has them
HYDRA_CONFIG = Path(".hydra") / "config.yaml"
_SKIP_DIRS = {"__pycache__", "checkpoints", "node_modules"}


class NoRunsError(LookupError):
    """The folder holds no run directory."""


def natural_key(path: str | Path) -> list:
    """Sort key that puts Hydra's job folders in numeric order: ``2`` before ``10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", Path(path).as_posix())]


def find_run_dirs(root: str | Path, exclude: str | Path | None = None) -> list[Path]:
    """Run directories under ``root`` (``root`` included), sorted by path (numbers numerically).

    Hidden folders other than ``.hydra`` are not searched, nor is ``exclude`` (the output folder).
    """
    root = Path(root)
    excluded = Path(exclude).resolve() if exclude is not None else None
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if SUMMARY_FILE in filenames or (here / HYDRA_CONFIG).is_file():
            found.append(here)
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS
            and (excluded is None or (here / d).resolve() != excluded)
        )
    return sorted(found, key=natural_key)


def get(d: Any, dotted: str, default: Any = None) -> Any:
    """``d["a"]["b"]`` for ``dotted="a.b"``; ``default`` where any level is missing."""
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def to_float(x: Any) -> float:
    """A finite or infinite float from a JSON value; NaN for null, bool, text or anything else."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return math.nan
    return float(x)


def _name(summary_value: Any, config: dict | None, key: str) -> str | None:
    """Name of the model / data / strategy, from the summary (a name or a dict) or the config."""
    for v in (summary_value, get(config, key)):
        if isinstance(v, dict):
            v = v.get("name")
        if v is not None:
            return str(v)
    return None


def load_config(run_dir: Path, summary: RunSummary | None) -> dict | None:
    """The resolved config: the summary's, else ``.hydra/config.yaml``, else None."""
    if summary is not None and isinstance(summary.config, dict):
        return summary.config
    path = run_dir / HYDRA_CONFIG
    if not path.is_file():
        return None
    cfg = OmegaConf.load(path)
    try:  # Hydra saves the config unresolved; ${hydra:...} cannot resolve outside of a Hydra app
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)


def _read_summary(run_dir: Path) -> tuple[RunSummary | None, str | None]:
    """(summary, problem): a missing or unreadable ``summary.json`` gives ``None`` and why."""
    path = run_dir / SUMMARY_FILE
    try:
        summary = RunSummary.read(path)
    except (OSError, ValueError) as e:
        return None, f"{SUMMARY_FILE} unreadable: {e}"
    if summary is None:
        return None, f"no {SUMMARY_FILE} (killed or still running)"
    return summary, None


def read_curve(run_dir: Path) -> tuple[list[dict], str | None]:
    """(records of ``metrics.jsonl``, problem): a torn last line (a killed run can leave one) is
    skipped and noted; an unreadable file gives no records and says why."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            records = read_metrics(run_dir / METRICS_FILE)
        except (OSError, ValueError) as e:
            return [], f"{METRICS_FILE} unreadable: {e}"
    return [r for r in records if isinstance(r, dict)], "; ".join(str(w.message) for w in caught) or None


def _either(value: Any, config: dict | None, key: str, default: Any = None) -> Any:
    """The summary's value, else the config's ``key``, else ``default``."""
    if value is not None:
        return value
    from_config = get(config, key)
    return default if from_config is None else from_config


def _seconds(x: Any) -> float:
    """Training seconds; 0 (the summary's default before training) means "not recorded"."""
    x = to_float(x)
    return x if x > 0 else math.nan


def _freeze_iterations(x: Any) -> list | None:
    """The iteration each group froze at (None: never), or None when not recorded."""
    if not isinstance(x, list):
        return None
    return [int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in x]


def run_sanity(s: RunSummary, status: str, curve: list[dict]) -> str | None:
    """Why a completed run looks as if it never learned (``freezeout.rundir.sanity``): the reason
    its summary recorded, else the same check made here from its curve (a run that recorded no
    check, but its number of classes); None when it passed or cannot be judged."""
    if status != COMPLETED:
        return None
    if s.sanity is not None:
        return recorded_problem(s.sanity)
    return sanity_problem(s.final_val_err, curve, s.num_classes)


def load_run(run_dir: Path, root: Path) -> dict:
    """One flat record for ``run_dir``: status, settings, results, and its config (``_config``)."""
    summary, problem = _read_summary(run_dir)
    s = summary or RunSummary()  # every field at its default: nothing recorded
    config = None
    try:
        config = load_config(run_dir, summary)
    except Exception as e:  # a corrupt .hydra/config.yaml must not hide the run
        problem = "; ".join(filter(None, [problem, f"config unreadable: {e}"]))
    curve, curve_problem = read_curve(run_dir)

    status = str(s.status or INCOMPLETE) if summary else INCOMPLETE
    error, notes = s.error, [curve_problem]
    if problem and error is None and status != COMPLETED:
        error = problem
    else:
        notes.append(problem)
    if status == RUNNING and error is None:
        error = "summary.json says running: the run was killed, or is still going"
    rel = run_dir.relative_to(root).as_posix()
    strategy = _name(s.strategy, config, "strategy")
    # A peer rule (layer_freezing, autofreeze) ignores t_0 and scale_lr, though its config holds
    # their defaults: leave them blank rather than suggest they shaped the run.
    rule = rule_facts(strategy, s.rule)  # what the run recorded of its rule (older runs: by name)
    schedule_keys = rule["freezeout"]
    predicted = s.predicted_speedup if isinstance(s.predicted_speedup, dict) else {}
    return {
        "dir": rel,
        "status": status,
        "strategy": strategy,
        "rule": rule,
        "t_0": to_float(_either(s.t_0, config, "t_0")) if schedule_keys else math.nan,
        "scale_lr": _either(s.scale_lr, config, "scale_lr") if schedule_keys else None,
        "const_time": _either(s.const_time, config, "const_time"),
        "strategy_params": strategy_params(config),
        "cache_frozen": cache_frozen(config),
        "seed": _either(s.seed, config, "seed"),
        "model": _name(s.model, config, "model"),
        "data": _name(s.data, config, "data"),
        "lr": to_float(_either(s.lr, config, "lr")),
        "epochs": _either(s.epochs, config, "epochs"),
        "epochs_done": len(curve),
        "iterations": s.iterations,
        "num_groups": s.num_groups,
        "freeze_iterations": _freeze_iterations(s.freeze_iterations),
        "device": s.device,
        "precision": str(_either(s.precision, config, "precision", DEFAULT_PRECISION)),
        "world_size": int(s.world_size) if isinstance(s.world_size, int) else 1,
        "train_seconds": _seconds(s.train_seconds),
        "final_val_err": to_float(s.final_val_err),
        "best_val_err": to_float(s.best_val_err),
        "test_err": to_float(s.test_err),
        **{f"predicted_speedup_{k}": to_float(predicted.get(k)) for k in PREDICTION_KINDS},
        "const_time_prediction": s.const_time_prediction,
        "step_seconds": s.step_seconds if isinstance(s.step_seconds, dict) else None,
        "train_step_seconds": s.train_step_seconds if isinstance(s.train_step_seconds, dict) else None,
        "load": s.load if isinstance(s.load, dict) else None,
        "time_model": s.time_model if isinstance(s.time_model, dict) else None,
        "time_model_skipped": get(s.time_model, "skipped"),
        "num_classes": s.num_classes,
        "sanity": run_sanity(s, status, curve),
        "error": None if error is None else str(error),
        "note": "; ".join(filter(None, notes)),
        "_config": config,
        "_curve": curve,
        "_path": run_dir,
    }


def collect_runs(root: str | Path, exclude: str | Path | None = None) -> list[dict]:
    """Records of every run directory under ``root``, sorted by path (see ``natural_key``).

    Raises ``FileNotFoundError`` when ``root`` is not a directory, ``NoRunsError`` when it holds
    no run.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such directory: {root}")
    dirs = find_run_dirs(root, exclude)
    if not dirs:
        raise NoRunsError(f"no run directories (with {SUMMARY_FILE} or {HYDRA_CONFIG}) "
                          f"under {root}")
    return [load_run(d, root) for d in dirs]
