"""Speed sections: the time model, realisation of predicted speedups by real runs, throughput,
harness overhead, frozen-prefix cost, and torch.compile's graph counts."""
from __future__ import annotations

import copy
import statistics
from pathlib import Path

import torch

from .loops import HELPER_ITERS, BareLoop, HarnessLoop, alternate, batch_stream, frozen_controller
from .settings import _num, _pct, _ratio, say

#: The harness may cost at most 3% over a bare loop; a step with a frozen prefix at most 25% more
#: than a forward pass alone (the backward of the head and the optimizer are nearly free).
OVERHEAD_TARGET = 1.03
FROZEN_PREFIX_TARGET = 1.25


def time_model(model0, data, cfg, device, t0s: list[float], strategy: str, repeats: int, steps: int) -> dict:
    """``calc_speedup(method="time")`` for every t_0 from one set of stage measurements."""
    from ..schedule import layer_times
    from ..speedup import flops_speedup, freezing_stages, group_costs, measure_stage_seconds, time_speedup
    from ..trainer import make_train_step

    n = len(model0.layer_groups())
    schedules = {t: layer_times(n, t, strategy) for t in t0s}
    stages = sorted(set().union(*(freezing_stages(s) for s in schedules.values())))
    stream = batch_stream(data, cfg.batch_size, cfg.seed + 1, cfg.data.augment)
    channels_last = bool(cfg.channels_last)  # a plain local: this runs inside the timed step

    def make_batch():
        x, y = next(stream)
        return (x.contiguous(memory_format=torch.channels_last) if channels_last else x), y

    def make_step(probe, optimizer):
        """The trainer's step, built once per probe (so a compiled probe compiles in warm-up)."""
        if cfg.compile:
            _dynamo_reset()  # each probe starts within dynamo's recompile limit
        return make_train_step(probe, optimizer, cfg.precision, device, cfg.compile)

    say(f"time model: step seconds (lower quartile) with k of {n} groups frozen ({steps} steps per stage, "
        f"{repeats} repeat(s), best of repeats)")
    samples: dict[int, list[float]] = {k: [] for k in stages}
    for r in range(repeats):
        line = []
        for k in stages:  # the same order each repeat: two samples of a stage lie a sweep apart
            seconds = measure_stage_seconds(model0, make_batch, [k], steps=steps, warmup=2,
                                            make_step=make_step)[k]
            samples[k].append(seconds)
            line.append(f"k={k}:{seconds:.4f}")
        say(f"  repeat {r + 1}: " + "  ".join(line))
    stage_seconds = {k: min(v) for k, v in samples.items()}  # best of repeats, as for the runs
    costs = group_costs(model0, (1, *data.train_x.shape[1:]))
    predicted = {}
    for t in t0s:
        predicted[t] = {"time": time_speedup(stage_seconds, schedules[t]),
                        "flops": flops_speedup(costs, t, strategy)}
        say(f"  predicted speedup {strategy} t_0={t}: time {_pct(predicted[t]['time'])}  "
            f"flops {_pct(predicted[t]['flops'])}")
    return {"stages": stages, "stage_seconds": {str(k): v for k, v in stage_seconds.items()},
            "stage_seconds_samples": {str(k): v for k, v in samples.items()},
            "group_forward_flops": costs, "predicted": predicted}


def _dynamo_reset() -> None:
    """Forget every compiled graph and zero dynamo's counters (imported only with --compile)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()


def compile_counts() -> dict[str, int]:
    """Dynamo's counters since the last reset: graphs compiled, frames, recompile-limit hits."""
    from torch._dynamo.utils import counters

    limit_hits = sum(v for k, v in counters["unimplemented"].items() if "recompile limit" in k.lower())
    return {"unique_graphs": counters["stats"]["unique_graphs"], "frames_total": counters["frames"]["total"],
            "frames_ok": counters["frames"]["ok"], "graph_breaks": sum(counters["graph_break"].values()),
            "recompile_limit_hits": limit_hits}


