"""Pair each FreezeOut (or peer) run with its baseline; compute measured speedup and relative error.

The baseline of a run (docs/design.md) is a completed ``strategy=none`` run with

- the same config once the method keys (FreezeOut's, ``cache_frozen``) and the non-semantic keys
  are dropped: same model, data, optimiser, epochs and seed. Configs are compared as flattened
  dotted keys; keys nobody knows of count too;
- the same environment, as the runs recorded it: device name (``cuda:0 (NVIDIA H100)``, not the
  requested ``device=auto``), precision and world size. A speedup measured against a baseline on
  another GPU, in another precision or on another number of processes would mean nothing.

A run that finds none says exactly why in ``unpaired``.
"""
from __future__ import annotations

import json
import math
from typing import Any

from freezeout.rundir.identity import FREEZEOUT_KEYS, NON_SEMANTIC_KEYS, flatten, under

from .collect import COMPLETED, natural_key
from .loadgap import same_round
from .methods import CACHE_FROZEN, is_baseline

#: Config keys that say what to run on; pairing compares what the run did run on instead.
ENVIRONMENT_CONFIG_KEYS = ("device", "precision")
#: The recorded environment a run and its baseline must share (record columns).
ENVIRONMENT = ("device", "precision", "world_size")
_METHOD_KEYS = tuple(dict.fromkeys(FREEZEOUT_KEYS + (CACHE_FROZEN,)))


def _norm(v: Any) -> Any:
    """Value as compared: ``1.0`` and ``1`` are equal, lists are compared as JSON."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def semantic_config(cfg: dict | None, drop_seed: bool = False) -> dict[str, Any] | None:
    """Flattened config without the method, non-semantic and environment keys (and ``seed``)."""
    if not isinstance(cfg, dict):
        return None
    drop = _METHOD_KEYS + NON_SEMANTIC_KEYS + ENVIRONMENT_CONFIG_KEYS + (("seed",) if drop_seed else ())
    return {k: _norm(v) for k, v in flatten(cfg).items() if not under(k, drop)}


def pair_key(cfg: dict | None, drop_seed: bool = False) -> str | None:
    """Hashable key of a config: runs pair only when their keys are equal. None without a config."""
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
    return not is_baseline(record)


def environment_mismatch(run: dict, base: dict) -> str | None:
    """Why ``base`` ran somewhere else than ``run`` ("baseline 'b' ran on X, this run on Y"), or
    None. A value a run did not record (a run killed before its summary) is not compared."""
    clauses = []
    for key, prep in zip(ENVIRONMENT, ("on", "in", "with world size")):
        mine, theirs = run.get(key), base.get(key)
        if mine is not None and theirs is not None and mine != theirs:
            clauses.append(f"ran {prep} {theirs}, this run {prep} {mine}")
    return f"baseline '{base['dir']}' " + "; ".join(clauses) if clauses else None


def _no_baseline(r: dict, seeds_of: dict[str, list]) -> str:
    """The reason for a run with no strategy=none run of its config and seed."""
    reason = "no baseline (no strategy=none run with the same config and seed)"
    others = sorted({str(s) for s in seeds_of.get(pair_key(r.get("_config"), drop_seed=True), [])})
    if others:
        reason += f"; this config has baselines for seed {', '.join(others)} only"
    return reason


def pair_runs(records: list[dict]) -> list[dict]:
    """Copies of ``records`` with ``baseline_dir``, ``measured_speedup``, ``relative_error``,
    ``baseline_val_err``, ``baseline_sanity`` (why the baseline looks as if it never learned, or None),
    ``duplicate_baselines`` and ``unpaired`` (why no baseline, or None).

    Baseline runs get no speedup. Among several matching baselines the one that took turns with
    the run (the same ``turns_group``: the same load by construction) is used, else the first by
    path.
    """
    out = [dict(r, _key=pair_key(r.get("_config"))) for r in records]
    by_key: dict[str, list[dict]] = {}
    seeds_of: dict[str, list] = {}  # config without seed -> seeds it has baselines for
    for r in sorted(out, key=lambda r: natural_key(r["dir"])):
        if not is_freezeout(r) and r["_key"] is not None:
            by_key.setdefault(r["_key"], []).append(r)
            seeds_of.setdefault(pair_key(r["_config"], drop_seed=True), []).append(r.get("seed"))
    for r in out:
        r.update(baseline_dir=None, measured_speedup=math.nan, relative_error=math.nan,
                 duplicate_baselines="", unpaired=None, baseline_val_err=math.nan, baseline_sanity=None)
        if not is_freezeout(r):
            continue
        if r["_key"] is None:
            r["unpaired"] = "no config to match a baseline on"
            continue
        candidates = by_key.get(r["_key"], [])
        mismatches = [environment_mismatch(r, b) for b in candidates]
        same_env = [b for b, why in zip(candidates, mismatches) if why is None]
        done = [b for b in same_env if b["status"] == COMPLETED]
        if not candidates:
            r["unpaired"] = _no_baseline(r, seeds_of)
        elif not same_env:
            r["unpaired"] = ("no baseline on the same device, precision and world size: "
                             + "; ".join(mismatches))
        elif not done:
            states = ", ".join(f"{b['dir']} ({b['status']})" for b in same_env)
            r["unpaired"] = f"baseline not completed: {states}"
        else:
            base = next((b for b in done if same_round(r.get("load"), b.get("load"))), done[0])
            r["baseline_dir"] = base["dir"]
            r["duplicate_baselines"] = "; ".join(b["dir"] for b in done if b is not base)
            r["baseline_sanity"] = base.get("sanity")
            if r["status"] == COMPLETED:
                r["measured_speedup"] = measured_speedup(r["train_seconds"], base["train_seconds"])
                r["relative_error"] = relative_error(r["final_val_err"], base["final_val_err"])
                r["baseline_val_err"] = base["final_val_err"]
    return out
