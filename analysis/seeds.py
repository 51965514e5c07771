"""Seeds counted honestly: one run per (setting, method, seed) enters the statistics.

A seed repeated (a sweep re-launched into another directory, a run copied by hand) is the same
experiment again, not another sample: counting it twice would shrink the spread. The first
completed run by path is used; the others are marked ``repeat_of`` it and reported.
"""
from __future__ import annotations

from .collect import COMPLETED, natural_key


def mark_repeats(records: list[dict], group_of) -> list[dict]:
    """Copies of ``records`` with ``repeat_of``: for a completed run whose group (``group_of``)
    and seed an earlier completed run (by path) already has, that run's dir; else None."""
    first: dict[tuple, str] = {}
    repeat_of: dict[str, str] = {}
    for r in sorted(records, key=lambda r: natural_key(r["dir"])):
        if r["status"] != COMPLETED:
            continue
        key = (group_of(r), str(r.get("seed")))
        if key in first:
            repeat_of[r["dir"]] = first[key]
        else:
            first[key] = r["dir"]
    return [dict(r, repeat_of=repeat_of.get(r["dir"])) for r in records]


def repeated_seeds(members: list[dict]) -> dict[str, list[str]]:
    """``{seed: [dirs, first by path]}`` for each seed with several completed runs in one group."""
    runs: dict[str, list[str]] = {}
    for r in sorted(members, key=lambda r: natural_key(r["dir"])):
        if r["status"] == COMPLETED:
            runs.setdefault(str(r.get("seed")), []).append(r["dir"])
    return {seed: dirs for seed, dirs in runs.items() if len(dirs) > 1}


def repeat_text(seed: str, dirs: list[str]) -> str:
    """``"seed 0 appears 4 times (a, b, c, d); statistics use a, the first by path"``."""
    return (f"seed {seed} appears {len(dirs)} times ({', '.join(dirs)}); statistics use "
            f"{dirs[0]}, the first by path")