def realisation(args, configs: dict, predicted: dict, workdir: Path) -> dict:
    """Baseline and FreezeOut runs through ``trainer.train``, alternating: B F.. B F.. ..."""
    from ..trainer import train

    labels = ["baseline", *(f"t_0={t}" for t in args.t0)]
    runs = []
    say(f"realisation: trainer.train runs, {args.repeats} repeat(s) of {' '.join(labels)}, best of repeats")
    for r in range(args.repeats):
        for label in labels:
            cfg = configs[label]
            if cfg.compile:
                _dynamo_reset()
            summary = train(cfg, workdir / f"repeat{r}-{label}")
            if summary["status"] != "completed":
                raise RuntimeError(f"{label} run {summary['status']}: {summary.get('error')}")
            seconds, iters = summary["train_seconds"], summary["iterations_done"]
            run = {"repeat": r, "label": label, "strategy": cfg.strategy.name,
                   "t_0": None if label == "baseline" else cfg.t_0, "train_seconds": seconds,
                   "iterations": iters, "images_per_second": iters * cfg.batch_size / seconds,
                   "final_val_err": summary["final_val_err"], "frozen_groups": summary["frozen_groups"],
                   "compile": compile_counts() if cfg.compile else None}
            runs.append(run)
            say(f"  repeat {r + 1}  {label:<10} {seconds:8.2f} s  {iters} steps  "
                f"{run['images_per_second']:8.1f} img/s  val err {_pct(run['final_val_err'])}  "
                f"frozen {run['frozen_groups']}/{summary['num_groups']}"
                + (f"  graphs {run['compile']['unique_graphs']}" if run["compile"] else ""))

    def seconds_of(label, pick):
        return pick([x["train_seconds"] for x in runs if x["label"] == label])

    base, base_mean = seconds_of("baseline", min), seconds_of("baseline", statistics.mean)
    by_t0 = []
    say(f"  {'t_0':>5} {'measured':>9} {'pred time':>10} {'pred flops':>11} {'meas/time':>10} {'meas/flops':>11}"
        f"  {'(mean of repeats)':>18}")
    for t in args.t0:
        fo, fo_mean = seconds_of(f"t_0={t}", min), seconds_of(f"t_0={t}", statistics.mean)
        measured = 1.0 - fo / base
        row = {"t_0": t, "baseline_seconds": base, "freezeout_seconds": fo, "measured_speedup": measured,
               "measured_speedup_mean": 1.0 - fo_mean / base_mean, "predicted_time": predicted[t]["time"],
               "predicted_flops": predicted[t]["flops"],
               "realisation_time": _ratio(measured, predicted[t]["time"]),
               "realisation_flops": _ratio(measured, predicted[t]["flops"])}
        by_t0.append(row)
        say(f"  {t:>5} {_pct(measured):>9} {_pct(row['predicted_time']):>10} {_pct(row['predicted_flops']):>11} "
            f"{_num(row['realisation_time']):>10} {_num(row['realisation_flops']):>11}"
            f"  {_pct(row['measured_speedup_mean']):>18}")
    return {"order": "alternating: " + ", ".join(labels) + ", repeated", "runs": runs, "by_t0": by_t0,
            "seconds": "best of repeats (contention only slows a run down); *_mean: mean of repeats"}


def throughput(runs: list[dict], t_0: float, batch_size: int) -> dict:
    """Images per second over the whole schedule: the best repeat, and all repeats pooled."""
    def rate(label, pooled=False):
        chosen = [x for x in runs if x["label"] == label]
        if pooled:
            return batch_size * sum(x["iterations"] for x in chosen) / sum(x["train_seconds"] for x in chosen)
        return max(x["images_per_second"] for x in chosen)

    out = {"baseline_images_per_second": rate("baseline"),
           "freezeout_images_per_second": rate(f"t_0={t_0}"), "freezeout_t_0": t_0,
           "baseline_images_per_second_mean": rate("baseline", True),
           "freezeout_images_per_second_mean": rate(f"t_0={t_0}", True)}
    say(f"throughput: baseline {out['baseline_images_per_second']:.1f} img/s, FreezeOut t_0={t_0} "
        f"{out['freezeout_images_per_second']:.1f} img/s")
    return out


