"""Hydra's basic sweeper, minus redundant baselines.

A cartesian sweep such as ``strategy=cubic,none t_0=0.5,0.8 scale_lr=true,false`` would train
the baseline (``strategy=none``) once per ``t_0`` x ``scale_lr``, though those settings do not
change it. This sweeper drops them from baseline jobs and launches each distinct job once, so a
sweep trains one baseline per remaining combination (seed, model, ...). Everything else, batching
and launchers included, is Hydra's BasicSweeper.
"""
# No "from __future__ import annotations": Hydra scans this module outside sys.modules, where
# dataclasses cannot resolve string annotations.

from dataclasses import dataclass
from typing import Dict, List, Optional

from hydra.core.config_store import ConfigStore
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from freezeout.runkeys import FREEZEOUT_KEYS

#: Settings that mean nothing without freezing (strategy=none trains every group to the end).
FREEZEOUT_ONLY_KEYS = tuple(k for k in FREEZEOUT_KEYS if k != "strategy")
BASELINE = ("strategy=none", "strategy.name=none")


def drop_redundant_baselines(jobs: List[List[str]]) -> List[List[str]]:
    """Remove FreezeOut-only overrides from baseline jobs, then duplicates (order kept)."""
    seen, out = set(), []
    for job in jobs:
        if any(o in BASELINE for o in job):
            job = [o for o in job if o.split("=", 1)[0].lstrip("+~") not in FREEZEOUT_ONLY_KEYS]
        if tuple(job) not in seen:
            seen.add(tuple(job))
            out.append(job)
    return out


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
