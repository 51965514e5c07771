"""Per-run records: ``metrics.jsonl`` (one line per epoch, flushed at once) and ``summary.json``
(written atomically). Readers tolerate a torn last line, which a killed run can leave behind.

:class:`RunSummary` is the one definition of ``summary.json``: the trainer and ``run.py`` write
it, the analysis, the sweep plan and the benchmark read it, all by attribute. Pure Python: the
analysis imports this module without torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .atomic import atomic_write

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

# Run statuses. A final one is never trained again; the others resume or re-run.
RUNNING, COMPLETED, FAILED, DIVERGED, INTERRUPTED = "running", "completed", "failed", "diverged", "interrupted"
FINAL_STATUSES = (COMPLETED, DIVERGED)


@dataclass
class RunSummary:
    """What ``summary.json`` holds (described in docs/outputs.md). Every field has a default, so a
    summary written by a failing sweep job, or by an older version, still reads."""

    status: str = RUNNING
    error: Optional[str] = None  # "Type: message" for failed/diverged/interrupted runs
    # What was trained: the FreezeOut settings, model, data, optimizer and the run's scale.
    strategy: Optional[str] = None
    # The rule's facts as its declaration gives them (freezeout/freezing/rules/registry.py, Rule.facts):
    # baseline, freezeout, adaptive, reads, options, order; what the analysis reads of a run's rule.
    # None: written before they were recorded (the analysis then goes by the strategy's name).
    rule: Optional[dict] = None
    t_0: Optional[float] = None
    scale_lr: Optional[bool] = None
    const_time: Optional[bool] = None
    seed: Optional[int] = None
    model: Optional[dict] = None
    data: Optional[dict] = None
    optimizer: Optional[dict] = None
    epochs: Optional[int] = None
    batch_size: Optional[int] = None  # global batch (all processes together)
    lr: Optional[float] = None
    precision: Optional[str] = None
    world_size: int = 1  # processes that trained the run together
    device: Optional[str] = None  # e.g. "cuda:0 (NVIDIA H100)" or "cpu (x86_64, 2 threads)"
    # The schedule: planned and realised.
    iterations: Optional[int] = None  # planned T (T' with const_time)
    iterations_done: int = 0
    iterations_per_epoch: Optional[int] = None
    train_images: Optional[int] = None
    val_images: Optional[int] = None
    num_groups: Optional[int] = None
    layer_times: Optional[list] = None  # t_i, fraction of training at which group i freezes
    freeze_iterations: Optional[list] = None  # iteration each group froze at (None: never)
    frozen_groups: int = 0  # frozen when the run stopped
    # Predictions beside the measurement: fraction of training time saved, by model.
    predicted_speedup: dict = field(default_factory=lambda: {"flops": None, "paper": None, "time": None})
    const_time_prediction: Optional[str] = None  # which prediction set T' with const_time
    # The time model's measurement (predict_time), before training: seconds a step, by frozen groups ("0": none).
    step_seconds: Optional[dict] = None
    # What training's steps took, by frozen groups: seconds a step at each freezing stage (the loop's
    # seconds split at its freezing events, the stage's start cost included), to set beside step_seconds.
    train_step_seconds: Optional[dict] = None
    # Runs on several processes: bytes of gradients all-reduced per step, by frozen groups ("0": none).
    allreduce_bytes_per_step: Optional[dict] = None
    # The input (freezeout/data/): loader (memory | stream), what the time model measured of it before
    # training (loader images/s, input-bound stage, the most FreezeOut can save) and what training met
    # (seconds steps waited for data, by frozen groups; unreadable images skipped). None: not recorded.
    input: Optional[dict] = None
    # compile=true: graphs compiled by layer group and form (training, frozen), forms run eager, recompile
    # limits hit, compile seconds (all, and the time model's by stage) and the time model's speedup with
    # them counted (freezeout/training/compiling.py). None: not compiled.
    compile: Optional[dict] = None
    # cache_frozen=true|auto: the mode, the stages (frozen groups) that read the store, the stage it
    # reached and the bytes it held (freezeout/training/cache.py). None: no cache.
    cache: Optional[dict] = None
    # The load it trained under: CPU time against wall time, the machine's other work, jobs beside
    # it, runs taking turns with it (freezeout/rundir/load.py); None when not recorded.
    load: Optional[dict] = None
    # The time model itself (predict_time): the load it measured under (as ``load``) with ``busy``, the
    # warning when other work was heavy (else None), and ``skipped``, why no time model was measured
    # (predict_time=false, too short a run for predict_time_share; else None). None: not recorded.
    time_model: Optional[dict] = None
    num_classes: Optional[int] = None  # classes of the data: chance error is 1 - 1/num_classes
    # The run-end check (freezeout/rundir/sanity.py): "ok", or why the run looks as if it never learned
    # (validation error at chance, training loss never fell). None: not checked (not completed).
    sanity: Optional[str] = None
    # Results.
    train_seconds: float = 0.0  # training steps only (forward, backward, optimizer)
    eval_seconds: float = 0.0
    final_val_err: Optional[float] = None  # fraction
    final_val_loss: Optional[float] = None
    best_val_err: Optional[float] = None
    test_err: Optional[float] = None
    num_params: Optional[int] = None
    # Provenance.
    versions: Optional[dict] = None
    git_revision: Optional[str] = None
    config: Optional[dict] = None  # the resolved config
    started_at: Optional[str] = None
    finished_at: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSummary":
        """A summary from parsed JSON; unknown keys are ignored, missing ones take defaults."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def write(self, path: str | Path) -> None:
        """Write atomically (temp file + rename)."""
        write_json_atomic(path, self.to_dict())

    @classmethod
    def read(cls, path: str | Path) -> "RunSummary | None":
        """The summary at ``path``, or None when there is none. Raises ValueError when the file
        is not a JSON object."""
        d = read_json(path)
        if d is None:
            return None
        if not isinstance(d, dict):
            raise ValueError(f"{path} is not a JSON object")
        return cls.from_dict(d)


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file + rename, so a crash leaves old or new."""
    with atomic_write(path) as f:
        json.dump(_clean(obj), f, indent=2, sort_keys=True)
        f.write("\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file (``None`` if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


def append_metrics(path: str | Path, record: dict) -> None:
    """Append one record to ``metrics.jsonl`` and flush it to disk at once."""
    with open(path, "a") as f:
        f.write(json.dumps(_clean(record), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl``; a torn (unparseable) last line is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                warnings.warn(f"{path}: skipped a torn last line (the run was interrupted mid-write)")
            else:
                raise ValueError(f"{path}: line {n + 1} is not valid JSON") from None
    return records


def rewrite_metrics(path: str | Path, records: list[dict]) -> None:
    """Replace ``metrics.jsonl`` atomically with ``records`` (used on resume: each epoch once)."""
    with atomic_write(path) as f:
        for r in records:
            f.write(json.dumps(_clean(r), sort_keys=True) + "\n")
