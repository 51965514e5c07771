"""The last word of a sweep: which of its runs did not complete, and an exit code that says so.

A Hydra callback (``on_multirun_end``, in the launching process): it reads every run directory
of the sweep directory, lists runs that failed, diverged, were interrupted or never finished,
and those another process is training right now, and records the count of problems (not the
runs training elsewhere) for ``run.py``, which then exits non-zero. Torch-free. It lives here,
not among the Hydra plugins, because Hydra re-imports plugin modules when it scans them: a flag
on a plugin's class would not be the one run.py sees.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from freezeout.rundir.lock import lock_holder
from freezeout.rundir.records import COMPLETED, SUMMARY_FILE, RunSummary


def sweep_status(sweep_dir: Path) -> tuple[list[str], list[str]]:
    """(problems, elsewhere): one line for each run of ``sweep_dir`` that did not complete, and
    for each run that another process is training now."""
    problems, elsewhere = [], []
    for run_dir in sorted(p for p in sweep_dir.glob("run_*") if p.is_dir()):
        holder = lock_holder(run_dir)
        if holder is not None:
            elsewhere.append(f"{run_dir.name} (training in {holder})")
            continue
        try:
            summary = RunSummary.read(run_dir / SUMMARY_FILE)
        except ValueError as e:
            problems.append(f"{run_dir.name} (unreadable summary: {e})")
            continue
        if summary is None:
            problems.append(f"{run_dir.name} (no summary: killed before it started)")
        elif summary.status != COMPLETED:
            problems.append(f"{run_dir.name} ({summary.status}: {summary.error or 'no error message'})")
    return problems, elsewhere


class SweepStatusCallback(Callback):
    """Prints, last, whether every run of the sweep completed; ``problems`` is read by run.py."""

    problems = 0

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        problems, elsewhere = sweep_status(Path(str(config.hydra.sweep.dir)))
        if elsewhere:
            print(f"{len(elsewhere)} run(s) are being trained by another process: {'; '.join(elsewhere)}")
        if problems:
            print(f"error: {len(problems)} run(s) of the sweep did not complete: {'; '.join(problems)}", flush=True)
        type(self).problems = len(problems)
