"""The loops the benchmark times: the trainer's own, a bare PyTorch one, a forward alone."""
from __future__ import annotations

import statistics
import time
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ..devices import autocast_dtype, synchronize

#: Enough iterations that no helper controller freezes its next group during a measurement.
HELPER_ITERS = 10**9


def batch_stream(data, batch_size: int, seed: int, augment: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless training batches (``data.batch_stream``); equal seeds give equal batches."""
    from ..data import batch_stream as stream

    return stream(data.train_x, data.train_y, batch_size, seed, augment, data.spec.black)


def frozen_controller(model, k: int, cfg):
    """A FreezeOut controller over ``model`` with exactly its first ``k`` groups frozen (the real
    freezing: requires_grad off, out of the optimizer, BatchNorm in eval); returns it and the
    iteration it stands at."""
    from ..freezer import FreezeOut

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
        from ..trainer import make_train_step

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
        self.amp = autocast_dtype(cfg.precision)
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
            synchronize(device)
            start = time.perf_counter()
            loop.run(chunk_steps)
            synchronize(device)
            times[name].append((time.perf_counter() - start) / chunk_steps)
    pairs = [x / y for x, y in zip(times["a"], times["b"])]
    return {
        "a_step_seconds": statistics.median(times["a"]), "b_step_seconds": statistics.median(times["b"]),
        "ratio": statistics.median(pairs), "ratio_of_totals": sum(times["a"]) / sum(times["b"]),
        "a_chunk_step_seconds": times["a"], "b_chunk_step_seconds": times["b"],
    }
