"""Group paired runs over seeds: one row per setting × FreezeOut configuration.

A *setting* is everything in the config but the FreezeOut keys, the non-semantic keys and the seed
(model, data, optimiser, epochs, ...). A group is a setting plus (strategy, scale_lr, t_0,
const_time); for the baseline those three mean nothing and are left out, so all baselines of a
setting form one group.
"""
from __future__ import annotations

import json
import math
import statistics
from typing import Any

from .collect import COMPLETED
from .pairing import BASELINE, is_freezeout, pair_key, semantic_config

STRATEGY_ORDER = {BASELINE: 0, "linear": 1, "squared": 2, "cubic": 3}
_ALWAYS_SHOWN = ("model.name", "data.name")


def stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of the non-NaN ``values``; NaN where undefined."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    mean = statistics.fmean(v) if v else math.nan
    std = statistics.stdev(v) if len(v) >= 2 else math.nan
    return mean, std, len(v)


def setting_labels(records: list[dict]) -> dict[str | None, str]:
    """``setting key -> label``: "model / data", plus the config keys that tell settings apart."""
    sems = {pair_key(r.get("_config"), drop_seed=True): r for r in records}
    flats = {k: semantic_config(r.get("_config"), drop_seed=True) or {} for k, r in sems.items()}
    keys = sorted(set().union(*flats.values())) if flats else []
    varying = [k for k in keys if k not in _ALWAYS_SHOWN
               and len({json.dumps(f.get(k), default=str) for f in flats.values()}) > 1]
    labels = {}
    for key, r in sems.items():
        label = f"{r.get('model') or '?'} / {r.get('data') or '?'}"
        extra = ", ".join(f"{k}={flats[key].get(k)}" for k in varying if k in flats[key])
        labels[key] = f"{label} ({extra})" if extra else label
        if key is None:
            labels[key] += " (no config)"
    return labels


def add_settings(records: list[dict]) -> list[dict]:
    """Copies of ``records`` with ``_setting`` (the key) and ``setting`` (its readable label)."""
    keys = [pair_key(r.get("_config"), drop_seed=True) for r in records]
    labels = setting_labels(records)
    return [dict(r, _setting=k, setting=labels[k]) for r, k in zip(records, keys)]


def group_of(record: dict) -> tuple:
    """The aggregation group of a run: setting, strategy and (for FreezeOut) its settings."""
    fo = (record.get("scale_lr"), record.get("t_0"), record.get("const_time"))
    if not is_freezeout(record):
        fo = (None, math.nan, None)
    return (record.get("_setting"), record.get("strategy")) + fo


def _sort_key(row: dict) -> tuple:
    t_0 = row["t_0"]
    return (row["setting"], STRATEGY_ORDER.get(row["strategy"], 9), str(row["strategy"]),
            bool(row["scale_lr"]), -1.0 if math.isnan(t_0) else t_0, bool(row["const_time"]))


def _group_row(members: list[dict]) -> dict[str, Any]:
    """Aggregate one group's runs (statistics over its completed runs only)."""
    first = members[0]
    done = [r for r in members if r["status"] == COMPLETED]
    row: dict[str, Any] = {k: first.get(k) for k in ("setting", "model", "data", "strategy")}
    row.update(zip(("scale_lr", "t_0", "const_time"), group_of(first)[2:]))
    row.update(n_runs=len(members), n_completed=len(done))
    for name in ("measured_speedup", "relative_error"):
        mean, std, n = stats([r[name] for r in done])
        row.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_n": n})
    for kind in ("flops", "paper", "time"):
        row[f"predicted_speedup_{kind}"] = stats([r[f"predicted_speedup_{kind}"] for r in done])[0]
    mean, std, _ = stats([r["final_val_err"] for r in done])
    row.update(final_val_err_mean=mean, final_val_err_std=std)
    base_errs = [r["final_val_err" if not is_freezeout(r) else "baseline_val_err"] for r in done]
    row["baseline_val_err_mean"] = stats(base_errs)[0]
    row["train_seconds_mean"] = stats([r["train_seconds"] for r in done])[0]
    row["dirs"] = "; ".join(r["dir"] for r in members)
    return row


def aggregate(records: list[dict]) -> list[dict]:
    """One row per group (see module doc) of paired records carrying ``_setting``/``setting``.

    Every run lands in a group; groups whose runs all failed keep ``n_completed = 0``.
    """
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(json.dumps(group_of(r), default=str), []).append(r)
    return sorted((_group_row(m) for m in groups.values()), key=_sort_key)
