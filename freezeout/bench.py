"""``python -m freezeout.bench``: does FreezeOut's predicted speedup show up on the wall clock, and
what does the harness itself cost? One model, one dataset, one device; every figure is printed as
soon as it is measured, and everything is written to ``--out`` as JSON.

    python -m freezeout.bench                                  # DenseNet-BC L=16 k=12, Fashion-MNIST
    python -m freezeout.bench --device cuda --precision bf16 --channels-last --compile
    python -m freezeout.bench --model wrn --depth 16 --hparam widen_factor=4 --data cifar10

Sections:

- **time model**: median step time with the first ``k`` groups frozen, for every freezing stage of
  the schedules (``speedup.measure_stage_seconds`` with the trainer's step; all stages once per
  repeat, best of repeats), integrated by ``speedup.time_speedup``: ``calc_speedup(method="time")``,
  measured once for all ``--t0``.
- **realisation**: ``trainer.train`` on a composed config (the real harness), baseline and FreezeOut
  in this process, alternating ``--repeats`` times: B F(t0_1) F(t0_2) B F(t0_1) F(t0_2) ...
  measured speedup = 1 - FreezeOut train_seconds / baseline train_seconds (training steps only,
  synchronised on CUDA), each the best of its repeats: contention from other jobs only ever slows
  a run down, and alternating keeps a burst from hitting every run of one kind (the mean-based
  figure is in the JSON too). Reported against the time and FLOP predictions.
- **throughput**: images per second of those runs, baseline and FreezeOut at the last ``--t0``.
- **overhead**: the trainer's loop (controller with ``strategy=none``, ``make_train_step``, loss read
  back every ``log_every``) against a bare PyTorch loop (plain SGD over all parameters), same
  initial weights and batches, timed in alternating chunks of steps.
- **frozen prefix**: a harness step with every group but the head frozen, against a forward pass
  alone (``model(x)`` + loss in train mode, autograd recording as usual, no backward).
- **memory**: with 0, half and all-but-head groups frozen: bytes autograd saves during one forward
  (``saved_tensors_hooks``, unique storages, parameters excluded) + parameters + gradients +
  momentum; CUDA's allocator peak on GPUs; on CPUs also the peak RSS of a fresh subprocess per
  configuration (RSS only grows within a process).
- **compile** (``--compile``): dynamo's graph counts of the baseline and FreezeOut runs: graphs
  compiled when groups freeze, and hits of dynamo's recompile limit (after which code runs eager).
  ``--compile`` applies to the runs and the time model; the overhead, frozen-prefix and memory
  comparisons stay eager (two models compiled in one process would share dynamo's caches).
"""
from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The harness may cost at most 3% over a bare loop; a step with a frozen prefix at most 25% more
#: than a forward pass alone (the backward of the head and the optimizer are nearly free).
OVERHEAD_TARGET = 1.03
FROZEN_PREFIX_TARGET = 1.25
#: Enough iterations that no helper controller freezes its next group during a measurement.
HELPER_ITERS = 10**9
PROBE_TAG = "MEMORY_PROBE "


def say(message: str = "") -> None:
    """Print at once: the benchmark takes minutes and every figure should show when it is known."""
    print(message, flush=True)


