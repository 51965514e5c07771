"""The frontier search's Optuna study: opened from its storage (SQLite by default) or created,
its interrupted trials re-queued, each trial's two objectives computed from its runs' records, and
the front written out (``frontier.csv`` in the sweep dir) and printed.

Objectives, over the trial's seeds (each run paired with the baseline of its seed): the mean
speedup (by default the run's own time model, ``predicted_speedup.time``; ``flops``, or
``measured`` against the baseline's wall clock) to maximise, and the mean relative error
``(err - err_baseline) / err_baseline`` to minimise.
"""
# No "from __future__ import annotations": Hydra scans this package outside sys.modules.

import csv
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from freezeout.errors import one_line
from freezeout.rundir.records import COMPLETED, SUMMARY_FILE, RunSummary

from .frontier_space import FrontierError

SAMPLERS = ("tpe", "nsga2", "random")
SPEEDUPS = ("time", "flops", "measured")
DIRECTIONS = ["maximize", "minimize"]  # speedup, relative error
FRONT_FILE = "frontier.csv"


def import_optuna() -> Any:
    """Optuna, or a one-line error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise FrontierError("hydra/sweeper=frontier needs optuna: pip install optuna (or the package's "
                            "'frontier' extra)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The search keeps heartbeats itself, with ask and tell (frontier_shared.Heartbeat).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def make_sampler(name: str, seed: int) -> Any:
    optuna = import_optuna()

    if name == "tpe":  # multi-objective TPE (MOTPE); random for the first 10 trials
        return optuna.samplers.TPESampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def open_study(storage: str, name: str, sampler: str, seed: int, heartbeat_s: int = 10) -> Any:
    """The study ``name`` in ``storage`` (created if new; several workers may open it at once),
    with heartbeats (:mod:`.frontier_shared`). Each trial's settings are drawn with a sampler
    seeded by ``seed`` plus the trial's number (:func:`reseed`)."""
    optuna = import_optuna()
    from .frontier_shared import make_storage

    store = make_storage(storage, heartbeat_s)
    try:
        study = optuna.create_study(study_name=name, storage=store, load_if_exists=True, directions=DIRECTIONS,
                                    sampler=make_sampler(sampler, seed))
    except Exception as e:  # noqa: BLE001
        raise FrontierError(f"hydra.sweeper.storage={storage}: cannot open the study store ({one_line(e)})") from None
    if [d.name.lower() for d in study.directions] != DIRECTIONS:
        raise FrontierError(f"study {name!r} in {storage} is not a frontier study (directions "
                            f"{[d.name.lower() for d in study.directions]})")
    return study


def reseed(study: Any, sampler: str, seed: int, trial: Any) -> None:
    """Draw ``trial``'s settings with a sampler seeded by ``seed`` plus its number: unique per
    trial in the store, so workers asking at once draw different settings, and a resumed search
    draws new ones."""
    study.sampler = make_sampler(sampler, seed + trial.number)


def existing_trials(storage: str, name: str) -> Tuple[int, int]:
    """(trials counted against the budget, trials left running) of the study, without creating
    anything: a missing SQLite file or study is a new search."""
    optuna = import_optuna()
    from optuna.trial import TrialState

    from .frontier_shared import storage_url

    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        return 0, 0
    try:
        study = optuna.load_study(study_name=name, storage=storage_url(storage))
    except KeyError:
        return 0, 0
    except Exception as e:  # noqa: BLE001
        raise FrontierError(f"hydra.sweeper.storage={storage}: cannot open the study store ({one_line(e)})") from None
    return counted(study), len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def counted(study: Any) -> int:
    """Trials that count against the budget: finished (completed or failed), neither given back
    nor run again after their worker died."""
    from .frontier_shared import counts, resumed_numbers

    trials = study.get_trials(deepcopy=False)
    resumed = resumed_numbers(trials)
    return sum(1 for t in trials if counts(t, resumed))


def read_summary(run_dir: Path) -> Optional[RunSummary]:
    try:
        return RunSummary.read(run_dir / SUMMARY_FILE)
    except ValueError:
        return None


def _speedup(run: RunSummary, base: RunSummary, kind: str) -> float:
    if kind == "measured":
        return 1.0 - run.train_seconds / base.train_seconds if base.train_seconds else math.nan
    value = (run.predicted_speedup or {}).get(kind)
    return math.nan if value is None else float(value)


