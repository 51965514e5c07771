"""``python -m freezeout.plan OVERRIDES``: what a sweep will run, before it runs.

Takes the overrides of ``python run.py -m OVERRIDES`` (``-m`` or not: a plan is of the sweep) and
prints its jobs after the sweeper's de-duplication (Hydra's own override parser and job expansion,
then ours), each with its run directory ``run_<override_dirname>`` as Hydra names it, its status
there (``new``, or its ``summary.json``'s), its iterations and the predicted training seconds left;
then the skipped duplicates and the totals. Nothing is trained: the time model is measured here
through the engine, once per distinct (model, data, optimizer, batch size, precision...), or read
from ``--step-times FILE`` (``--save-step-times FILE`` on the sweep's machine). Bad input: one
line, exit status 2.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import torch
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import setup_globals
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from hydra_plugins.freezeout_launch.placement import register_resolvers
from hydra_plugins.freezeout_launch.sweeper import (
    FreezeOutSweeper,
    drop_redundant_baselines,
)

from ..config import config_dir, register_configs, use_shipped_sweeps
from ..errors import ConfigError
from ..freezing.rules import get_rule, run_schedule
from ..models import build_model
from ..models.factory import build_external, model_kind
from ..rundir.checkpoint import CHECKPOINT_FILE
from ..rundir.records import FINAL_STATUSES, SUMMARY_FILE, RunSummary
from ..training.checks import model_kwargs, validate
from .steptimes import (
    PlanError,
    busy_lines,
    predict_row,
    read_step_times,
    step_times_of,
    write_step_times,
)

USAGE = "freezeout plan [-m] [--step-times FILE] [--save-step-times FILE] OVERRIDES..."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="freezeout plan", usage=USAGE, description="What a sweep will "
                                     "run: its jobs, their status in the sweep dir and predicted training time.")
    parser.add_argument("-m", "--multirun", action="store_true", help="accepted and ignored (a plan is of a sweep)")
    parser.add_argument("--step-times", metavar="FILE", help="step times written by --save-step-times: measure nothing")
    parser.add_argument("--save-step-times", metavar="FILE", help="write the step times used to FILE (JSON)")
    parser.add_argument("overrides", nargs="*", help="the sweep's overrides, as for run.py")
    parser.error = lambda message: _fail(f"{message} (usage: {USAGE})")  # one line, not argparse's two
    args = parser.parse_args(argv)
    try:
        plan(args.overrides, args.step_times, args.save_step_times)
    except PlanError as e:
        _fail(str(e))
    return 0


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def plan(overrides: list[str], step_times: str | None = None, save_step_times: str | None = None) -> list[dict]:
    """Print the plan of the sweep ``overrides`` describe; returns its jobs (dicts, as printed)."""
    master, loader = _compose(overrides)
    jobs, skipped = expand_jobs(master, loader)
    stored = read_step_times(step_times) if step_times else {}
    rows = []
    for number, job in enumerate(jobs):
        try:
            rows.append(job_row(number, job, master, loader, measure=step_times is None))
        except (ConfigError, HydraException, OmegaConfBaseException, ValueError) as e:  # ValueError: summary
            raise PlanError(f"job #{number} ({' '.join(job)}): {str(e).strip().splitlines()[0]}") from None
    todo = [r for r in rows if r["status"] not in FINAL_STATUSES]
    times = step_times_of(todo, stored, measure=step_times is None)
    for r in todo:
        r["iterations"], r["seconds"] = predict_row(r, times[r["timing"]])
    if save_step_times:
        write_step_times(save_step_times, times)
    print_rows(master, rows, skipped, step_times, busy_lines(times))
    return rows


def _compose(overrides: list[str]):
    """The sweep's master config, composed as ``run.py -m`` composes it, and Hydra's loader."""
    use_shipped_sweeps()  # sweeps/ as a config group, as run.py does
    setup_globals()  # Hydra's own resolvers (${now:...})
    register_configs()
    register_resolvers()
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(config_dir())))
    try:
        return loader.load_configuration("config", list(overrides), run_mode=RunMode.MULTIRUN), loader
    except (HydraException, OmegaConfBaseException) as e:
        raise PlanError(str(e).strip().splitlines()[0]) from None


def expand_jobs(master, loader) -> tuple[list[list[str]], list[tuple[list[str], int]]]:
    """The sweep's jobs, as its sweeper launches them: ``hydra.sweeper.params`` then the command
    line's task overrides, expanded by Hydra's BasicSweeper and de-duplicated by ours; and each
    skipped job with the number of the job that runs in its place."""
    target = str(master.hydra.sweeper.get("_target_", ""))
    if not target.endswith((".FreezeOutSweeper", ".BasicSweeper")):
        raise PlanError(f"hydra.sweeper is {target}; the plan knows the freezeout and basic sweepers only")
    params = [f"{k}={v}" for k, v in (master.hydra.sweeper.get("params") or {}).items()]
    try:
        task = list(master.hydra.overrides.task)  # the command line's, as Hydra hands them to its sweeper
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(params + task)
        every = BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as e:
        raise PlanError(str(e).strip().splitlines()[0]) from None
    if not target.endswith(".FreezeOutSweeper"):
        return every, []
    jobs = FreezeOutSweeper.split_arguments(parsed, None)[0]
    index = {tuple(j): n for n, j in enumerate(jobs)}
    swept = {o.get_key_element() for o in parsed if o.is_sweep_override()}
    skipped, seen = [], set()
    for job in every:
        kept = tuple(drop_redundant_baselines([job])[0])
        if kept in seen:  # shown by its swept settings: the others are every job's
            skipped.append(([o for o in job if o.split("=", 1)[0] in swept], index[kept]))
        seen.add(kept)
    return jobs, skipped


def job_row(number: int, job: list[str], master, loader, measure: bool) -> dict:
    """One job: its directory and status there, and what its schedule needs (from its config)."""
    cfg = loader.load_sweep_config(master, job)
    run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    with open_dict(cfg):
        del cfg["hydra"]
    summary = RunSummary.read(run_dir / SUMMARY_FILE)
    row = {"number": number, "overrides": job, "run_dir": run_dir, "name": run_dir.name,
           "status": summary.status if summary else "new", "summary": summary, "cfg": cfg}
    checked = validate(cfg, check_device=measure)
    ipe = checked.iterations_per_epoch
    groups = _layer_groups(cfg, checked.spec)
    total = cfg.epochs * ipe
    row["schedule"] = functools.partial(run_schedule, cfg, len(groups), ipe)
    row.update(total=total, times=row["schedule"](total).times, adaptive=get_rule(cfg.strategy.name).adaptive,
               timing=_timing_key(cfg))
    resumable = summary is not None and (run_dir / CHECKPOINT_FILE).exists()
    row["start"] = summary.iterations_done if resumable else 0
    row["iterations"] = summary.iterations if resumable and summary.iterations else total
    return row


def _layer_groups(cfg, spec) -> list:
    """A job's layer groups: a built-in model's on the meta device, at no cost; a library or
    custom model's from a real build on the CPU (they are found on a forward pass)."""
    if model_kind(cfg.model) == "builtin":
        with torch.device("meta"):
            return build_model(cfg.model.name, spec.num_classes, spec.in_channels, **model_kwargs(cfg)).layer_groups()
    with torch.random.fork_rng(devices=[]):
        return build_external(cfg.model, spec.num_classes, spec.in_channels, tuple(spec.image_size),
                              pretrained=False).layer_groups()


