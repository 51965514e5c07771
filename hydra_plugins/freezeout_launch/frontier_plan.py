"""The frontier search's dry run (``hydra.sweeper.dry_run=true``): what it will train and for how
long, before it trains anything. The baselines are planned as ``python -m freezeout.plan`` plans
a sweep's jobs (their run directories, status there, iterations and predicted seconds, the step
times measured on this machine); a trial's run freezes some of its groups for part of training,
so it costs at most a fresh baseline run plus its time model's share (``predict_time_share``).
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


def dry_run(config: DictConfig, loader: Any, baseline_jobs: List[List[str]], space: Dict[str, Any], left: int,
            requeued: int, n_seeds: int) -> List[dict]:
    """Print the plan of a frontier search and return the baselines' plan rows (``loader``:
    Hydra's config loader, which composes each job as the launch would)."""
    from freezeout.errors import ConfigError
    from freezeout.plan import sweep as plan
    from freezeout.plan.steptimes import PlanError, predict_row, step_times_of
    from freezeout.rundir.records import FINAL_STATUSES

    print(f"frontier dry run: search space {_space_text(space)}")
    print("baselines (one per seed):")
    try:
        rows = [plan.job_row(n, job, config, loader, measure=True) for n, job in enumerate(baseline_jobs)]
        times = step_times_of(rows, {}, measure=True)  # every seed's baseline: a fresh run's time too
    except (PlanError, ConfigError, ValueError) as e:
        raise FrontierError(f"frontier dry run: {str(e).strip().splitlines()[0]}") from None
    for r in rows:
        r["iterations"], r["seconds"] = predict_row(r, times[r["timing"]])
    plan.print_rows(config, rows, [], None)
    share = float(config.get("predict_time_share", 0.1))
    fresh = sum(predict_row(dict(r, start=0, iterations=r["total"]), times[r["timing"]])[1] for r in rows)
    baseline_left = sum(r["seconds"] for r in rows if r["status"] not in FINAL_STATUSES)
    trials = left * fresh * (1 + share)
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    print(f"trials to run: {left}{f' ({requeued} re-queued from an interrupted launch)' if requeued else ''}, "
          f"{seeds} each: {left * n_seeds} runs of {rows[0]['total'] if rows else 0} iterations")
    print(f"predicted training time at most {(baseline_left + trials) / 3600:.2f} h "
          f"({baseline_left:.0f} s of baselines, {trials:.0f} s of trials: a trial's runs cost at most their "
          f"baselines plus {100 * share:g}% for the time model); nothing was trained")
    return rows
