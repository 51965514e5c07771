"""The sweep plan's step times (``python -m freezeout.plan``): measured here once per distinct
(model, data, optimizer, batch size, precision...) through the engine, as the trainer's time
model takes them, or read from a file an earlier plan wrote; and a job's training seconds left.

Each measurement records the machine's load while it ran (``load``, as a run records its own:
:func:`~freezeout.rundir.load.measure_load`) and ``busy``, the warning the plan prints when other
work was heavy (:func:`~freezeout.rundir.load.busy_note`): seconds measured on a busy machine
predict that machine, not an idle one.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from ..data import dataset_spec, load_data
from ..freezing.optim import optimizer_factory
from ..models.factory import build_run_model
from ..models.flops import group_costs
from ..rundir.load import busy_note, measure_load
from ..rundir.provenance import device_name
from ..rundir.records import write_json_atomic
from ..speedup.formulas import const_time_iters, flops_speedup, freezing_stages, frozen_groups_at, time_speedup
from ..speedup.inputmodel import describe, measure_input
from ..speedup.timemodel import measure_stages, run_batches
from ..training.checks import validate
from ..training.devices import configure_backends
from ..training.step import run_step_factory


class PlanError(Exception):
    """Bad input: one line, exit status 2."""


def step_times_of(todo: list[dict], stored: dict, measure: bool) -> dict[str, dict]:
    """Seconds per step by frozen groups (and each stage's one-off start cost), per timing key:
    read from ``stored``, or measured once per key for every stage its jobs train through."""
    stages: dict[str, set[int]] = {}
    for r in todo:
        stages.setdefault(r["timing"], set()).update(freezing_stages(r["times"]))
    times = {}
    for key, needed in stages.items():
        if not measure:
            have = stored.get(key)
            missing = sorted(needed - set(have["stage_seconds"])) if have else sorted(needed)
            if missing:
                raise PlanError(f"the step times file has no step time for {_describe(key)} with "
                                f"{','.join(map(str, missing))} groups frozen; run the plan with --save-step-times "
                                "on the sweep's machine")
            times[key] = have
        else:
            cfg = next(r["cfg"] for r in todo if r["timing"] == key)
            print(f"measuring step times: {_describe(key)}, stages {sorted(needed)}", file=sys.stderr)
            times[key] = _measure(cfg, sorted(needed))
    return times


def _measure(cfg, stages: list[int]) -> dict:
    """The time model's measurement for one job's settings, as the trainer takes it
    (``predict_time``): its model, data, optimizer and step, through the engine."""
    checked = validate(cfg)
    device = checked.device
    configure_backends(device, cfg.precision)  # as the trainer
    model = build_run_model(cfg, device, checked.spec)
    data = load_data(cfg.data, device, spec=checked.spec, channels_last=cfg.channels_last)
    make_step, make_batches = run_step_factory(cfg, device, data.train_x), run_batches(cfg, data)
    with measure_load(device_name(device)) as load:  # what shared the machine while it measured
        seconds, events = measure_stages(model, stages, make_batches, optimizer_factory(cfg.optimizer), make_step)
    # streamed data: each stage's step as the larger of its computation and the loader's time a batch
    (seconds, events), info = measure_input(cfg, data, (seconds, events), None, 0)
    if info.get("input_seconds_per_step") is not None:
        print(f"  input: {info['loader_images_per_second']:.0f} images/s from the loader; {describe(info)}",
              file=sys.stderr)
    record = load.record()
    return {"stage_seconds": seconds, "event_seconds": events, "device": device_name(device), "load": record,
            "busy": busy_note(record)}


def busy_lines(times: dict[str, dict]) -> list[str]:
    """One line per measurement taken on a busy machine (``busy``), naming its settings."""
    return [f"note: step times for {_describe(key)} {t['busy']}" for key, t in times.items() if t.get("busy")]


def predict_row(row: dict, times: dict) -> tuple[int, float]:
    """(iterations, training seconds left) of a job: the time model integrated over its schedule
    from where it resumes; a new const_time job first sets its length as the trainer does."""
    cfg, stage, events = row["cfg"], times["stage_seconds"], times["event_seconds"]
    total = row["iterations"]
    if cfg.const_time and row["start"] == 0:  # T' = T / (1 - s), s: time when measured, else flops
        if cfg.predict_time:
            s = time_speedup(stage, row["times"], events, row["total"])
        else:
            spec = dataset_spec(cfg.data)
            model = build_run_model(cfg, torch.device("cpu"))
            s = flops_speedup(group_costs(model, (1, spec.in_channels, *spec.image_size)), row["times"])
        total = const_time_iters(row["total"], s)
    sched_times = row["schedule"](total).times if total != row["total"] else row["times"]
    return total, remaining_seconds(stage, events, sched_times, total, row["start"])


def remaining_seconds(stage_seconds: dict, event_seconds: dict, times, total: int, start: int = 0) -> float:
    """Training seconds from iteration ``start`` to ``total`` of a schedule with freezing times
    ``times``: each stage's step time over the iterations it lasts, plus the start cost of the
    stages still ahead (at ``start=0``: ``total * stage_seconds[0] * (1 - time_speedup)``)."""
    bounds = sorted({0.0, 1.0, *(t for t in times if 0.0 < t < 1.0)})
    seconds = 0.0
    for a, b in zip(bounds, bounds[1:]):
        k, lo = frozen_groups_at(a, times), max(a, start / total)
        if b > lo:
            seconds += stage_seconds[k] * (b - lo) * total
            seconds += event_seconds.get(k, 0.0) if k > 0 and a >= start / total else 0.0
    return seconds


def _describe(key: str) -> str:
    k = json.loads(key)
    model = " ".join(f"{n}={v}" for n, v in k["model"].items() if n != "name")
    return (f"{k['model']['name']} ({model}) on {k['data']['name']}, batch {k['batch_size']}, "
            f"{k['optimizer']['name']}, {k['precision']}, device={k['device']}")


def read_step_times(path: str) -> dict:
    try:
        entries = json.loads(Path(path).read_text())["entries"]
        by_stage = lambda d: {int(k): float(v) for k, v in d.items()}  # noqa: E731 (JSON keys are strings)
        return {json.dumps(e["key"], sort_keys=True): {
            "stage_seconds": by_stage(e["stage_seconds"]), "event_seconds": by_stage(e.get("event_seconds", {})),
            "device": e.get("device"), "load": e.get("load"), "busy": busy_note(e.get("load"))} for e in entries}
    except OSError as e:
        raise PlanError(f"cannot read --step-times {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise PlanError(f"--step-times {path} is not a step times file written by --save-step-times "
                        f"({type(e).__name__}: {e})") from None


def write_step_times(path: str, times: dict) -> None:
    write_json_atomic(path, {"entries": [{"key": json.loads(k), **v} for k, v in times.items()]})
    print(f"step times written to {path}", file=sys.stderr)
