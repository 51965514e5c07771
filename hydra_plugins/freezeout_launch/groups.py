"""Comparison groups of a sweep's jobs: a baseline and the methods compared with it.

A FreezeOut run is compared with the baseline (``strategy=none``) of the same setting and seed, so
the jobs whose overrides agree on everything but the method's keys (the strategy, its settings
``strategy.*``, ``t_0``, ``scale_lr``, ``const_time``, the cache's) form one group: one seed of one
setting. The turns launcher trains each group in one process taking turns; and a sweep that runs
group after group, baseline first, can stop at any time and leave complete comparisons behind,
where one that runs every baseline first leaves baselines without their methods (and trains the
baselines together, under a load their methods do not see).

Pure functions on Hydra's job override lists (``["seed=0", "strategy=cubic", ...]``).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from freezeout.freezing.schedule import BASELINE  # noqa: F401  (torch-free; frontier_space imports it from here)
from freezeout.rundir.identity import FREEZEOUT_KEYS, under


def _key_value(override: str) -> Tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def is_method_key(key: str) -> bool:
    """A key that says which method a job runs rather than what it is compared on."""
    return under(key.lstrip("+~"), FREEZEOUT_KEYS)


def group_key(job: Sequence[str]) -> Tuple[str, ...]:
    """The job's overrides without the method's keys, sorted: equal for one comparison group."""
    return tuple(sorted(o for o in job if not is_method_key(_key_value(o)[0])))


def is_baseline(job: Sequence[str]) -> bool:
    return any(_key_value(o) in (("strategy", BASELINE), ("strategy.name", BASELINE)) for o in job)


def _seed_of(job: Sequence[str]) -> Any:
    """The job's seed as a sort key: numbers in numeric order, before text; no seed first."""
    for o in job:
        key, value = _key_value(o)
        if key == "seed":
            try:
                return (1, float(value), "")
            except ValueError:
                return (2, 0.0, value)
    return (0, 0.0, "")


def comparison_groups(jobs: Sequence[Tuple[int, List[str]]],
                      max_turns: Optional[int] = None) -> List[List[Tuple[int, List[str]]]]:
    """``(number, overrides)`` jobs in comparison groups, each baseline first (otherwise in
    order); groups by seed (all settings' seed 0 first, then seed 1, ...), then in order of
    appearance. With ``max_turns``, a larger group is cut into rounds of at most that many jobs
    (the baseline in the first)."""
    groups: Dict[Tuple[str, ...], List[Tuple[int, List[str]]]] = {}
    for number, job in jobs:
        groups.setdefault(group_key(job), []).append((number, list(job)))
    ordered = sorted(groups.values(), key=lambda g: _seed_of(g[0][1]))  # stable: first seen first
    out = []
    for group in ordered:
        group = sorted(group, key=lambda j: not is_baseline(j[1]))
        step = max_turns if max_turns and max_turns > 0 else len(group)
        out += [group[i:i + step] for i in range(0, len(group), step)]
    return out


def comparison_order(jobs: Sequence[Sequence[str]]) -> List[List[str]]:
    """The jobs of a sweep group after group (see ``comparison_groups``), for any launcher: a
    sweep stopped after k groups holds k complete comparisons."""
    return [job for group in comparison_groups(list(enumerate(map(list, jobs)))) for _, job in group]
