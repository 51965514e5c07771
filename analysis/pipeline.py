"""``analyze(path)``: collect, pair, aggregate, write tables and plots, build the report."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from .aggregate import add_settings, aggregate
from .collect import collect_runs
from .frontier import front_markdown, read_fronts
from .loadgap import add_load_gaps
from .pairing import pair_runs
from .realisation import add_realisation
from .plots import plot_all
from .report import markdown_notes, markdown_table, not_completed, not_completed_line, text_report, unpaired

RUN_COLUMNS = [
    "dir", "status", "strategy", "method", "t_0", "scale_lr", "const_time", "cache_frozen",
    "strategy_params", "seed", "model", "data", "setting", "device", "precision", "world_size",
    "lr", "epochs", "epochs_done", "iterations", "num_groups", "freeze_iterations",
    "train_seconds", "final_val_err", "best_val_err", "test_err", "predicted_speedup_flops",
    "predicted_speedup_paper", "predicted_speedup_time", "const_time_prediction",
    "measured_speedup", "relative_error", "realisation", "step_seconds", "train_step_seconds", "stage_ratios",
    "baseline_dir", "baseline_val_err",
    "duplicate_baselines", "repeat_of", "unpaired", "load_gap", "load_unequal", "load_note", "load",
    "num_classes", "sanity", "baseline_sanity", "realisation_note", "time_model_skipped", "time_model",
    "error", "note",
]


def _cell(v: Any) -> Any:
    """Lists and dicts as JSON text, so the CSV reads back the same way anywhere."""
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def runs_frame(runs: list[dict]) -> pd.DataFrame:
    """One row per run with the public columns (internal ``_`` fields dropped)."""
    return pd.DataFrame([{c: _cell(r.get(c)) for c in RUN_COLUMNS} for r in runs],
                        columns=RUN_COLUMNS)


def summary_frame(summary: list[dict]) -> pd.DataFrame:
    """One row per group, the public columns only."""
    return pd.DataFrame([{k: _cell(v) for k, v in row.items() if not k.startswith("_")}
                         for row in summary])


def analyze(path: str | Path, out: str | Path | None = None) -> dict[str, Any]:
    """Analyse every run under ``path`` and write the results to ``out`` (``<path>/analysis``).

    Returns ``runs`` and ``summary`` (DataFrames), ``not_completed`` and ``unpaired`` (DataFrames,
    subsets of ``runs``), ``markdown``, ``report`` and ``status_line`` ("N of M runs did not
    complete: ...") as text, ``files`` (paths written),
    ``skipped`` (plot messages) and ``out``. Raises ``FileNotFoundError`` if ``path`` is not a
    directory and ``collect.NoRunsError`` if it holds no run.
    """
    root = Path(path)
    out = Path(out) if out is not None else root / "analysis"
    runs = add_settings(add_realisation(add_load_gaps(pair_runs(collect_runs(root, exclude=out)))))
    summary = aggregate(runs)
    table = markdown_table(summary)

    out.mkdir(parents=True, exist_ok=True)
    runs_df, summary_df = runs_frame(runs), summary_frame(summary)
    files = [out / "runs.csv", out / "summary.csv", out / "summary.md"]
    runs_df.to_csv(files[0], index=False)
    summary_df.to_csv(files[1], index=False)
    fronts = read_fronts(root, runs)
    files[2].write_text(f"# FreezeOut analysis of `{root}`\n\n{table}\n{markdown_notes(runs, summary)}"
                        f"{front_markdown(fronts)}")
    plot_files, skipped = plot_all(runs, summary, out, fronts)
    files += plot_files

    bad = {r["dir"] for r in not_completed(runs)}
    lonely = {r["dir"] for r in unpaired(runs)}
    return {
        "runs": runs_df,
        "summary": summary_df,
        "not_completed": runs_df[runs_df["dir"].isin(bad)].reset_index(drop=True),
        "unpaired": runs_df[runs_df["dir"].isin(lonely)].reset_index(drop=True),
        "markdown": table,
        "report": text_report(root, runs, summary, table, files, skipped),
        "status_line": not_completed_line(runs),
        "files": files,
        "skipped": skipped,
        "out": out,
    }
