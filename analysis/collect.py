"""Find the run directories under a sweep (or runs) folder and load each into one flat record.

A run directory is any directory holding ``summary.json`` or ``.hydra/config.yaml``. A run killed
before it wrote ``summary.json`` is kept with status ``incomplete``: no run is ever dropped.

Files are read with ``freezeout.metrics``, which needs no torch: the analysis never loads it.
"""
from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from freezeout.metrics import METRICS_FILE, SUMMARY_FILE, read_metrics

COMPLETED = "completed"
INCOMPLETE = "incomplete"
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


def load_config(run_dir: Path, summary: dict | None) -> dict | None:
    """The resolved config: ``summary["config"]``, else ``.hydra/config.yaml``, else None."""
    if isinstance(get(summary, "config"), dict):
        return summary["config"]
    path = run_dir / HYDRA_CONFIG
    if not path.is_file():
        return None
    cfg = OmegaConf.load(path)
    try:  # Hydra saves the config unresolved; ${hydra:...} cannot resolve outside of a Hydra app
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:
        return OmegaConf.to_container(cfg, resolve=False)


def _read_summary(run_dir: Path) -> tuple[dict | None, str | None]:
    """(summary, problem): a missing or unreadable ``summary.json`` gives ``None`` and why."""
    path = run_dir / SUMMARY_FILE
    if not path.exists():
        return None, f"no {SUMMARY_FILE} (killed or still running)"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return None, f"{SUMMARY_FILE} unreadable: {e}"
    if not isinstance(summary, dict):
        return None, f"{SUMMARY_FILE} is not a JSON object"
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


def load_run(run_dir: Path, root: Path) -> dict:
    """One flat record for ``run_dir``: status, settings, results, and its config (``_config``)."""
    summary, problem = _read_summary(run_dir)
    s = summary or {}
    config = None
    try:
        config = load_config(run_dir, summary)
    except Exception as e:  # a corrupt .hydra/config.yaml must not hide the run
        problem = "; ".join(filter(None, [problem, f"config unreadable: {e}"]))
    curve, curve_problem = read_curve(run_dir)

    def setting(key: str) -> Any:
        return s[key] if s.get(key) is not None else get(config, key)

    status = str(s.get("status") or INCOMPLETE) if summary else INCOMPLETE
    error, notes = s.get("error"), [curve_problem]
    if problem and error is None and status != COMPLETED:
        error = problem
    else:
        notes.append(problem)
    if status == "running" and error is None:
        error = "summary.json says running: the run was killed, or is still going"
    rel = run_dir.relative_to(root).as_posix()
    predicted = s.get("predicted_speedup") if isinstance(s.get("predicted_speedup"), dict) else {}
    return {
        "dir": rel,
        "status": status,
        "strategy": _name(s.get("strategy"), config, "strategy"),
        "t_0": to_float(setting("t_0")),
        "scale_lr": setting("scale_lr"),
        "const_time": setting("const_time"),
        "seed": setting("seed"),
        "model": _name(s.get("model"), config, "model"),
        "data": _name(s.get("data"), config, "data"),
        "lr": to_float(setting("lr")),
        "epochs": setting("epochs"),
        "epochs_done": len(curve),
        "train_seconds": to_float(s.get("train_seconds")),
        "final_val_err": to_float(s.get("final_val_err")),
        "best_val_err": to_float(s.get("best_val_err")),
        "test_err": to_float(s.get("test_err")),
        **{f"predicted_speedup_{k}": to_float(predicted.get(k))
           for k in ("flops", "paper", "time")},
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
