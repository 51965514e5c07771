"""Hydra's basic sweeper, minus redundant jobs.

A cartesian sweep such as ``strategy=cubic,none,layer_freezing t_0=0.5,0.8 scale_lr=true,false``
would train the baseline (``strategy=none``) and the peer rule once per ``t_0`` x ``scale_lr``,
though those settings do not change them. This sweeper drops the settings a job's strategy does
not read and launches each distinct job once, so a sweep trains one baseline (and one run of each
peer rule) per remaining combination (seed, model, ...). Everything else, batching and launchers
included, is Hydra's BasicSweeper.
"""
# No "from __future__ import annotations": Hydra scans this module outside sys.modules, where
# dataclasses cannot resolve string annotations.

from dataclasses import dataclass
from typing import Dict, List, Optional

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore

from freezeout.freezing.rules import get_rule, rule_names
from hydra_plugins.freezeout_launch.groups import comparison_order


def _strategy_of(job: List[str]) -> Optional[str]:
    for o in job:
        key, _, value = o.partition("=")
        if key in ("strategy", "strategy.name"):
            return value
    return None


def drop_redundant_baselines(jobs: List[List[str]]) -> List[List[str]]:
    """Remove the overrides a job's strategy does not read (each rule declares them: FreezeOut's
    settings from baseline jobs, t_0, scale_lr and const_time from rival rules' jobs), then
    duplicates; then comparison group after comparison group (a baseline and the methods compared
    with it, seed by seed; see :func:`.groups.comparison_order`), so that a sweep stopped early
    holds complete comparisons and no launcher trains every baseline together under a load
    their methods do not see."""
    seen, out = set(), []
    for job in jobs:
        strategy = _strategy_of(job)
        unread = get_rule(strategy).unread if strategy in rule_names() else ()
        job = [o for o in job if o.split("=", 1)[0].lstrip("+~") not in unread]
        if tuple(job) not in seen:
            seen.add(tuple(job))
            out.append(job)
    return comparison_order(out)


@dataclass
class FreezeOutSweeperConf:
    _target_: str = "hydra_plugins.freezeout_launch.sweeper.FreezeOutSweeper"
    max_batch_size: Optional[int] = None
    params: Optional[Dict[str, str]] = None


class FreezeOutSweeper(BasicSweeper):
    """BasicSweeper whose job list trains each baseline once."""

    @staticmethod
    def split_arguments(overrides, max_batch_size):
        batches = BasicSweeper.split_arguments(overrides, None)
        jobs = drop_redundant_baselines(batches[0] if batches else [])
        if max_batch_size is None:
            return [jobs]
        return [list(c) for c in BasicSweeper.split_overrides_to_chunks(jobs, max_batch_size)]


ConfigStore.instance().store(group="hydra/sweeper", name="freezeout", node=FreezeOutSweeperConf,
                             provider="freezeout")
