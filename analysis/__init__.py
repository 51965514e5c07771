"""Analysis of FreezeOut sweeps: collect runs, pair them with their baselines, aggregate over
seeds, write ``runs.csv``, ``summary.csv``, ``summary.md`` and plots. ``freezeout analyze DIR`` (``python -m freezeout.analysis DIR``).

Reads only the run files (``summary.json``, ``metrics.jsonl``, ``.hydra/``): no torch needed.
"""
from .collect import NoRunsError, collect_runs, find_run_dirs
from .pairing import measured_speedup, pair_key, pair_runs, relative_error
from .pipeline import analyze

__all__ = ["NoRunsError", "analyze", "collect_runs", "find_run_dirs", "measured_speedup",
           "pair_key", "pair_runs", "relative_error"]
