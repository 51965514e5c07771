"""Group paired runs over seeds: one row per setting × method.

A *setting* is everything in the config but the method keys, the non-semantic keys and the seed
(model, data, optimiser, epochs, ...) plus the recorded environment (device, precision, world
size). A *method* is a strategy and its own parameters (``methods.py``); all baselines of a
setting form one group. Statistics use one completed run per seed (``seeds.py``).
"""
from __future__ import annotations

import json
import math
import statistics
from typing import Any

from freezeout.rundir.sanity import chance_error

from .collect import COMPLETED, PREDICTION_KINDS
from .loadgap import load_columns
from .methods import method_key, reads_schedule, method_label, method_sort_key
from .pairing import ENVIRONMENT, is_freezeout, semantic_config
from .realisation import realisation_columns
from .seeds import mark_repeats, repeat_text, repeated_seeds
from .stats import interval_columns

_ALWAYS_SHOWN = ("model.name", "data.name")


def stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n) of the non-NaN ``values``; NaN where undefined."""
    v = [x for x in values if x is not None and not math.isnan(x)]
    mean = statistics.fmean(v) if v else math.nan
    std = statistics.stdev(v) if len(v) >= 2 else math.nan
    return mean, std, len(v)


def _flat_setting(r: dict) -> dict[str, Any] | None:
    """The setting of a run as flat keys: its semantic config (no seed) plus its environment."""
    sem = semantic_config(r.get("_config"), drop_seed=True)
    return None if sem is None else {**sem, **{k: r.get(k) for k in ENVIRONMENT}}


def _fill_devices(flats: list[dict | None]) -> None:
    """A run killed before it recorded its device joins the setting of its config when all runs
    of that config that did record one agree on it (otherwise it stays apart)."""
    known: dict[str, set] = {}
    for f in flats:
        if f is not None and f["device"] is not None:
            known.setdefault(json.dumps({**f, "device": None}, sort_keys=True, default=str),
                             set()).add(f["device"])
    for f in flats:
        if f is not None and f["device"] is None:
            devices = known.get(json.dumps(f, sort_keys=True, default=str), set())
            if len(devices) == 1:
                f["device"] = next(iter(devices))


def add_settings(records: list[dict]) -> list[dict]:
    """Copies of ``records`` with ``_setting`` (key), ``setting`` (readable label), ``method``
    (label) and ``repeat_of`` (see ``seeds.mark_repeats``)."""
    flats = [_flat_setting(r) for r in records]
    _fill_devices(flats)
    keys = [None if f is None else json.dumps(f, sort_keys=True, default=str) for f in flats]
    by_key = dict(zip(keys, flats))
    varying = [k for k in sorted(set().union(*(f for f in by_key.values() if f)))
               if k not in _ALWAYS_SHOWN and len({json.dumps(f.get(k), default=str)
                                                  for f in by_key.values() if f}) > 1]
    labels = {}
    for r, key, flat in zip(records, keys, flats):
        label = f"{r.get('model') or '?'} / {r.get('data') or '?'}"
        extra = ", ".join(f"{k}={flat.get(k)}" for k in varying if k in flat) if flat else ""
        labels[key] = (f"{label} ({extra})" if extra else label) + (" (no config)" if flat is None else "")
    out = [dict(r, _setting=k, setting=labels[k], method=method_label(r))
           for r, k in zip(records, keys)]
    return mark_repeats(out, group_of)


def group_of(record: dict) -> tuple:
    """The aggregation group of a run: its setting and its method."""
    return record.get("_setting"), method_key(record)


def _method_columns(first: dict) -> dict[str, Any]:
    """strategy, t_0, scale_lr (schedules only), const_time, cache_frozen, strategy_params."""
    schedule, fo = reads_schedule(first), is_freezeout(first)
    return {
        "strategy": first.get("strategy"),
        "method": method_label(first),
        "t_0": first.get("t_0") if schedule else math.nan,
        "scale_lr": first.get("scale_lr") if schedule else None,
        "const_time": bool(first.get("const_time")) if fo else None,
        "cache_frozen": bool(first.get("cache_frozen")) if fo else None,
        "strategy_params": dict(first.get("strategy_params") or {}),
    }


def _group_row(members: list[dict]) -> dict[str, Any]:
    """Aggregate one group's runs: statistics over its completed runs, one per seed."""
    first = members[0]
    done = [r for r in members if r["status"] == COMPLETED]
    used = [r for r in done if not r.get("repeat_of")]
    paired = [r for r in used if not math.isnan(r["measured_speedup"])]
    row: dict[str, Any] = {k: first.get(k) for k in ("setting", "model", "data", *ENVIRONMENT)}
    row.update(_method_columns(first))
    counted = paired if is_freezeout(first) else used
    repeats = repeated_seeds(members)
    row.update(n_runs=len(members), n_completed=len(done),
               n_seeds=len({str(r.get("seed")) for r in counted}),
               repeated_seeds="; ".join(repeat_text(s, d) for s, d in repeats.items()),
               _repeats=repeats)
    for name in ("measured_speedup", "relative_error"):
        mean, std, n = stats([r[name] for r in used])
        row.update({f"{name}_mean": mean, f"{name}_std": std, f"{name}_n": n})
    row.update(interval_columns(used), **load_columns(used))  # bootstrap intervals; load per comparison
    row.update(realisation_columns(used))  # measured / time-model speedup, and training / time model by stage
    for kind in PREDICTION_KINDS:
        row[f"predicted_speedup_{kind}"] = stats([r[f"predicted_speedup_{kind}"] for r in used])[0]
    mean, std, _ = stats([r["final_val_err"] for r in used])
    row.update(final_val_err_mean=mean, final_val_err_std=std)
    base_errs = [r["final_val_err" if not is_freezeout(r) else "baseline_val_err"] for r in used]
    row["baseline_val_err_mean"] = stats(base_errs)[0]
    row["train_seconds_mean"] = stats([r["train_seconds"] for r in used])[0]
    # runs that never learned (collect's sanity) and the error of chance for the data's classes
    row["n_at_chance"] = sum(1 for r in used if r.get("sanity"))
    row["chance_err"] = next((chance_error(r.get("num_classes")) for r in members if r.get("num_classes")), math.nan)
    row["dirs"] = "; ".join(r["dir"] for r in members)
    return row


def aggregate(records: list[dict]) -> list[dict]:
    """One row per group (see module doc) of records from ``add_settings``.

    Every run lands in a group; groups whose runs all failed keep ``n_completed = 0``.
    """
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(json.dumps(group_of(r), default=str), []).append(r)
    rows = [_group_row(m) for m in groups.values()]
    return sorted(rows, key=lambda row: (row["setting"], method_sort_key(row)))
