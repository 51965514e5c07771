"""``python -m freezeout.bench``: does FreezeOut's predicted speedup show up on the wall clock, and
what does the harness itself cost? One model, one dataset, one device; every figure is printed as
soon as it is measured, and everything is written to ``--out`` as JSON.

    python -m freezeout.bench                                  # DenseNet-BC L=16 k=12, Fashion-MNIST
    python -m freezeout.bench --device cuda --precision bf16 --channels-last --compile
    python -m freezeout.bench --model wrn --depth 16 --hparam widen_factor=4 --data cifar10

Sections:

- **time model**: step time (lower quartile) with the first ``k`` groups frozen, for every freezing stage of
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
  comparisons stay eager (two models compiled in one process would share dynamo's caches)."""
from __future__ import annotations

import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .memory import PROBE_TAG, memory, memory_probe
from .report import print_summary
from .settings import build, compose_config, parse_args, say
from .speed import (FROZEN_PREFIX_TARGET, OVERHEAD_TARGET, _dynamo_reset, compile_section, frozen_prefix,
                    overhead, realisation, throughput, time_model)

__all__ = ["main", "cli", "parse_args"]


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns the results (also written to ``--out`` as JSON)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        say(PROBE_TAG + json.dumps(memory_probe(args, args.memory_probe)))
        return {}

    from ..config import validate
    from ..data import load_data
    from ..metrics import write_json_atomic
    from ..provenance import device_name, git_revision, library_versions

    started = time.perf_counter()
    configs = {"baseline": compose_config(args)}
    for t in args.t0:
        configs[f"t_0={t}"] = compose_config(args, args.strategy, t)
    cfg = configs["baseline"]
    device = validate(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as the trainer does
    data = load_data(cfg.data, device)
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


def cli() -> None:
    """``python -m freezeout.bench``: bad settings end in one line naming them, not a traceback."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from ..errors import ConfigError

    try:
        main()
    except (ConfigError, HydraException, OmegaConfBaseException) as e:
        raise SystemExit(f"error: {e}") from None
