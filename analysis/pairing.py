"""Pair each FreezeOut run with its baseline and compute measured speedup and relative error.

The baseline of a run (DESIGN §1) is a completed ``strategy=none`` run whose config is the same
once the method keys (FreezeOut's, ``cache_frozen``) and the non-semantic keys are dropped: same model, data, optimiser, epochs
and seed. Configs are compared as flattened dotted keys; keys nobody knows of count too.
"""
from __future__ import annotations

import json
import math
from typing import Any

from freezeout.runkeys import FREEZEOUT_KEYS, NON_SEMANTIC_KEYS, flatten, under

from .collect import COMPLETED, natural_key
from .methods import BASELINE, CACHE_FROZEN

_METHOD_KEYS = tuple(dict.fromkeys(FREEZEOUT_KEYS + (CACHE_FROZEN,)))


def _norm(v: Any) -> Any:
    """Value as compared: ``1.0`` and ``1`` are equal, lists are compared as JSON."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def semantic_config(cfg: dict | None, drop_seed: bool = False) -> dict[str, Any] | None:
    """Flattened config without the method and non-semantic keys (and ``seed`` if asked)."""
    if not isinstance(cfg, dict):
        return None
    drop = _METHOD_KEYS + NON_SEMANTIC_KEYS + (("seed",) if drop_seed else ())
    return {k: _norm(v) for k, v in flatten(cfg).items() if not under(k, drop)}


def pair_key(cfg: dict | None, drop_seed: bool = False) -> str | None:
    """Hashable key of a config: two runs pair when their keys are equal. None without a config."""
    sem = semantic_config(cfg, drop_seed)
    return None if sem is None else json.dumps(sem, sort_keys=True, default=str)


def measured_speedup(seconds: float, baseline_seconds: float) -> float:
    """``1 - seconds / baseline_seconds``; NaN if either is missing or the baseline is not > 0."""
    if not (baseline_seconds > 0) or math.isnan(seconds):
        return math.nan
    return 1.0 - seconds / baseline_seconds


def relative_error(err: float, baseline_err: float) -> float:
    """``(err - baseline_err) / baseline_err``; NaN where either is missing or the baseline is 0."""
    if not (baseline_err > 0) or math.isnan(err):
        return math.nan
    return (err - baseline_err) / baseline_err


def is_freezeout(record: dict) -> bool:
    """A run to pair: any strategy but the baseline's (FreezeOut, its peers, unknown ones)."""
    return record.get("strategy") != BASELINE


def pair_runs(records: list[dict]) -> list[dict]:
    """Copies of ``records`` with ``baseline_dir``, ``measured_speedup``, ``relative_error``,
    ``baseline_val_err``, ``duplicate_baselines`` and ``unpaired`` (why no baseline, or None).

    Baseline runs get no speedup. Among several matching baselines the first by path is used.
    """
    out = [dict(r, _key=pair_key(r.get("_config"))) for r in records]
    by_key: dict[str, list[dict]] = {}
    for r in sorted(out, key=lambda r: natural_key(r["dir"])):
        if not is_freezeout(r) and r["_key"] is not None:
            by_key.setdefault(r["_key"], []).append(r)
    for r in out:
        r.update(baseline_dir=None, measured_speedup=math.nan, relative_error=math.nan,
                 duplicate_baselines="", unpaired=None, baseline_val_err=math.nan)
        if not is_freezeout(r):
            continue
        candidates = by_key.get(r["_key"], []) if r["_key"] is not None else []
        done = [b for b in candidates if b["status"] == COMPLETED]
        if r["_key"] is None:
            r["unpaired"] = "no config to match a baseline on"
        elif not done and candidates:
            states = ", ".join(f"{b['dir']} ({b['status']})" for b in candidates)
            r["unpaired"] = f"baseline not completed: {states}"
        elif not done:
            r["unpaired"] = "no baseline (no strategy=none run with the same config and seed)"
        else:
            base = done[0]
            r["baseline_dir"] = base["dir"]
            r["duplicate_baselines"] = "; ".join(b["dir"] for b in done[1:])
            if r["status"] == COMPLETED:
                r["measured_speedup"] = measured_speedup(r["train_seconds"], base["train_seconds"])
                r["relative_error"] = relative_error(r["final_val_err"], base["final_val_err"])
                r["baseline_val_err"] = base["final_val_err"]
    return out
