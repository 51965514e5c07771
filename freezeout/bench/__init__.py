"""python -m freezeout.bench [RUN OVERRIDES] [bench.KEY=VALUE ...]

Does FreezeOut's predicted speedup show up on the wall clock, and what does the harness itself
cost? One model, one dataset, one device, configured exactly as ``run.py`` is: the run overrides
(e.g. ``model=wrn model.depth=16 data=cifar10 precision=bf16 device=cuda``) apply on top of the
default benchmark run (the quickstart model on 4,096 Fashion-MNIST images, 3 epochs). Every
figure is printed when measured and all are written to ``bench.out`` as JSON, with pass/fail.

Sections:
  realisation   rounds of real train() runs taking turns every log_every iterations (freezeout.bench.turns):
                a baseline and FreezeOut, each run measuring its time model first (predict_time=true);
                with bench.cache, the first t_0 also with cache_frozen=true. Targets (median over
                rounds): measured / time-predicted speedup in 0.95-1.05; uncached / cached seconds >= 1.3.
  throughput    images per second of those runs (best round).
  overhead      the trainer's loop (strategy none) against a bare PyTorch loop. Target <= 1.03.
  frozen prefix a step with all groups but the head frozen / a forward alone. Target <= 1.25.
  memory        0, half, all but the head frozen: saved activations, parameters, gradients,
                optimizer state (CUDA allocator peak on GPUs). Target: falls.
  (streamed data: python -m freezeout.bench.input data.root=DIR: loader and compute images/s, the
                realisation against the input-aware and the compute-only predictions)

Options (bench.KEY=VALUE):
  bench.strategy=cubic      FreezeOut strategy realised (linear | squared | cubic)
  bench.t0=[0.5,0.8]        t_0 values realised, each in (0, 1)
  bench.repeats=5           rounds of runs
  bench.chunks=8 bench.chunk_steps=4   alternating chunk pairs in the step-time comparisons, steps a chunk
  bench.threads=0           torch CPU threads per process (0: torch's default, shared out)
  bench.world_size=1        processes training together (DDP, gloo on the CPU): every section on them
  bench.cache=true          also realise the first t_0 with the frozen-prefix cache
  bench.out=bench-results/bench.json  where the JSON goes

On a GPU the runs take turns every 25 iterations unless log_every is given (a turn syncs the
device). python -m freezeout.bench.gpucheck (make gpu-check) runs it on DenseNet-BC L=76 k=12
with synthetic CIFAR-sized data, bf16 and fp32, and sums it up in one table.
"""
from __future__ import annotations

import functools
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from .sections import memory, realisation, step_costs
from .settings import GPU_LOG_EVERY, compose_run, parse, run_command, say


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the results (also written to ``bench.out`` as JSON)."""
    from ..data import augment_recipe, batch_stream, load_data
    from ..distributed import process_group as distributed
    from ..models.factory import build_run_model
    from ..rundir.provenance import device_name, git_revision, library_versions
    from ..rundir.records import read_json, write_json_atomic
    from ..training.checks import validate

    s, overrides = parse(argv := list(sys.argv[1:] if argv is None else argv))
    if distributed.spawned(s.world_size, main, argv):  # N new processes ran this benchmark together
        return read_json(s.out)
    if s.threads > 0:
        torch.set_num_threads(s.threads)
    started = time.perf_counter()
    cfg = compose_run(overrides)
    checked = validate(cfg)
    device = checked.device
    if device.type == "cuda" and not any(o.startswith("log_every=") for o in overrides):
        overrides = [*overrides, f"log_every={GPU_LOG_EVERY}"]  # a turn (a log point) syncs the GPU
        cfg = compose_run(overrides)
    data = load_data(cfg.data, device, spec=checked.spec, channels_last=cfg.channels_last)
    model0 = build_run_model(cfg, device, checked.spec).train()
    n = len(model0.layer_groups())
    s.cache = s.cache and augment_recipe(cfg.data.augment) == "none" and hasattr(model0, "forward_from")  # it applies
    results = {
        "settings": {**vars(s), "overrides": overrides, "threads_used": torch.get_num_threads()},
        "environment": {"device": device_name(device), "versions": library_versions(), "git_revision": git_revision(),
                        "platform": platform.platform()},
        "model": {"name": cfg.model.name, "num_groups": n, "num_params": sum(p.numel() for p in model0.parameters())},
        "run": {"data": cfg.data.name, "train_images": len(data.train_x), "batch_size": cfg.batch_size,
                "epochs": cfg.epochs, "precision": cfg.precision, "optimizer": cfg.optimizer.name},
    }
    say(f"FreezeOut benchmark: {cfg.model.name}, {n} groups, {cfg.data.name} ({len(data.train_x)} images, batch "
        f"{cfg.batch_size}, {cfg.epochs} epochs), {results['environment']['device']}, {cfg.precision}")
    stream = functools.partial(batch_stream, data.train_x, data.train_y, cfg.batch_size, cfg.seed, cfg.data.augment,
                               data.spec.black, distributed.shard())
    with tempfile.TemporaryDirectory(prefix="freezeout-bench-") as tmp:
        results["realisation"] = realisation(s, overrides, Path(tmp))
    results.update(step_costs(model0, stream, cfg, device, s))
    results["memory"] = memory(model0, stream, cfg, device)
    cache = results["realisation"]["cache"]
    results["targets"] = {
        **{f"realisation {r['label']}": {"value": r["realisation_time"], "pass": r["pass"]}
           for r in results["realisation"]["by_t0"]},
        **({"cache speed ratio": {"value": cache["speed_ratio"], "pass": cache["pass"]}} if cache else {}),
        **{k: {"value": results[k]["ratio"], "pass": results[k]["pass"]} for k in ("overhead", "frozen_prefix")},
        "memory_falls": {"value": [r["model_total_mb"] for r in results["memory"]["configs"]],
                         "pass": results["memory"]["falls"]},
    }
    results["wall_seconds"] = time.perf_counter() - started
    say("\nsummary")
    for name, t in results["targets"].items():
        value = " -> ".join(f"{v:.3f}" for v in (t["value"] if isinstance(t["value"], list) else [t["value"]]))
        say(f"  {name:<24} {value:>28}  {'PASS' if t['pass'] else 'FAIL'}")
    (out := Path(s.out)).parent.mkdir(parents=True, exist_ok=True)
    if distributed.is_main():
        write_json_atomic(out, results)
    say(f"wrote {out} ({results['wall_seconds']:.0f} s)")
    return results


def cli() -> None:
    """The command line: ``--help`` prints what the benchmark does; bad settings end in one line."""
    run_command(__doc__, main)
