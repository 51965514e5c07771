"""How well the time model predicted what training measured.

Per run: the *realisation*, measured speedup / the time model's (1.00: the prediction came true;
the benchmark's target band is 0.95-1.05), and, stage by stage, training's seconds a step over
the time model's (``summary.train_step_seconds`` / ``summary.step_seconds``: above 1, that stage
trained slower than the model said). Per setting and method: the median over seeds and the range.
A measured speedup is only as fair as its pairing (see ``loadgap.py``); the stage ratios need no
pairing: they set each run against its own time model.

A time model measured under a load unlike its run's training (other work's share of the machine
differs by more than ``loadgap.TOLERANCE``, or the GPU's other processes differ: ``summary.json``'s
``time_model.load`` against ``load``) predicts another machine: such a run gets no realisation and
no stage ratios, and ``realisation_note`` says why.
"""
from __future__ import annotations

import math
import statistics
from typing import Any

from .loadgap import TOLERANCE, share_gap
from .pairing import is_freezeout

#: The benchmark's band for a realisation that came true.
TARGET = (0.95, 1.05)


def realisation(measured: float, predicted: float) -> float:
    """``measured / predicted``; NaN where either is missing or the prediction is not above 0."""
    if measured is None or predicted is None or math.isnan(measured) or math.isnan(predicted) or predicted <= 0:
        return math.nan
    return measured / predicted


def stage_ratios(train: dict | None, model: dict | None) -> dict[int, float]:
    """Training's seconds a step over the time model's, by stage (groups frozen), for the stages
    both recorded."""
    if not isinstance(train, dict) or not isinstance(model, dict):
        return {}
    return {int(k): train[k] / model[k] for k in train
            if k in model and isinstance(model[k], (int, float)) and model[k] > 0}


def time_model_load_note(run: dict) -> str:
    """Why a run's time model cannot be set against its training (measured under another load),
    or an empty string (comparable loads, or a load not recorded)."""
    measured = (run.get("time_model") or {}).get("load")
    trained = run.get("load")
    if not isinstance(measured, dict) or not isinstance(trained, dict):
        return ""
    clauses = []
    if abs(share_gap(measured, trained)) > TOLERANCE:
        clauses.append(f"other work took {100 * measured['others_cpu_share']:.0f}% of the machine while its time "
                       f"model measured, {100 * trained['others_cpu_share']:.0f}% while it trained")
    a, b = measured.get("gpu_processes"), trained.get("gpu_processes")
    if a is not None and b is not None and a != b:
        clauses.append(f"other processes on its GPU: {a} (time model), {b} (training)")
    return "; ".join(clauses) + ": no realisation" if clauses else ""


def add_realisation(runs: list[dict]) -> list[dict]:
    """Copies of ``runs`` (paired: ``pair_runs``) with ``realisation``, ``stage_ratios`` and
    ``realisation_note`` (both left empty where the time model's load was unlike training's)."""
    out = []
    for r in runs:
        note = time_model_load_note(r)
        out.append(dict(r, realisation_note=note,
                        realisation=math.nan if note else realisation(r.get("measured_speedup", math.nan),
                                                                      r.get("predicted_speedup_time", math.nan)),
                        stage_ratios={} if note else stage_ratios(r.get("train_step_seconds"),
                                                                 r.get("step_seconds"))))
    return out


def realisation_columns(used: list[dict]) -> dict[str, Any]:
    """A group's realisation over its runs (median, least, most; NaN without any) and its stage
    ratios (median over runs, by stage)."""
    values = [r["realisation"] for r in used if not math.isnan(r.get("realisation", math.nan))]
    by_stage: dict[int, list[float]] = {}
    for r in used:
        for k, v in (r.get("stage_ratios") or {}).items():
            by_stage.setdefault(k, []).append(v)
    return {"realisation_median": statistics.median(values) if values else math.nan,
            "realisation_min": min(values, default=math.nan), "realisation_max": max(values, default=math.nan),
            "realisation_n": len(values),
            "stage_ratio_median": {k: statistics.median(v) for k, v in sorted(by_stage.items())}}


def realisation_text(row: dict) -> str:
    """``"0.97 [0.73–1.20]"``: the median and the range over seeds; an em dash where none."""
    if math.isnan(row.get("realisation_median", math.nan)):
        return "—"
    if row["realisation_n"] == 1:
        return f"{row['realisation_median']:.2f}"
    return f"{row['realisation_median']:.2f} [{row['realisation_min']:.2f}–{row['realisation_max']:.2f}]"


def stage_lines(summary: list[dict]) -> list[str]:
    """One line per group whose runs recorded both: its stage ratios and the stage that missed most."""
    lines = []
    for row in summary:
        ratios = row.get("stage_ratio_median") or {}
        if not ratios:
            continue
        worst = max(ratios, key=lambda k: abs(math.log(ratios[k])) if ratios[k] > 0 else math.inf)
        kind = "" if is_freezeout(row) else " (its time model: stage 0 alone)"
        lines.append(f"{row['method']}, {row['setting']}{kind}: "
                     + ", ".join(f"{k}: {v:.2f}" for k, v in ratios.items())
                     + f"; furthest from 1: stage {worst} ({100 * (ratios[worst] - 1):+.0f}%)")
    return lines
