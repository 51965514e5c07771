"""Freeze-aware gradient synchronisation: PyTorch's DistributedDataParallel around the model, rebuilt
at each freezing event so that frozen groups leave the all-reduce.

DDP registers the parameters that require grad when it is built and expects a gradient for each of
them in every backward. Instead of ``find_unused_parameters=True`` (a walk of the autograd graph
every step, and the frozen gradients' buckets all-reduced all the same), the wrapper is rebuilt
when the frozen prefix grows: the new one registers exactly the trainable parameters, and the
frozen groups' parameters and buffers are on DDP's ignore list, so they leave the gradient
all-reduce, the per-forward buffer broadcast and the initial sync. A communication hook, PyTorch's
own ``allreduce_hook`` with a byte count, records the bytes all-reduced per step of each stage.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from . import process_group as distributed


class _FromGroup(nn.Module):
    """What DDP wraps: the model, run from group ``start`` on (the frozen-prefix cache's stage) or
    whole (``start=0``), so that cached steps go through DDP's forward too."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.model(x) if start == 0 else self.model.forward_from(start, x)


class GradSync:
    """The DDP wrapper of ``model`` (a model with ``layer_groups()``) for its current frozen prefix,
    and the bytes all-reduced: per step of each stage (``bytes_per_step[k]``, ``k`` groups frozen)
    and per epoch (:meth:`take_epoch_bytes_per_step`)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.frozen: int | None = None
        self.ddp: DistributedDataParallel | None = None
        self.bytes_per_step: dict[int, int] = {}
        self._step_bytes = self._epoch_bytes = self._epoch_steps = 0

    def wrap(self, frozen: int) -> None:
        """Rebuild the wrapper for a step with ``frozen`` groups frozen (nothing when unchanged)."""
        if frozen == self.frozen:
            return
        distributed.agree(frozen, "frozen groups")  # a disagreement would hang DDP: fail loudly
        groups = self.model.layer_groups()
        # The newly frozen groups' BatchNorm statistics moved on each process's own shard until
        # now; from here on they are fixed and no longer broadcast: fix rank 0's everywhere.
        for group in groups[self.frozen or 0:frozen]:
            for b in _buffers(group):
                dist.broadcast(b, src=0)
        root = _FromGroup(self.model)
        frozen_ids = {id(t) for g in groups[:frozen] for t in [*g.parameters(), *_buffers(g)]}
        ignore = [n for n, t in [*root.named_parameters(), *root.named_buffers()] if id(t) in frozen_ids]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(root, ignore)
        # The old wrapper and its reducer go before the new one is built, by reference counting: its one
        # cycle runs through this object (the comm hook is a method of it) and ends here.
        self.ddp = None
        device = next(self.model.parameters()).device  # with its index, also for a plain "cuda"
        self.ddp = DistributedDataParallel(root, device_ids=[device.index] if device.type == "cuda" else None)
        self.ddp.register_comm_hook(None, self._allreduce)
        self.frozen = frozen

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """The model's forward through DDP, from group ``start``."""
        return self.ddp(x, start)

    def _allreduce(self, state, bucket):  # no annotations: DDP checks them, and they are strings here
        buffer = bucket.buffer()
        self._step_bytes += buffer.numel() * buffer.element_size()
        return allreduce_hook(state, bucket)

    def step_done(self) -> None:
        """Called after each step's backward: books the step's bytes to its stage and epoch."""
        self.bytes_per_step[self.frozen] = self._step_bytes
        self._epoch_bytes += self._step_bytes
        self._epoch_steps += 1
        self._step_bytes = 0

    def take_epoch_bytes_per_step(self) -> float | None:
        """Mean bytes all-reduced per step since the last call (None without steps); resets."""
        mean = self._epoch_bytes / self._epoch_steps if self._epoch_steps else None
        self._epoch_bytes = self._epoch_steps = 0
        return mean

    def state_dict(self) -> dict:
        """The counts so far, the current epoch's included (a checkpoint may stop an epoch midway)."""
        return {"bytes_per_step": dict(self.bytes_per_step), "epoch": [self._epoch_bytes, self._epoch_steps]}

    def load_state_dict(self, state: dict) -> None:
        self.bytes_per_step.update({int(k): v for k, v in state["bytes_per_step"].items()})
        self._epoch_bytes, self._epoch_steps = state.get("epoch", (0, 0))


def _buffers(group) -> list[torch.Tensor]:
    """Every buffer of a layer group's modules."""
    return [b for m in group.modules() for b in m.buffers(recurse=False)]
