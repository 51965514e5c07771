"""What the streaming loader's workers run: reading an image's bytes (a file, or a member of a tar
shard), decoding it (``torchvision.io``) and transforming it (``transforms.v2``); and the batch
sampler that fixes which images each batch holds.

Seeds: an epoch's order is a permutation drawn from ``(seed, epoch)`` alone, and every image's
augmentation from ``(seed, epoch, its index)`` alone, so neither depends on the workers, on how
many processes share the epoch, or on where a run was stopped and resumed.
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .images import BadImage, decode_bytes

_MASK = 2**63 - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for one epoch of a run, from ``(seed, epoch)`` alone."""
    return int.from_bytes(hashlib.sha256(f"freezeout:{seed}:{epoch}".encode()).digest()[:8], "little") & _MASK


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``'s ``n`` training images (int64, on the CPU)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(seed, epoch)))


def sample_seed(epoch_seed_: int, index: int) -> int:
    """The seed of image ``index``'s augmentation in the epoch of ``epoch_seed_``."""
    return (epoch_seed_ + (index + 1) * 0x9E3779B97F4A7C15) & _MASK


class FileReader:
    """Image ``i``'s bytes: the file ``paths[i]``."""

    def __init__(self, paths: Sequence):
        self.paths = [str(p) for p in paths]

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return self.paths[i]

    def read(self, i: int) -> bytes:
        with open(self.paths[i], "rb") as f:
            return f.read()


class TarReader:
    """Image ``i``'s bytes: ``sizes[i]`` bytes at ``offsets[i]`` of tar shard ``shards[shard[i]]``
    (read in place: a shard is indexed once, then any member is one seek away). Open files are
    kept per process and never pickled."""

    def __init__(self, shards: Sequence[str], shard: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 keys: Sequence[str]):
        self.shards, self.shard, self.offsets, self.sizes = [str(s) for s in shards], shard, offsets, sizes
        self.keys = list(keys)
        self._files: dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.offsets)

    def name(self, i: int) -> str:
        return f"{self.shards[self.shard[i]]}:{self.keys[i]}"

    def read(self, i: int) -> bytes:
        if self._pid != os.getpid():  # a forked worker: its own file handles
            self._files, self._pid = {}, os.getpid()
        s = int(self.shard[i])
        f = self._files.get(s)
        if f is None:
            f = self._files[s] = open(self.shards[s], "rb")
        f.seek(int(self.offsets[i]))
        return f.read(int(self.sizes[i]))

    def __getstate__(self):
        return {**self.__dict__, "_files": {}}


class StreamDataset(Dataset):
    """Image ``i`` of a split as ``(uint8 (C, H, W), label, i, None)``, or ``(None, label, i,
    (name, reason))`` when it cannot be decoded: the training process decides whether that stops
    the run. Keys are ``(i, seed)``: ``seed`` None transforms deterministically (evaluation), else
    the transform draws from a generator seeded with it (and the process's global generator is left
    as it was)."""

    def __init__(self, reader, labels: np.ndarray, channels: int, transform):
        self.reader, self.labels, self.channels, self.transform = reader, labels, channels, transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key):
        i, seed = key
        label = int(self.labels[i])
        try:
            img = decode_bytes(self.reader.read(i), self.reader.name(i), self.channels)
        except BadImage as e:
            return None, label, i, (e.name, e.reason)
        except OSError as e:  # a file gone, a shard cut short
            return None, label, i, (self.reader.name(i), f"{type(e).__name__}: {e.strerror or e}")
        if seed is None:
            return self.transform(img), label, i, None
        with torch.random.fork_rng(devices=[]):  # v2 transforms draw from the global generator
            torch.manual_seed(seed)
            return self.transform(img), label, i, None


def collate(samples):
    """A batch: uint8 images (N, C, H, W), labels and indices of the images read, and the
    ``(index, name, reason)`` of those that could not be."""
    good = [s for s in samples if s[3] is None]
    x = torch.stack([s[0] for s in good]) if good else None
    y = torch.tensor([s[1] for s in good], dtype=torch.long)
    idx = torch.tensor([s[2] for s in good], dtype=torch.long)
    return x, y, idx, [(s[2], *s[3]) for s in samples if s[3] is not None]


class EpochBatches(Sampler):
    """The batch sampler: the keys of each batch this process loads. Set before each pass (the
    loader's workers may live across epochs; this runs in the training process):

    - ``train(order, batch_size, start, shard, epoch_seed)``: batches ``start..`` of an epoch, each
      the global batch ``order[b * batch_size:(b + 1) * batch_size]`` of which this process takes
      slice ``rank`` of ``world_size`` (as the in-memory loader), every image with its own seed;
    - ``sequential(indices, chunk)``: ``indices`` in order, ``chunk`` at a time, unseeded."""

    def __init__(self):
        self._plan = ("sequential", [], 1)

    def train(self, order: torch.Tensor, batch_size: int, start: int, shard: tuple[int, int], seed_: int) -> None:
        self._plan = ("train", order, batch_size, start, shard, seed_)

    def sequential(self, indices: Sequence[int], chunk: int) -> None:
        self._plan = ("sequential", list(indices), chunk)

    def __iter__(self):
        if self._plan[0] == "sequential":
            _, indices, chunk = self._plan
            for a in range(0, len(indices), chunk):
                yield [(i, None) for i in indices[a:a + chunk]]
            return
        _, order, batch_size, start, (rank, world), seed_ = self._plan
        part = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
        for b in range(start, len(order) // batch_size):
            yield [(i, sample_seed(seed_, i)) for i in order[b * batch_size:(b + 1) * batch_size][part].tolist()]

    def __len__(self) -> int:
        if self._plan[0] == "sequential":
            return -(-len(self._plan[1]) // self._plan[2])
        _, order, batch_size, start = self._plan[:4]
        return max(0, len(order) // batch_size - start)