def overhead(model0, data, cfg, device, args) -> dict:
    """The trainer's loop (strategy=none) against a bare loop, same weights and batches."""
    from ..freezer import FreezeOut

    harness_model, bare_model = copy.deepcopy(model0), copy.deepcopy(model0)
    freezer = FreezeOut(harness_model.layer_groups(), HELPER_ITERS, 1.0, "none", cfg.lr, cfg.scale_lr,
                        cfg.momentum, cfg.nesterov, cfg.weight_decay)
    harness = HarnessLoop(harness_model, freezer, 0, cfg, device,
                          batch_stream(data, cfg.batch_size, cfg.seed, cfg.data.augment))
    bare = BareLoop(bare_model, cfg, device, batch_stream(data, cfg.batch_size, cfg.seed, cfg.data.augment))
    r = alternate(harness, bare, args.chunks, args.chunk_steps, device)
    out = {"harness_step_seconds": r["a_step_seconds"], "bare_step_seconds": r["b_step_seconds"],
           "ratio": r["ratio"], "ratio_of_totals": r["ratio_of_totals"],
           "harness_chunk_step_seconds": r["a_chunk_step_seconds"],
           "bare_chunk_step_seconds": r["b_chunk_step_seconds"], "target": OVERHEAD_TARGET}
    out["pass"] = out["ratio"] <= OVERHEAD_TARGET
    say(f"overhead: harness {out['harness_step_seconds']:.4f} s/step, bare {out['bare_step_seconds']:.4f} "
        f"s/step -> ratio {out['ratio']:.3f} (of totals {out['ratio_of_totals']:.3f}; target <= "
        f"{OVERHEAD_TARGET}: {'PASS' if out['pass'] else 'FAIL'})")
    return out


def frozen_prefix(model0, data, cfg, device, args) -> dict:
    """A harness step with all but the head frozen against a forward pass alone."""
    frozen_model, forward_model = copy.deepcopy(model0), copy.deepcopy(model0)
    n = len(frozen_model.layer_groups())
    freezer, j = frozen_controller(frozen_model, n - 1, cfg)
    step = HarnessLoop(frozen_model, freezer, j, cfg, device,
                       batch_stream(data, cfg.batch_size, cfg.seed, cfg.data.augment))
    forward = BareLoop(forward_model, cfg, device,
                       batch_stream(data, cfg.batch_size, cfg.seed, cfg.data.augment), backward=False)
    r = alternate(step, forward, args.chunks, args.chunk_steps, device)
    out = {"frozen_groups": n - 1, "num_groups": n, "step_seconds": r["a_step_seconds"],
           "forward_seconds": r["b_step_seconds"], "ratio": r["ratio"], "ratio_of_totals": r["ratio_of_totals"],
           "step_chunk_seconds": r["a_chunk_step_seconds"], "forward_chunk_seconds": r["b_chunk_step_seconds"],
           "target": FROZEN_PREFIX_TARGET}
    out["pass"] = out["ratio"] <= FROZEN_PREFIX_TARGET
    say(f"frozen prefix: step with {n - 1}/{n} groups frozen {out['step_seconds']:.4f} s, forward alone "
        f"{out['forward_seconds']:.4f} s -> ratio {out['ratio']:.3f} (target <= {FROZEN_PREFIX_TARGET}: "
        f"{'PASS' if out['pass'] else 'FAIL'})")
    return out


def compile_section(runs: list[dict], t_0: float) -> dict:
    """Graphs compiled by the baseline and FreezeOut runs; the difference is what freezing costs."""
    import torch._dynamo
    def mean_of(label, key):
        return statistics.mean(x["compile"][key] for x in runs if x["label"] == label)

    base, fo = mean_of("baseline", "unique_graphs"), mean_of(f"t_0={t_0}", "unique_graphs")
    out = {"baseline_graphs": base, "freezeout_graphs": fo, "recompiles_from_freezing": fo - base,
           "freezeout_t_0": t_0, "baseline_recompile_limit_hits": mean_of("baseline", "recompile_limit_hits"),
           "freezeout_recompile_limit_hits": mean_of(f"t_0={t_0}", "recompile_limit_hits"),
           "recompile_limit": torch._dynamo.config.recompile_limit}
    say(f"compile: baseline {base:g} graphs, FreezeOut t_0={t_0} {fo:g} graphs -> {fo - base:g} recompiles "
        f"from freezing; recompile-limit ({out['recompile_limit']}) hits: baseline "
        f"{out['baseline_recompile_limit_hits']:g}, FreezeOut {out['freezeout_recompile_limit_hits']:g}")
    if out["baseline_recompile_limit_hits"] or out["freezeout_recompile_limit_hits"]:
        say("  dynamo refused further recompiles: from then on the code objects it names run eager, so the "
            "count above is capped (torch._dynamo.config.recompile_limit)")
    say("  note: train_seconds include compilation, so the measured speedups above pay for recompiles")
    return out