def _timing_key(cfg) -> str:
    """The settings a step's time depends on: jobs that agree on them share one measurement."""
    c = OmegaConf.to_container(cfg, resolve=True)
    data = ("source", "name", "image_size", "channels", "augment", "kwargs")
    data += ("subset", "val_size") if c["cache_frozen"] else ()  # the cache's store grows with the images
    model = {k: v for k, v in c["model"].items() if k not in ("init", "init_strict")}  # weights: not the step's cost
    key = {"model": model, "data": {k: c["data"][k] for k in data},
           "optimizer": {k: v for k, v in c["optimizer"].items() if k != "lr"},
           **{k: c[k] for k in ("batch_size", "device", "precision", "channels_last", "compile", "cache_frozen",
                                "cache_memory_gb", "cache_host")}}
    return json.dumps(key, sort_keys=True)


def print_rows(master, rows: list[dict], skipped: list, step_times: str | None, busy: list[str] = ()) -> None:
    """The plan's table, its skipped duplicates, ``busy`` (step times measured on a busy machine)
    and the totals, last."""
    print(f"sweep dir: {master.hydra.sweep.dir}")
    print(f"{'#':>4}  {'status':<11} {'iterations':>12} {'predicted s':>12}  run directory")
    for r in rows:
        done = r["status"] in FINAL_STATUSES
        its = f"{r['summary'].iterations_done}/{r['summary'].iterations}" if done \
            else f"{r['start']}/{r['iterations']}"
        secs = "-" if done else f"{r['seconds']:.1f}" + ("*" if r["adaptive"] else "")
        print(f"{r['number']:>4}  {r['status']:<11} {its:>12} {secs:>12}  {r['name']}")
    for job, number in skipped:
        print(f"skipped duplicate: {' '.join(job)} (the same run as #{number})")
    for line in busy:
        print(line)
    todo = [r for r in rows if r["status"] not in FINAL_STATUSES]
    seconds, source = sum(r["seconds"] for r in todo), f"from {step_times}" if step_times else "measured here"
    print(f"jobs: {len(rows)}, done: {len(rows) - len(todo)}, to run: {len(todo)}; predicted training time "
          f"{seconds / 3600:.2f} h ({seconds:.0f} s; step times {source})")
    if any(r["adaptive"] for r in todo):
        print("*: an adaptive rule's schedule is known only once it runs: its time freezes nothing (an upper bound)")


if __name__ == "__main__":
    sys.exit(main())
