"""The frontier search's dry run (``hydra.sweeper.dry_run=true``): what it will train and for how
long, before it trains anything. The baselines are planned as ``python -m freezeout.plan`` plans a
sweep (their run directories, status there, iterations and predicted seconds, the step times
measured on this machine); a trial's run freezes some of its groups for part of training, so it
costs at most its seed's baseline plus its time model's share (``predict_time_share``).
"""
# No "from __future__ import annotations": Hydra scans this package outside sys.modules.

from typing import Any, Dict, List

from omegaconf import DictConfig

from .frontier_space import FrontierError


def _space_text(space: Dict[str, Any]) -> str:
    parts = []
    for key, sweep in space.items():
        name = type(sweep).__name__.replace("Sweep", "").lower()
        if name == "choice":
            parts.append(f"{key}: choice({', '.join(map(str, sweep.list))})")
        elif name == "interval":
            parts.append(f"{key}: interval({sweep.start}, {sweep.end}){' log' if 'log' in sweep.tags else ''}")
        else:
            parts.append(f"{key}: {name}({sweep.start}, {sweep.stop}, {sweep.step})")
    return "; ".join(parts)


def _baseline_overrides(jobs: List[List[str]], sweep_dir: str) -> List[str]:
    """The baselines as one sweep of ``freezeout.plan``: the shared overrides, the seeds swept,
    through the freezeout sweeper (the frontier's own settings dropped)."""
    seeds = [job[-1].split("=", 1)[1] for job in jobs]
    return [*jobs[0][:-1], f"seed={','.join(seeds)}", f"hydra.sweep.dir={sweep_dir}", "hydra/sweeper=freezeout",
            "hydra.sweeper.params=null"]


def dry_run(config: DictConfig, baseline_jobs: List[List[str]], space: Dict[str, Any], left: int,
            requeued: int, n_seeds: int) -> List[dict]:
    """Print the plan of a frontier search and return the baselines' plan rows."""
    from freezeout.plan.steptimes import PlanError
    from freezeout.plan.sweep import plan

    print(f"frontier dry run: search space {_space_text(space)}")
    print("baselines (one per seed):")
    try:
        rows = plan(_baseline_overrides(baseline_jobs, str(config.hydra.sweep.dir)))
    except PlanError as e:
        raise FrontierError(f"frontier dry run: {e}") from None
    share = float(config.get("predict_time_share", 0.1))
    per_seed = [r["seconds"] if "seconds" in r else (r["summary"].train_seconds or 0.0) for r in rows]
    baseline_left = sum(r.get("seconds", 0.0) for r in rows)
    trials = left * sum(per_seed) * (1 + share)
    iterations = rows[0]["iterations"] if rows else 0
    print(f"trials to run: {left}{f' ({requeued} re-queued from an interrupted launch)' if requeued else ''}, "
          f"{n_seeds} seeds each: {left * n_seeds} runs of {iterations} iterations")
    print(f"predicted training time at most {(baseline_left + trials) / 3600:.2f} h "
          f"({baseline_left:.0f} s of baselines, {trials:.0f} s of trials: a trial's runs cost at most their "
          f"baselines plus {100 * share:g}% for the time model); nothing was trained")
    return rows
