"""The benchmark's measurements. Every training step runs through the engine (the trainer's own
loop and step); the only other loop is the bare PyTorch reference the overhead is measured against."""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..distributed import process_group as distributed
from ..errors import ConfigError
from ..freezing.optim import optimizer_factory
from ..speedup.timemodel import held_controller
from ..training.devices import autocast_dtype, set_fp32_math, synchronize
from ..training.step import TrainStep, run_iterations
from .settings import compose_run, pct, say
from .turns import take_turns

#: Targets: realised/predicted speedup (time model) within 5%; the harness at most 3% slower than
#: a bare loop; a step with all but the head frozen at most 25% dearer than a forward alone.
REALISATION_TARGET, OVERHEAD_TARGET, FROZEN_PREFIX_TARGET, CACHE_TARGET = (0.95, 1.05), 1.03, 1.25, 1.3


def realisation(s, overrides: list[str], workdir: Path) -> dict:
    """Rounds of real ``train()`` runs taking turns (:mod:`freezeout.bench.turns`), a baseline and FreezeOut
    runs measuring their time model as a user's run does. Realisation: the median over rounds of
    (1 - F / B seconds) / predicted. With ``bench.cache`` the first t_0 also runs with the cache:
    its speed ratio is the median over rounds of uncached / cached seconds."""
    timed = ["predict_time=true", "predict_time_share=1.0"]  # the baseline too: every run starts as warm
    fo = [f"strategy={s.strategy}", *timed]
    variants = [("baseline", None, ["strategy=none", *timed]), *((f"t_0={t}", t, [*fo, f"t_0={t}"]) for t in s.t0)]
    variants += [(f"t_0={s.t0[0]} cached", s.t0[0], [*fo, f"t_0={s.t0[0]}", "cache_frozen=true"])] if s.cache else []
    runs = []
    say(f"realisation: {s.repeats} round(s) of train() runs taking turns: {', '.join(v[0] for v in variants)}")
    for r in range(s.repeats):
        summaries = take_turns([(compose_run(overrides, *extra), workdir / f"round{r}-{label.replace(' ', '-')}")
                                for label, _, extra in variants])
        for (label, t, _), x in zip(variants, summaries):
            if x.status != "completed":
                raise RuntimeError(f"{label} run {x.status}: {x.error}")
            if t is not None and x.predicted_speedup["time"] is None:
                raise ConfigError(f"the {label} run is too short for its time model ({x.iterations} iterations): "
                                  "raise epochs or data.subset")
            runs.append({"round": r, "label": label, "t_0": t, "train_seconds": x.train_seconds, "iterations":
                         x.iterations_done, "final_val_err": x.final_val_err, "frozen_groups": x.frozen_groups,
                         "predicted": x.predicted_speedup, "allreduce_bytes_per_step": x.allreduce_bytes_per_step,
                         "images_per_second": x.iterations_done * x.batch_size / x.train_seconds})
            say(f"  round {r + 1}  {label:<16} {x.train_seconds:7.2f} s  {runs[-1]['images_per_second']:7.1f} "
                f"img/s  val err {pct(x.final_val_err)}  frozen {x.frozen_groups}/{x.num_groups}")
    by_t0, cache, seconds = [], None, {v[0]: [x["train_seconds"] for x in runs if x["label"] == v[0]] for v in variants}
    for label, t, _ in variants[1:]:
        rows = [(1.0 - f / b, x["predicted"]["time"], x["predicted"]["flops"]) for b, f, x in
                zip(seconds["baseline"], seconds[label], (x for x in runs if x["label"] == label))]  # one a round
        med = [statistics.median(col) for col in zip(*rows)]
        ratio = statistics.median(m / p for m, p, _ in rows)
        ok = REALISATION_TARGET[0] <= ratio <= REALISATION_TARGET[1]
        by_t0.append({"label": label, "t_0": t, "measured_speedup": med[0], "predicted_time": med[1], "pass": ok,
                      "predicted_flops": med[2], "realisation_time": ratio, "rounds": [list(x) for x in rows],
                      "realisation_flops": statistics.median(m / f for m, _, f in rows)})
        say(f"  {label}: measured {pct(med[0])}, predicted time {pct(med[1])} / flops {pct(med[2])} -> measured/time "
            f"{ratio:.3f} ({'PASS' if ok else 'FAIL'}), measured/flops {by_t0[-1]['realisation_flops']:.3f}")
    if s.cache:
        ratio = statistics.median(a / b for a, b in zip(seconds[variants[1][0]], seconds[variants[-1][0]]))
        cache = {"speed_ratio": ratio, "target": CACHE_TARGET, "pass": ratio >= CACHE_TARGET}
        say(f"  cache: {variants[1][0]} uncached / cached seconds {ratio:.2f}x (target >= {CACHE_TARGET}: "
            f"{'PASS' if cache['pass'] else 'FAIL'})")
    best = {v[0]: max(x["images_per_second"] for x in runs if x["label"] == v[0]) for v in variants}
    say("throughput (best round, img/s): " + ", ".join(f"{k} {v:.1f}" for k, v in best.items()))
    return {"runs": runs, "by_t0": by_t0, "cache": cache, "throughput_images_per_second": best,
            "statistic": "median over rounds of per-round ratios; the runs of a round train in turns of log_every "
                         "iterations"}