def trial_values(runs: Sequence[Path], baselines: Sequence[Path], speedup: str,
                 sweep_dir: Path) -> Tuple[List[float], Dict]:
    """``([mean speedup, mean relative error], details)`` of one trial's runs, each with the
    baseline of its seed (same order). The details name the runs relative to ``sweep_dir``, so a
    sweep moved or copied (into ``results/``) still finds them. Raises ValueError naming the run
    that gives no value."""
    per_seed: Dict[str, List[float]] = {"speedup": [], "relative_error": []}
    for run_dir, base_dir in zip(runs, baselines):
        run, base = read_summary(run_dir), read_summary(base_dir)
        for s, d in ((run, run_dir), (base, base_dir)):
            if s is None or s.status != COMPLETED or s.final_val_err is None:
                state = "no summary" if s is None else f"{s.status}: {s.error or 'no error message'}"
                raise ValueError(f"{d.name} did not complete ({state})")
        value = _speedup(run, base, speedup)
        if math.isnan(value):
            hint = " (its time model was skipped or off: see its run.log)" if speedup == "time" else ""
            raise ValueError(f"{run_dir.name} recorded no {speedup} speedup{hint}")
        per_seed["speedup"].append(value)
        per_seed["relative_error"].append((run.final_val_err - base.final_val_err) / base.final_val_err
                                          if base.final_val_err else math.nan)
    values = [sum(v) / len(v) for v in (per_seed["speedup"], per_seed["relative_error"])]
    return values, {**per_seed, "run_dirs": [os.path.relpath(p, sweep_dir) for p in runs]}


def front_rows(study: Any, budget: float) -> List[Dict[str, Any]]:
    """Every completed trial: its settings, objectives, whether it lies on the front, and the best
    within the error budget (largest speedup whose mean relative error is at most ``budget``)."""
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    front = {t.number for t in study.best_trials} if done else set()
    within = [t for t in done if t.values[1] <= budget]
    best = max(within, key=lambda t: t.values[0]).number if within else None
    return [{"trial": t.number, "speedup": t.values[0], "relative_error": t.values[1],
             "on_front": t.number in front, "best_within_budget": t.number == best,
             "params": json.dumps(t.params, sort_keys=True),
             "run_dirs": json.dumps(t.user_attrs.get("run_dirs", []))} for t in done]


def write_front(rows: List[Dict[str, Any]], sweep_dir: Path) -> Path:
    path = sweep_dir / FRONT_FILE
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["trial", "speedup", "relative_error", "on_front",
                                               "best_within_budget", "params", "run_dirs"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def front_report(rows: List[Dict[str, Any]], budget: float, speedup: str, failed: int) -> str:
    """The front as printed at the end of a search."""
    lines = [f"frontier: {len(rows)} completed trials ({failed} failed); the front "
             f"({speedup} speedup up, relative error down):"]
    for r in sorted((r for r in rows if r["on_front"]), key=lambda r: -r["speedup"]):
        mark = "  <- best within budget" if r["best_within_budget"] else ""
        lines.append(f"  trial {r['trial']:>3}: speedup {100 * r['speedup']:5.1f}%, relative error "
                     f"{100 * r['relative_error']:+5.1f}%  {r['params']}{mark}")
    best = [r for r in rows if r["best_within_budget"]]
    if not best:
        lines.append(f"no trial within the {100 * budget:g}% error budget")
    elif not best[0]["on_front"]:
        lines.append(f"best within the {100 * budget:g}% budget: trial {best[0]['trial']} {best[0]['params']}")
    return "\n".join(lines)


def all_failed(study: Any) -> List[Any]:
    """The failed trials that count against the budget (not those run again)."""
    from optuna.trial import TrialState

    from .frontier_shared import counts, resumed_numbers

    trials = study.get_trials(deepcopy=False)
    resumed = resumed_numbers(trials)
    return [t for t in trials if t.state == TrialState.FAIL and counts(t, resumed)]


def failed_reason(failed: Sequence[Any], speedup: str, config: Any = None) -> str:
    """One line for a search whose every trial failed: how many, the first trial's error, and the
    setting that fixes the common cause (a time model skipped on short runs)."""
    errors = [str(t.user_attrs.get("error") or "no error recorded") for t in failed]
    line = f"all {len(failed)} trials of the frontier search failed; trial {failed[0].number}: {errors[0]}"
    if any("recorded no time speedup" in e for e in errors):
        share = None
        try:
            share = config.get("predict_time_share") if config is not None else None
        except Exception:  # noqa: BLE001 - the hint works without the current value
            share = None
        now = f" (now {share})" if share is not None else ""
        line += (f". The runs' time model was skipped: measuring it would cost more than predict_time_share{now} "
                 "of a run's iterations. Raise it (e.g. predict_time_share=1.0), train longer, or search on "
                 "hydra.sweeper.speedup=flops")
    return line
