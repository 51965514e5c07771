"""How unequal the load was between a run and its baseline, per comparison.

Each run records the load it trained under (``summary.json``'s ``load``, see
``freezeout.rundir.load``). A measured speedup means something only when the run and its
baseline trained under comparable load: a baseline slowed by jobs beside it makes the run look
faster. Per paired run:

- runs of one turns round (the same ``turns_group``) trained under the same load by construction;
- otherwise the share of the machine's CPU time that other work took during each is compared
  (``load_gap``: the run's minus the baseline's, in fractions of the machine), and so are the jobs
  of the launch beside each, the other processes on its GPU and the size of the turns round each
  trained in (``turns``: a run taking turns with one or five others stepped about 2x slower than
  one training alone on a small CPU model, though no other process shared the machine).

A comparison is *unequal* when the run and its baseline did not take turns in one round (``NOT_IN_TURNS``:
runs one after another, as the default launcher starts them, each meet their own slow and fast spells
of the machine, which the load recorded over a whole run cannot see), when the other work differs by
more than ``TOLERANCE`` of the machine, or the jobs beside, the GPU's other processes or the rounds'
sizes differ; ``load_note`` says how. A run or baseline that recorded no load is left unjudged
(``load_unequal`` None).

``share_gap`` is the same comparison of other work for any two load records: the realisation
(``realisation.py``) sets a run's time model against its training with it.
"""
from __future__ import annotations

import math
from typing import Any

TOLERANCE = 0.10  # other work's share of the machine may differ by this much (10 points)


def _load(r: dict) -> dict | None:
    load = r.get("load")
    return load if isinstance(load, dict) else None


def same_round(run: dict | None, base: dict | None) -> bool:
    """Whether two load records come from one turns round (the same ``turns_group``): the same
    load by construction."""
    group = (run or {}).get("turns_group")
    return bool(group) and group == (base or {}).get("turns_group")


NOT_IN_TURNS = ("not timed in one turns round: the run and its baseline trained apart, each under its own "
                "spells of the machine's load (hydra/launcher=turns times them fairly)")


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def share_gap(a: dict | None, b: dict | None) -> float:
    """Other work's share of the machine in load record ``a`` minus that in ``b`` (fractions of
    the machine); NaN where either did not record it."""
    mine, theirs = (a or {}).get("others_cpu_share"), (b or {}).get("others_cpu_share")
    if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
        return float(mine) - float(theirs)
    return math.nan


def compare_load(run: dict | None, base: dict | None) -> tuple[float, bool | None, str]:
    """``(load_gap, unequal, note)`` for a run's load record against its baseline's."""
    if run is None or base is None:
        which = "run" if run is None else "baseline"
        return math.nan, None, f"load not recorded by the {which}"
    if same_round(run, base):
        return 0.0, False, ""
    gap, notes = share_gap(run, base), []
    if abs(gap) > TOLERANCE:
        notes.append(f"other work took {_pct(run['others_cpu_share'])} of the machine during the run, "
                     f"{_pct(base['others_cpu_share'])} during its baseline")
    for key, what in (("jobs_beside", "jobs beside"), ("gpu_processes", "other processes on its GPU")):
        a, b = run.get(key), base.get(key)
        if a is not None and b is not None and a != b:
            notes.append(f"{what}: {a} (run), {b} (baseline)")
    mine_turns, their_turns = run.get("turns") or 1, base.get("turns") or 1  # None: not taking turns
    if mine_turns != their_turns:
        notes.append(f"runs taking turns (a process each): {mine_turns} (run), {their_turns} (baseline)")
    notes.append(NOT_IN_TURNS)  # same_round said no
    return gap, True, "; ".join(notes)


def add_load_gaps(records: list[dict]) -> list[dict]:
    """Copies of paired ``records`` with ``load_gap``, ``load_unequal`` and ``load_note`` (empty
    for runs without a baseline and for baselines)."""
    by_dir = {r["dir"]: r for r in records}
    out = []
    for r in records:
        base = by_dir.get(r.get("baseline_dir")) if r.get("baseline_dir") else None
        gap, unequal, note = (compare_load(_load(r), _load(base)) if base is not None
                              else (math.nan, None, ""))
        out.append(dict(r, load_gap=gap, load_unequal=unequal, load_note=note))
    return out


def load_columns(used: list[dict]) -> dict[str, Any]:
    """Per aggregation group: ``n_load_unequal`` (comparisons under unequal load) and
    ``n_load_unknown`` (paired runs whose load was not recorded, by them or their baseline)."""
    paired = [r for r in used if r.get("baseline_dir")]
    return {"n_load_unequal": sum(1 for r in paired if r.get("load_unequal") is True),
            "n_load_unknown": sum(1 for r in paired if r.get("load_unequal") is None)}


def unequal_lines(runs: list[dict]) -> list[str]:
    """One line per comparison under unequal load: run, baseline and how."""
    return [f"{r['dir']} vs {r['baseline_dir']}: {r['load_note']}" for r in runs
            if r.get("load_unequal") is True]
