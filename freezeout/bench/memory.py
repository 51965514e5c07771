"""Memory with 0 / half / all-but-head groups frozen: what autograd saves, parameters, gradients
and momentum; the CUDA allocator's peak, or a fresh process's peak RSS on the CPU."""
from __future__ import annotations

import argparse
import copy
import functools
import json
import os
import subprocess
import sys
from typing import Callable

import torch

from ..devices import peak_rss_mb, synchronize
from .loops import HarnessLoop, batch_stream, frozen_controller
from .settings import REPO_ROOT, build, compose_config, say

PROBE_TAG = "MEMORY_PROBE "


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
            synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            resident = torch.cuda.memory_allocated(device)
            loop.run(2)
            synchronize(device)
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
    from ..config import validate
    from ..data import dataset_spec

    cfg = compose_config(args)
    device = validate(cfg)
    spec = dataset_spec(cfg.data)
    model = build(cfg, device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    shape = (cfg.batch_size, spec.in_channels, *spec.image_size)
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