# --- arguments and config ----------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from .config import PRECISIONS

    p = argparse.ArgumentParser(prog="python -m freezeout.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="densenet", help="registered model name")
    p.add_argument("--depth", type=int, default=16, help="model depth (for models that take one)")
    p.add_argument("--growth-rate", type=int, default=12, help="DenseNet growth rate k (other models: ignored)")
    p.add_argument("--hparam", action="append", default=[], metavar="KEY=VALUE",
                   help="any other model hyperparameter, repeatable (e.g. widen_factor=4)")
    p.add_argument("--data", default="fashion_mnist", help="cifar10 | cifar100 | fashion_mnist")
    p.add_argument("--data-root", default="data")
    p.add_argument("--subset", type=int, default=4096, help="training images")
    p.add_argument("--val-size", type=int, default=500,
                   help="validation images, evaluated after each epoch (outside train_seconds)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile each layer group, as the trainer does")
    p.add_argument("--repeats", type=int, default=2, help="baseline/FreezeOut rounds (and time-model rounds)")
    p.add_argument("--strategy", default="cubic", choices=("linear", "squared", "cubic"))
    p.add_argument("--t0", type=float, nargs="+", default=[0.5, 0.8], help="t_0 values to realise")
    p.add_argument("--stage-steps", type=int, default=8, help="timed steps per time-model stage and repeat")
    p.add_argument("--chunks", type=int, default=12, help="alternating chunk pairs in the step-time comparisons")
    p.add_argument("--chunk-steps", type=int, default=4, help="steps per chunk")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rss", action="store_true", help="skip the CPU peak-RSS subprocesses")
    p.add_argument("--out", default="bench-results/bench.json")
    p.add_argument("--_memory-probe", dest="memory_probe", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("repeats", "stage_steps", "chunks", "chunk_steps", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}={getattr(args, name)}; need >= 1")
    if not all(0.0 < t < 1.0 for t in args.t0):
        p.error(f"--t0 {args.t0}: each value must lie in (0, 1) (t_0 = 1 is the baseline)")
    return args


def model_overrides(args: argparse.Namespace) -> list[str]:
    """``model.KEY=VALUE`` overrides: --depth/--growth-rate where the model takes them, --hparam."""
    from .models import model_hparams

    try:
        accepted = model_hparams(args.model)
    except ValueError as e:  # unknown model: say which exist
        raise SystemExit(f"error: {e}") from None
    hparams = {"depth": args.depth, "growth_rate": args.growth_rate}
    out = [f"model.{k}={v}" for k, v in hparams.items() if k in accepted]
    for item in args.hparam:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --hparam {item!r}: expected KEY=VALUE")
        out = [o for o in out if not o.startswith(f"model.{key}=")] + [f"model.{key}={value}"]
    return out


def compose_config(args: argparse.Namespace, strategy: str = "none", t_0: float = 0.8):
    """The run config a user would get from ``run.py`` with the benchmark's settings (Hydra compose
    on ``conf/``), minus checkpoints, progress bars and the test split."""
    from hydra import compose, initialize_config_dir

    from .config import register_configs

    os.environ.setdefault("FREEZEOUT_ROOT", str(REPO_ROOT))  # sweeps/ as a config group
    register_configs()
    overrides = [
        f"model={args.model}", *model_overrides(args), f"data={args.data}", f"data.subset={args.subset}",
        f"data.val_size={args.val_size}", f"strategy={strategy}", f"t_0={t_0}", f"epochs={args.epochs}",
        f"batch_size={args.batch_size}", f"device={args.device}", f"precision={args.precision}",
        f"channels_last={str(args.channels_last).lower()}", f"compile={str(args.compile).lower()}",
        f"seed={args.seed}", "checkpoint=false", "progress=false", "eval_test=false", "predict_time=false",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    cfg.data.root = str(Path(args.data_root).expanduser().resolve())  # any path, no override quoting
    return cfg


def build(cfg, device: torch.device):
    """The run's model with the run's initial weights, as ``trainer.train`` builds it."""
    from .config import model_kwargs
    from .data import dataset_spec
    from .models import build_model

    spec = dataset_spec(cfg.data.name)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model.name, spec.num_classes, spec.in_channels, **model_kwargs(cfg)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.train()


def _amp_dtype(precision: str):
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or not math.isfinite(a) or not math.isfinite(b):
        return None
    return a / b


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


# --- loops: the trainer's, a bare one, a forward alone -------------------------------------------

def batch_stream(data, batch_size: int, seed: int, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches from ``data.train_batches``; equal seeds give equal batches."""
    from .data import train_batches

    gen = torch.Generator(device=data.train_x.device).manual_seed(seed)
    while True:
        yield from train_batches(data.train_x, data.train_y, batch_size, gen, augment)


def frozen_controller(model, k: int, cfg):
    """A FreezeOut controller over ``model`` with exactly its first ``k`` groups frozen (the real
    freezing: requires_grad off, out of the optimizer, BatchNorm in eval); returns it and the
    iteration it stands at."""
    from .freezer import FreezeOut

    freezer = FreezeOut(model.layer_groups(), HELPER_ITERS, 0.5, "cubic", cfg.lr, cfg.scale_lr,
                        cfg.momentum, cfg.nesterov, cfg.weight_decay)
    j = freezer.freeze_at[k - 1] if k > 0 else 0
    if freezer.step(j) != k:
        raise RuntimeError(f"could not freeze exactly {k} groups")
    return freezer, j


class HarnessLoop:
    """The inner loop of ``trainer._loop``, step for step: draw a batch, ``freezer.step(j)``,
    channels-last input, the trainer's step, loss summed on the device and read back every
    ``log_every`` iterations (the loop's only host sync). Settings are plain attributes, as the
    trainer's are plain locals: a config lookup per step costs more than the controller."""

    def __init__(self, model, freezer, j: int, cfg, device, batches, compile_model: bool = False):
        from .trainer import make_train_step

        self.freezer, self.j, self.batches = freezer, j, batches
        self.log_every, self.channels_last = int(cfg.log_every), bool(cfg.channels_last)
        self.step = make_train_step(model, freezer.optimizer, cfg.precision, device, compile_model)
        self.loss_sum = torch.zeros((), device=device)
        self.seen = 0

    def run(self, steps: int) -> None:
        for _ in range(steps):
            x, y = next(self.batches)
            self.freezer.step(self.j)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            self.loss_sum += self.step(x, y)
            self.j, self.seen = self.j + 1, self.seen + 1
            if self.j % self.log_every == 0:
                self.loss_sum.item() / self.seen


class BareLoop:
    """What one writes by hand: one SGD over all parameters (same hyperparameters, constant rate),
    autocast when asked, loss read back every ``log_every`` steps. ``backward=False`` makes it a
    forward pass alone: ``model(x)`` + loss in train mode, the graph recorded and dropped."""

    def __init__(self, model, cfg, device, batches, backward: bool = True):
        self.model, self.device, self.batches, self.backward = model, device, batches, backward
        self.log_every, self.channels_last = int(cfg.log_every), bool(cfg.channels_last)
        self.amp = _amp_dtype(cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
        self.j = 0

    def run(self, steps: int) -> None:
        for _ in range(steps):
            x, y = next(self.batches)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
                loss = F.cross_entropy(self.model(x), y)
            if self.backward:
                self.opt.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.opt)
                    self.scaler.update()
                else:
                    loss.backward()
                    self.opt.step()
            self.j += 1
            if self.j % self.log_every == 0:
                loss.item()


def alternate(a, b, chunks: int, chunk_steps: int, device, warmup: int = 2) -> dict[str, Any]:
    """Seconds per step of loops ``a`` and ``b``, timed in chunks of ``chunk_steps`` steps in the
    order a b | b a | a b ..., so that drift and contention bursts hit both alike. ``ratio`` is the
    median of the per-pair ratios a/b (robust to a burst in one chunk)."""
    a.run(warmup)
    b.run(warmup)
    times: dict[str, list[float]] = {"a": [], "b": []}
    for c in range(chunks):
        for name in ("ab" if c % 2 == 0 else "ba"):
            loop = a if name == "a" else b
            _sync(device)
            start = time.perf_counter()
            loop.run(chunk_steps)
            _sync(device)
            times[name].append((time.perf_counter() - start) / chunk_steps)
    pairs = [x / y for x, y in zip(times["a"], times["b"])]
    return {
        "a_step_seconds": statistics.median(times["a"]), "b_step_seconds": statistics.median(times["b"]),
        "ratio": statistics.median(pairs), "ratio_of_totals": sum(times["a"]) / sum(times["b"]),
        "a_chunk_step_seconds": times["a"], "b_chunk_step_seconds": times["b"],
    }


# --- sections ------------------------------------------------------------------------------------

def time_model(model0, data, cfg, device, t0s: list[float], strategy: str, repeats: int, steps: int) -> dict:
    """``calc_speedup(method="time")`` for every t_0 from one set of stage measurements."""
    from .schedule import layer_times
    from .speedup import flops_speedup, freezing_stages, group_costs, measure_stage_seconds, time_speedup
    from .trainer import make_train_step

    n = len(model0.layer_groups())
    schedules = {t: layer_times(n, t, strategy) for t in t0s}
    stages = sorted(set().union(*(freezing_stages(s) for s in schedules.values())))
    stream = batch_stream(data, cfg.batch_size, cfg.seed + 1, cfg.data.augment)
    cached: dict[str, Any] = {}
    channels_last = bool(cfg.channels_last)  # a plain local: this runs inside the timed step

    def step_fn(probe, optimizer, x, y):
        """The trainer's step, built once per probe (so a compiled probe compiles once, in warmup)."""
        if cached.get("optimizer") is not optimizer:
            if cfg.compile:
                _dynamo_reset()  # each probe starts within dynamo's recompile limit
            cached.update(optimizer=optimizer,
                          step=make_train_step(probe, optimizer, cfg.precision, device, cfg.compile))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cached["step"](x, y)

    say(f"time model: median step seconds with k of {n} groups frozen ({steps} steps per stage, "
        f"{repeats} repeat(s), best of repeats)")
    samples: dict[int, list[float]] = {k: [] for k in stages}
    for r in range(repeats):
        line = []
        for k in stages:  # the same order each repeat: two samples of a stage lie a sweep apart
            seconds = measure_stage_seconds(model0, lambda: next(stream), [k], steps=steps, warmup=1,
                                            step_fn=step_fn)[k]
            samples[k].append(seconds)
            line.append(f"k={k}:{seconds:.4f}")
        say(f"  repeat {r + 1}: " + "  ".join(line))
    cached.clear()
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
    from .trainer import train

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
    from .freezer import FreezeOut

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


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def model_memory(model, freezer, step_fn: Callable[[], None]) -> dict[str, float]:
    """MiB autograd saves for backward during one step (unique storages, parameters and buffers
    excluded), and the MiB of parameters, gradients and momentum buffers after it."""
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = max(saved.get(storage.data_ptr(), 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step_fn()
    mib = 2.0**20
    params = _tensor_bytes(model.parameters()) / mib
    grads = _tensor_bytes(p.grad for p in model.parameters() if p.grad is not None) / mib
    momentum = _tensor_bytes(s["momentum_buffer"] for s in freezer.optimizer.state.values()
                             if s.get("momentum_buffer") is not None) / mib
    acts = sum(saved.values()) / mib
    return {"saved_activations_mb": acts, "params_mb": params, "grads_mb": grads, "momentum_mb": momentum,
            "model_total_mb": acts + params + grads + momentum}


def memory(model0, data, cfg, device, args, argv: list[str]) -> dict:
    """Memory with 0 / half / all-but-head groups frozen (eager, even with --compile)."""
    n = len(model0.layer_groups())
    ks = sorted({0, n // 2, n - 1})
    rows = []
    say(f"memory (MiB) with k of {n} groups frozen:")
    for k in ks:
        model = copy.deepcopy(model0)
        freezer, j = frozen_controller(model, k, cfg)
        loop = HarnessLoop(model, freezer, j, cfg, device,
                           batch_stream(data, cfg.batch_size, cfg.seed, cfg.data.augment))
        loop.run(1)  # gradients and momentum buffers exist from now on
        row = {"frozen_groups": k, **model_memory(model, freezer, functools.partial(loop.run, 1))}
        row["cuda_peak_mb"] = row["cuda_step_peak_mb"] = None
        if device.type == "cuda":
            _sync(device)
            torch.cuda.reset_peak_memory_stats(device)
            resident = torch.cuda.memory_allocated(device)
            loop.run(2)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device)
            row["cuda_peak_mb"], row["cuda_step_peak_mb"] = peak / 2**20, (peak - resident) / 2**20
        row["rss_peak_mb"] = row["rss_step_growth_mb"] = None
        if device.type == "cpu" and not args.no_rss:
            probe = _run_memory_probe(argv, k)
            row["rss_peak_mb"], row["rss_step_growth_mb"] = probe["rss_peak_mb"], probe["rss_step_growth_mb"]
        rows.append(row)
        del loop, freezer, model
        if device.type == "cuda":
            torch.cuda.empty_cache()
        say(f"  k={k:<3} saved activations {row['saved_activations_mb']:8.2f}  params+grads+momentum "
            f"{row['params_mb'] + row['grads_mb'] + row['momentum_mb']:7.2f}  total {row['model_total_mb']:8.2f}"
            + (f"  CUDA peak {row['cuda_peak_mb']:.1f} (steps {row['cuda_step_peak_mb']:.1f})"
               if row["cuda_peak_mb"] is not None else "")
            + (f"  RSS peak {row['rss_peak_mb']:.1f} (steps {row['rss_step_growth_mb']:.1f})"
               if row["rss_peak_mb"] is not None else ""))
    key = "cuda_peak_mb" if device.type == "cuda" else "model_total_mb"
    values = [r[key] for r in rows]
    falls = all(b < a for a, b in zip(values, values[1:]))
    rss = [r["rss_peak_mb"] for r in rows]
    out = {"configs": rows, "measure": key, "falls": falls,
           "rss_falls": all(b < a for a, b in zip(rss, rss[1:])) if None not in rss else None,
           "note": "eager mode; model_total_mb = autograd-saved tensors + params + grads + momentum"}
    say(f"  peak memory falls as groups freeze ({key}): {'PASS' if falls else 'FAIL'}")
    return out


def _run_memory_probe(argv: list[str], k: int) -> dict:
    """Peak RSS of one configuration in a fresh interpreter (RSS never falls within a process)."""
    cmd = [sys.executable, "-m", "freezeout.bench", *argv, "--_memory-probe", str(k)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    lines = [x for x in done.stdout.splitlines() if x.startswith(PROBE_TAG)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"memory probe k={k} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len(PROBE_TAG):])


def memory_probe(args: argparse.Namespace, k: int) -> dict:
    """Inside the probe subprocess: a few harness steps with ``k`` groups frozen on a random batch
    of the dataset's shape (no dataset loaded: the probe's RSS is the model's and the step's)."""
    from .config import validate
    from .data import dataset_spec

    cfg = compose_config(args)
    device = validate(cfg)
    spec = dataset_spec(cfg.data.name)
    model = build(cfg, device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    shape = (cfg.batch_size, spec.in_channels, spec.image_size, spec.image_size)
    x = torch.randn(shape, generator=gen, device=device)
    y = torch.randint(0, spec.num_classes, (cfg.batch_size,), generator=gen, device=device)
    freezer, j = frozen_controller(model, k, cfg)

    def batches():
        while True:
            yield x, y

    loop = HarnessLoop(model, freezer, j, cfg, device, batches())
    before = peak_rss_mb()
    loop.run(3)
    after = peak_rss_mb()
    return {"frozen_groups": k, "rss_peak_mb": after, "rss_step_growth_mb": after - before}


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB. Linux's ``VmHWM`` belongs to the process's own address space;
    ``getrusage``'s ``ru_maxrss`` would not do in a child: it carries the parent's peak over exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# --- main ------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the results (also written to ``--out`` as JSON)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        say(PROBE_TAG + json.dumps(memory_probe(args, args.memory_probe)))
        return {}

    from .config import validate
    from .data import load_data
    from .metrics import write_json_atomic
    from .provenance import device_name, git_revision, library_versions

    started = time.perf_counter()
    configs = {"baseline": compose_config(args)}
    for t in args.t0:
        configs[f"t_0={t}"] = compose_config(args, args.strategy, t)
    cfg = configs["baseline"]
    device = validate(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does
    data = load_data(cfg.data.name, cfg.data.root, device, cfg.data.val_size, cfg.data.subset,
                     download=cfg.data.download)
    model0 = build(cfg, device)
    n = len(model0.layer_groups())
    hparams = {k: v for k, v in cfg.model.items() if k != "name"}
    iters = args.epochs * (len(data.train_x) // cfg.batch_size)
    results: dict[str, Any] = {
        "settings": {**{k: v for k, v in vars(args).items() if k != "memory_probe"},
                     "data_root": cfg.data.root, "threads": torch.get_num_threads(),
                     "log_every": cfg.log_every, "lr": cfg.lr, "iterations": iters},
        "environment": {"device": device_name(device), "torch": torch.__version__,
                        "git_revision": git_revision(), "versions": library_versions(),
                        "platform": platform.platform()},
        "model": {"name": cfg.model.name, "hparams": hparams, "num_groups": n,
                  "num_params": sum(p.numel() for p in model0.parameters())},
    }
    say(f"FreezeOut benchmark: {cfg.model.name}({', '.join(f'{k}={v}' for k, v in hparams.items())}), "
        f"{n} groups, on {cfg.data.name} ({len(data.train_x)} images, batch {cfg.batch_size}, "
        f"{args.epochs} epochs = {iters} steps)")
    say(f"device {results['environment']['device']}, torch {torch.__version__}, {cfg.precision}"
        f"{', channels-last' if cfg.channels_last else ''}{', compile' if cfg.compile else ''}, "
        f"git {results['environment']['git_revision']}")

    with tempfile.TemporaryDirectory(prefix="freezeout-bench-") as tmp:
        results["time_model"] = time_model(model0, data, cfg, device, args.t0, args.strategy, args.repeats,
                                           args.stage_steps)
        results["realisation"] = realisation(args, configs, results["time_model"]["predicted"], Path(tmp))
    results["throughput"] = throughput(results["realisation"]["runs"], args.t0[-1], cfg.batch_size)
    if cfg.compile:
        _dynamo_reset()
    results["overhead"] = overhead(model0, data, cfg, device, args)
    results["frozen_prefix"] = frozen_prefix(model0, data, cfg, device, args)
    results["memory"] = memory(model0, data, cfg, device, args, argv)
    results["compile"] = compile_section(results["realisation"]["runs"], args.t0[-1]) if cfg.compile else None
    results["targets"] = {
        "overhead": {"value": results["overhead"]["ratio"], "target": f"<= {OVERHEAD_TARGET}",
                     "pass": bool(results["overhead"]["pass"])},
        "frozen_prefix": {"value": results["frozen_prefix"]["ratio"], "target": f"<= {FROZEN_PREFIX_TARGET}",
                          "pass": bool(results["frozen_prefix"]["pass"])},
        "memory_falls": {"value": [r[results["memory"]["measure"]] for r in results["memory"]["configs"]],
                         "target": "strictly falling as groups freeze", "pass": bool(results["memory"]["falls"])},
    }
    results["wall_seconds"] = time.perf_counter() - started
    print_summary(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, results)
    say(f"wrote {out} ({results['wall_seconds']:.0f} s)")
    return results


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


def print_summary(r: dict) -> None:
    """The figures again, as one table."""
    def row(name, value, target="", verdict=None):
        flag = "" if verdict is None else ("PASS" if verdict else "FAIL")
        say(f"  {name:<44} {value:>22}  {target:<12} {flag}")

    say()
    say("summary")
    for x in r["realisation"]["by_t0"]:
        row(f"speedup t_0={x['t_0']} measured / pred(time)",
            f"{_pct(x['measured_speedup'])} / {_pct(x['predicted_time'])}", f"= {_num(x['realisation_time'])}")
        row(f"speedup t_0={x['t_0']} measured / pred(flops)",
            f"{_pct(x['measured_speedup'])} / {_pct(x['predicted_flops'])}", f"= {_num(x['realisation_flops'])}")
    tp = r["throughput"]
    row("throughput baseline / FreezeOut (img/s)",
        f"{tp['baseline_images_per_second']:.1f} / {tp['freezeout_images_per_second']:.1f}",
        f"t_0={tp['freezeout_t_0']}")
    t = r["targets"]
    row("overhead harness / bare (step time)", f"{t['overhead']['value']:.3f}", t["overhead"]["target"],
        t["overhead"]["pass"])
    row("frozen prefix step / forward alone", f"{t['frozen_prefix']['value']:.3f}",
        t["frozen_prefix"]["target"], t["frozen_prefix"]["pass"])
    mem = r["memory"]
    row(f"memory {mem['measure']} by frozen groups",
        " -> ".join(f"{v:.1f}" for v in t["memory_falls"]["value"]),
        "falling", t["memory_falls"]["pass"])
    if mem["rss_falls"] is not None:
        row("memory peak RSS (fresh process) by frozen groups",
            " -> ".join(f"{c['rss_peak_mb']:.0f}" for c in mem["configs"]), "(info)")
    if r.get("compile"):
        c = r["compile"]
        row("compile: recompiles from freezing", f"{c['recompiles_from_freezing']:g}",
            f"limit hits {c['freezeout_recompile_limit_hits']:g}")


def cli() -> None:
    """``python -m freezeout.bench``: bad settings end in one line naming them, not a traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from .errors import ConfigError

    try:
        main()
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    cli()
