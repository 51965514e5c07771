"""The frozen-prefix activation cache (``cache_frozen=true|auto``), beyond the paper.

With augmentation off, once groups ``0..k-1`` are frozen (eval mode, fixed weights) their output
for a training image never changes again. The store keeps that output for every training image,
and training runs the rest of the model from it (``model.forward_from(k, x)``). Each freezing
event advances the store by applying the newly frozen groups to the stored tensor, never by
recomputing from the input, under the run's autocast: the store holds what the uncached run's
frozen prefix computes, in the run's precision (bf16 halves it). It advances in chunks of
bounded size into one of two buffers that are reused, so it does not touch fresh memory at
every event. Evaluation still runs the whole model.

The store lives on the device, or in pinned host memory (``cache_host=true``: batches gathered
there into a pinned buffer and copied over asynchronously, without a host sync a step).
``cache_memory_gb`` bounds everything the cache keeps in the store's memory: both buffers (the
old store and the new one coexist while it advances; pinned ones at the power-of-two size the
caching host allocator gives them) and the training images when they share that memory. A stage that would not fit is not cached; the store stays at the last stage that
fit, and the log says so. With ``cache_frozen=auto`` only the stages the time model picks read
the store (``stages``); the others train from the images as an uncached run does.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from ..errors import ConfigError
from .devices import autocast_dtype, even_chunks

log = logging.getLogger("freezeout")
CACHE_MODES = {False: "off", True: "on", "auto": "auto"}
#: Bytes of one advance chunk's input or output: on the CPU, small enough that its temporaries
#: come from the allocator's free lists instead of fresh pages; on a GPU, large enough to fill it.
CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}


def cache_mode(value) -> str:
    """``cache_frozen`` as ``off``, ``on`` or ``auto``; anything else is a ConfigError."""
    key = value.lower() if isinstance(value, str) and value.lower() == "auto" else value
    if not isinstance(key, (bool, str)) or key not in CACHE_MODES:
        raise ConfigError(f"cache_frozen={value!r}; allowed: true, false, auto")
    return CACHE_MODES[key]


def stage_shapes(model: nn.Module, image_shape: tuple[int, ...], device: torch.device) -> list[tuple[int, ...]]:
    """The per-image output shape of every group (``shapes[k]`` is the store's image shape at
    stage ``k + 1``)."""
    return [shape for shape, _ in stage_outputs(model, image_shape, device)]


@torch.no_grad()
def stage_outputs(model: nn.Module, image_shape: tuple[int, ...], device: torch.device,
                  amp_dtype: torch.dtype | None = None) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """The per-image output shape and dtype of every group under the run's autocast
    (``[k]``: the store's at stage ``k + 1``), from one forward pass of a single zero image in
    eval mode, uncompiled."""
    was_training = model.training
    model.eval()
    x, shapes = torch.zeros((1, *image_shape), device=device), []
    try:
        with torch.compiler.set_stance("force_eager"), \
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            for k in range(len(model.groups)):
                x = model.forward_from(k, x, stop=k + 1)
                shapes.append((tuple(x.shape[1:]), x.dtype))
    finally:
        model.train(was_training)
    return shapes


def nbytes(t) -> int:
    """Bytes a tensor (or an image store with ``nbytes``) really holds."""
    return t.nbytes if hasattr(t, "nbytes") else t.numel() * t.element_size()


class FrozenPrefixCache:
    """The frozen prefix's outputs for every training image: looks like the training tensor to
    the batch drawer (``cache[idx]``, ``len``, ``device``, ``dtype``), at the stage it is read at
    (:attr:`reading`: 0 reads the images themselves)."""

    def __init__(self, model: nn.Module, images, budget_bytes: float, on_host: bool = False, precision: str = "fp32",
                 stages: set[int] | None = None, batch_size: int | None = None):
        self.model, self.images, self.budget, self.on_host = model, images, budget_bytes, on_host
        self.device = images.device
        self.amp_dtype = autocast_dtype(precision)
        self.stages = stages  # the stages that read the store (None: all)
        self.batch_size = batch_size  # images an advance chunk holds (None: by CHUNK_BYTES)
        self.stage, self.reading, self.features = 0, 0, images  # stage 0: the images themselves, no copy
        self.shapes = stage_outputs(model, tuple(images.shape[1:]), images.device, self.amp_dtype)
        self.full = False  # a stage did not fit the budget: the store stays where it is
        self.store_device = torch.device("cpu") if on_host else self.device
        self.pinned = on_host and self.device.type == "cuda"
        # Two reusable buffers: the current store lives in one, the next stage is written to the other.
        self.buffers: list[torch.Tensor | None] = [None, None]
        self.current = 1  # the buffer the store is in (none at stage 0)
        self._gather = _HostGather(self) if on_host and self.device.type == "cuda" else None

    def stage_bytes(self, stage: int) -> int:
        """Bytes of the store at ``stage`` (every training image, in the dtype the group answers)."""
        shape, dtype = self.shapes[stage - 1]
        n = len(self.images) * dtype.itemsize
        for d in shape:
            n *= d
        return n

    def block_bytes(self, n: int) -> int:
        """Bytes a buffer of ``n`` bytes takes in the store's memory: pinned host memory comes from
        torch's caching host allocator, which rounds each block up to a power of two (a store of
        1.1 GB holds 2 GB pinned; an allocator configured with a rounding threshold rounds less,
        and this then counts more than is held: never less); the buffer is made that size, so
        that all of it is counted and usable. Elsewhere ``n``."""
        return 1 << (n - 1).bit_length() if self.pinned and n > 1 else n

    def held_bytes(self, target: int | None = None) -> int:
        """Bytes the cache holds in the store's memory: both buffers, and the training images when
        they live there; with ``target``, while it advances to that stage (the buffer it writes
        to grown as needed)."""
        sizes = [nbytes(b) if b is not None else 0 for b in self.buffers]
        if target is not None:
            other = 1 - self.current
            sizes[other] = max(sizes[other], self.block_bytes(self.stage_bytes(target)))
        same_memory = self.images.device == self.store_device
        return sum(sizes) + (nbytes(self.images) if same_memory else 0)

    def advance(self, k: int) -> int:
        """At a freezing event, ``k`` groups frozen: bring the store to stage ``k`` (one group at a
        time, as far as the budget allows) when stage ``k`` reads it; returns the stage the
        step's batches come from (0: the images)."""
        if self.stages is not None and k not in self.stages:
            self.reading = 0
            return 0
        while self.stage < k and not self.full:
            if self.held_bytes(self.stage + 1) > self.budget:
                self.full = True
                log.warning("cache_frozen: the store after group %d would take the cache to %.2f GB (both buffers%s), "
                            "over cache_memory_gb=%.2f: it stays at %d group(s); the rest of the frozen prefix is "
                            "recomputed each step", self.stage, self.held_bytes(self.stage + 1) / 1e9,
                            " and the training images" if self.images.device == self.store_device else "",
                            self.budget / 1e9, self.stage)
                break
            self._advance_one()
        self.reading = self.stage
        return self.stage

    @torch.no_grad()
    def _advance_one(self) -> None:
        """Apply group ``stage`` to the store, chunk by chunk, into the other buffer."""
        target, out = self.stage + 1, None
        in_bytes = self.stage_bytes(self.stage) // len(self.images) if self.stage else \
            4 * torch.Size(self.images.shape[1:]).numel()  # the images as the first group reads them: float32
        rows = self.batch_size or _chunk_rows(self.device, in_bytes, self.stage_bytes(target) // len(self.images))
        for i, j in even_chunks(len(self.images), rows):
            chunk = self.features[i:j]
            if chunk.device != self.device:
                chunk = chunk.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                y = self.model.forward_from(self.stage, chunk, stop=target)
            if out is None:
                out = self._buffer(1 - self.current, y)
            out[i:j].copy_(y, non_blocking=self.pinned)
        if self.pinned:
            torch.cuda.current_stream(self.device).synchronize()  # the host store is complete before it is read
        self.current = 1 - self.current
        self.features, self.stage = out, target

    def _buffer(self, slot: int, y: torch.Tensor) -> torch.Tensor:
        """The store for every image, shaped and laid out like the batch ``y`` (convolutions may
        answer channels-last: the same kernels downstream), in buffer ``slot``, grown if needed."""
        shape = (len(self.images), *y.shape[1:])
        numel = 1
        for d in shape:
            numel *= d
        buf = self.buffers[slot]
        if buf is None or buf.numel() < numel or buf.dtype != y.dtype:
            self.buffers[slot] = buf = None  # the old one goes before the new one is made
            if self.pinned:  # and back to the system: the caching host allocator would keep its block
                torch._C._host_emptyCache()
            itemsize = y.element_size()
            buf = torch.empty(self.block_bytes(numel * itemsize) // itemsize, dtype=y.dtype, device=self.store_device,
                              pin_memory=self.pinned)
            self.buffers[slot] = buf
        return _view(buf, shape, channels_last=_is_channels_last(y))

    def record(self) -> dict:
        """What ``summary.json`` keeps (``cache``)."""
        return {"mode": "on" if self.stages is None else "auto",
                "stages": None if self.stages is None else sorted(self.stages), "stage": self.stage,
                "full": self.full, "held_bytes": self.held_bytes(), "on_host": self.on_host}

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.images), *(self.shapes[self.reading - 1][0] if self.reading else self.images.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return self.features.dtype if self.reading else self.images.dtype

    def device_order(self, order: torch.Tensor) -> torch.Tensor:
        """An epoch's ``order`` of the training images (int64 on the host) on the device, for the
        batches of streamed data to index the store with: copied once an epoch. A pinned host
        store's gather then reads each batch's rows from ``order`` itself (no copy back a step)."""
        order = order.contiguous()
        on_device = order.to(self.device)
        if self._gather is not None:
            self._gather.know(on_device, order)
        return on_device

    def __getitem__(self, idx):
        if self.reading == 0:
            return self.images[idx]
        if self._gather is not None:  # pinned host store: gather there, copy over
            return self._gather(idx)
        return self.features[idx]


class _HostGather:
    """Batches of a pinned host store: gathered on the host into one of two pinned buffers and
    copied to the device asynchronously. The batch's indices come from the epoch's permutation,
    copied to the host once an epoch instead of once a step (``idx.cpu()`` would sync each step)."""

    def __init__(self, cache: FrozenPrefixCache):
        self.cache, self.slot = cache, 0
        self.buffers: list[torch.Tensor | None] = [None, None]
        self.done: list[torch.cuda.Event | None] = [None, None]
        self._perm: torch.Tensor | None = None  # the device permutation the host copy is of
        self._host_perm: torch.Tensor | None = None

    def know(self, perm: torch.Tensor, host_perm: torch.Tensor) -> None:
        """``host_perm`` is the host copy of the device permutation ``perm`` (no copy to make)."""
        self._perm, self._host_perm = perm, host_perm

    def host_index(self, idx: torch.Tensor) -> torch.Tensor:
        base = idx._base
        if base is None or base.dim() != 1 or not base.is_contiguous():
            return idx.cpu()  # not a slice of a permutation: one sync
        if base is not self._perm:
            self._perm, self._host_perm = base, base.cpu()
        return self._host_perm.as_strided(idx.shape, idx.stride(), idx.storage_offset() - base.storage_offset())

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        features = self.cache.features
        rows = self.host_index(idx)
        shape = (len(rows), *features.shape[1:])
        slot, self.slot = self.slot, 1 - self.slot
        if self.done[slot] is not None:
            self.done[slot].synchronize()  # its previous copy (two steps ago) has finished
        buf = self.buffers[slot]
        if buf is None or buf.numel() < len(rows) * features[0].numel() or buf.dtype != features.dtype:
            buf = self.buffers[slot] = torch.empty(len(rows) * features[0].numel(), dtype=features.dtype,
                                                   pin_memory=True)
        out = _view(buf, shape, channels_last=_is_channels_last(features))
        torch.index_select(features, 0, rows, out=out)
        batch = out.to(self.cache.device, non_blocking=True)  # queued on the cache's device's stream
        self.done[slot] = torch.cuda.Event()
        # recorded there, not on the current device's (another GPU with device=cuda:1): else the
        # event could pass before the copy has read the buffer it is about to be overwritten in
        self.done[slot].record(torch.cuda.current_stream(self.cache.device))
        return batch


def _chunk_rows(device: torch.device, in_bytes_per_image: int, out_bytes_per_image: int) -> int:
    """Images an advance chunk holds: its input or output at most ``CHUNK_BYTES`` of the device
    kind, and at least 32 images (a compiled frozen form keeps one batch-size range)."""
    per_image = max(in_bytes_per_image, out_bytes_per_image, 1)
    return max(32, CHUNK_BYTES.get(device.type, CHUNK_BYTES["cuda"]) // per_image)


def _is_channels_last(y: torch.Tensor) -> bool:
    return y.dim() == 4 and not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last)


def _view(flat: torch.Tensor, shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
    """The first elements of the flat buffer as a tensor of ``shape`` (NHWC strides if asked)."""
    n, numel = shape[0], 1
    for d in shape:
        numel *= d
    head = flat[:numel]
    if not channels_last:
        return head.view(shape)
    _, c, h, w = shape
    return head.view(n, h, w, c).permute(0, 3, 1, 2)