class EngineRunner:
    """``runner(n)``: n iterations of the trainer's loop with ``k`` groups frozen."""

    def __init__(self, model, cfg, device, batches, k: int):
        self.model, self.batches, self.log_every = model, batches, cfg.log_every
        self.controller = held_controller(model.layer_groups(), optimizer_factory(cfg.optimizer), k, cfg.optimizer.lr)
        self.step = TrainStep(model, self.controller.optimizer, cfg.precision, device, channels_last=cfg.channels_last)

    def __call__(self, n: int):
        return run_iterations(self.step, self.controller, self.batches, 0, n, self.log_every)


def _bare_runner(model, cfg, device, batches, backward: bool = True):
    """``run(n)``: what one writes by hand, one optimizer over all parameters at a constant rate,
    loss read back every ``log_every`` steps; ``backward=False``: the forward pass alone. The same
    precision as the trainer's step: autocast, fp16's gradient scaler, IEEE or TF32 float32."""
    model = distributed.ddp(model) if backward else model  # on several processes, as one writes it by hand
    opt = optimizer_factory(cfg.optimizer)(list(model.parameters()))
    amp = autocast_dtype(cfg.precision)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None

    def run(n: int) -> None:
        set_fp32_math(device, cfg.precision)
        for i in range(n):
            x, y = next(batches)
            x = x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = F.cross_entropy(model(x), y)
            if backward:
                opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
            if (i + 1) % cfg.log_every == 0:
                loss.item()
    return run


def alternate(a, b, s, device) -> dict:
    """Seconds per step of runners ``a`` and ``b`` in chunks ordered a b | b a | ..., so drift and
    bursts hit both; ``ratio`` is the median of the per-pair ratios a / b."""
    a(2), b(2)  # warm-up
    times: dict[str, list[float]] = {"a": [], "b": []}
    for c in range(s.chunks):
        for name in ("ab" if c % 2 == 0 else "ba"):
            synchronize(device)
            start = time.perf_counter()
            (a if name == "a" else b)(s.chunk_steps)
            synchronize(device)
            times[name].append((time.perf_counter() - start) / s.chunk_steps)
    return {"a_step_seconds": statistics.median(times["a"]), "b_step_seconds": statistics.median(times["b"]),
            "ratio": statistics.median(x / y for x, y in zip(times["a"], times["b"]))}


def step_costs(model0, stream, cfg, device, s) -> dict:
    """Overhead (trainer's loop with strategy none vs a bare loop) and the frozen-prefix cost (all but
    the head frozen vs a forward alone), same weights and batches; trainer step time, bytes all-reduced."""
    n, out = len(model0.layer_groups()), {}
    for name, k, backward, target, what in (
            ("overhead", 0, True, OVERHEAD_TARGET, "trainer loop / bare loop step time"),
            ("frozen_prefix", n - 1, False, FROZEN_PREFIX_TARGET, f"step with {n - 1}/{n} groups frozen / forward")):
        engine = EngineRunner(copy.deepcopy(model0), cfg, device, stream(), k)
        r = alternate(engine, _bare_runner(copy.deepcopy(model0), cfg, device, stream(), backward), s, device)
        ok, sent = r["ratio"] <= target, engine.step.sync.bytes_per_step[k] if engine.step.sync is not None else 0
        out[name] = {**r, "frozen_groups": k, "allreduce_bytes_per_step": sent, "target": target, "pass": ok}
        say(f"{name}: {what} {r['ratio']:.3f} (target <= {target}: {'PASS' if ok else 'FAIL'}); trainer step "
            f"{1e3 * r['a_step_seconds']:.2f} ms, all-reduces {sent} bytes")
    return out


def memory(model0, stream, cfg, device) -> dict:
    """With 0, half and all-but-head groups frozen: MiB autograd saves during a step (unique
    storages, parameters and buffers excluded), parameters, gradients, optimizer state, and on
    CUDA the allocator's peak."""
    n, rows = len(model0.layer_groups()), []
    mib = lambda tensors: sum(t.numel() * t.element_size() for t in tensors) / 2**20  # noqa: E731
    for k in sorted({0, n // 2, n - 1}):
        run = EngineRunner(copy.deepcopy(model0), cfg, device, stream(), k)
        run(1)  # gradients and optimizer state exist from now on
        params = list(run.model.parameters())
        own = {t.untyped_storage().data_ptr() for t in [*params, *run.model.buffers()]}
        saved: dict[int, int] = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in own:
                saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            run(1)
        state = [v for st in run.controller.optimizer.state.values() for v in st.values() if torch.is_tensor(v)]
        row = {"frozen_groups": k, "saved_activations_mb": sum(saved.values()) / 2**20, "params_mb": mib(params),
               "grads_mb": mib(p.grad for p in params if p.grad is not None), "optimizer_state_mb": mib(state),
               "cuda_peak_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}
        row["model_total_mb"] = sum(v for key, v in row.items() if key.endswith("_mb") and key != "cuda_peak_mb")
        rows.append(row)
        say(f"memory k={k:<3} saved activations {row['saved_activations_mb']:8.2f} MiB, total "
            f"{row['model_total_mb']:8.2f} MiB, CUDA peak {row['cuda_peak_mb'] or 'n/a'}")
    values = [r["model_total_mb"] for r in rows]
    return {"configs": rows, "falls": all(b < a for a, b in zip(values, values[1:]))}
