"""Streamed data (``data.loader=stream``): image files decoded each epoch by
``torch.utils.data.DataLoader`` workers (``data.workers``, kept alive across epochs, each
preparing ``data.prefetch`` batches ahead), handed over as uint8 in pinned memory and copied to
the device without blocking, then converted and normalised there, as in-memory batches are.

:class:`TrainStream` gives the training batches of an epoch (order and augmentation seeded by
``(seed, epoch)``, each process its slice of every global batch, any batch to start from);
:class:`StreamedImages` reads a split in order (evaluation, the frozen-prefix cache's first pass).
Failures end in one line: an unreadable image (named, with how many were read) unless
``data.skip_bad_images``, a worker that died, a worker's own error.
"""
from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from .images import BadImage, bad_input_error
from .store import normalise_batch
from .stream import EpochBatches, StreamDataset, collate, epoch_order, epoch_seed

log = logging.getLogger("freezeout")


class LoaderError(RuntimeError):
    """The loader failed (a worker died or raised): the message is one line saying what and where."""


@dataclass
class StreamStats:
    """What the loaders of a run read: images delivered, and the unreadable ones skipped (each once)."""

    read: int = 0
    bad: list = field(default_factory=list)


class Loader:
    """A DataLoader over a :class:`StreamDataset` whose batches an :class:`EpochBatches` sets."""

    def __init__(self, dataset: StreamDataset, opts, device: torch.device, persistent: bool):
        self.sampler = EpochBatches()
        workers = opts.workers
        self.loader = DataLoader(dataset, batch_sampler=self.sampler, num_workers=workers, collate_fn=collate,
                                 pin_memory=device.type == "cuda", persistent_workers=persistent and workers > 0,
                                 prefetch_factor=opts.prefetch if workers > 0 else None,
                                 worker_init_fn=_ignore_stop_signals if workers > 0 else None)
        self.dataset, self.device, self.skip = dataset, device, opts.skip_bad_images

    def next(self, it, stats: StreamStats, where: str):
        """The next batch ``(x uint8 or None, y, idx, bad)`` from ``it``; failures as one line."""
        try:
            batch = next(it)
        except StopIteration:
            raise
        except RuntimeError as e:
            died = worker_died(e, stats, where)
            if died is not None:
                raise died from None
            raise LoaderError(f"a data loader worker failed {where}: {_worker_error(' '.join(str(e).split()))}") \
                from None
        except Exception as e:  # re-raised from a worker with its traceback in the message
            raise LoaderError(f"a data loader worker failed {where}: {_worker_error(str(e), e)}") from None
        return self.checked(batch, stats, where)

    def checked(self, batch, stats: StreamStats, where: str):
        """``batch`` once its unreadable images are counted, or the one line that stops the run."""
        for _, name, reason in batch[3]:
            if not self.skip:
                raise bad_input_error(BadImage(name, reason), stats.read)
            if name not in stats.bad:  # each image counted once, however many epochs meet it
                stats.bad.append(name)
                log.warning("data: skipped the unreadable image %s (%s); %d skipped so far", name, reason,
                            len(stats.bad))
        stats.read += len(batch[1])
        return batch


def worker_died(error: BaseException, stats: StreamStats, where: str) -> LoaderError | None:
    """The one line for a worker's death, if ``error`` is PyTorch's report of one (raised where
    the loader is read, or anywhere by its SIGCHLD handler); else None."""
    text = " ".join(str(error).split())
    if not (isinstance(error, RuntimeError) and "DataLoader worker" in text
            and ("exited unexpectedly" in text or "killed by signal" in text)):
        return None
    return LoaderError(f"a data loader worker died ({text[:160]}) {where}, after {stats.read} images were read; "
                       "checkpoints already written are intact: run the same command to resume")


def _ignore_stop_signals(_worker_id: int) -> None:
    """A worker leaves SIGINT to the training process: Ctrl-C reaches the whole process group,
    and a worker that died of it would turn the clean stop at the next step boundary into a
    failure. (SIGTERM stays: the loader's own shutdown may terminate a worker with it.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_error(text: str, error: BaseException | None = None) -> str:
    """The last line of a worker's re-raised traceback: its exception."""
    lines = [line for line in text.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else text
    return last if error is None else f"{type(error).__name__}: {last}" if ":" not in last else last


class TrainStream:
    """The training split's loader, workers kept across epochs. ``labels``: every training
    image's label on the device (batches served from the frozen-prefix cache's store use them)."""

    def __init__(self, dataset: StreamDataset, labels: torch.Tensor, opts, device: torch.device, mean: torch.Tensor,
                 std: torch.Tensor, channels_last: bool, stats: StreamStats):
        self._loader = Loader(dataset, opts, device, persistent=True)
        self.labels, self.device, self.stats = labels, device, stats
        self.mean, self.std, self.channels_last = mean, std, channels_last
        self.workers, self.prefetch = opts.workers, opts.prefetch if opts.workers > 0 else 0

    def __len__(self) -> int:
        return len(self.labels)

    def order(self, seed: int, epoch: int) -> torch.Tensor:
        """Epoch ``epoch``'s order of the training images: a function of ``(seed, epoch)`` alone."""
        return epoch_order(len(self), seed, epoch)

    def batches(self, order: torch.Tensor, seed: int, epoch: int, batch_size: int, start: int = 0,
                shard: tuple[int, int] = (0, 1), cache=None, normalise: bool = True, with_index: bool = False):
        """Epoch ``epoch``'s batches ``start..`` in ``order``: this process's slice of each global
        batch, normalised float32 on the device (uint8 with ``normalise=False``), with the images'
        indices (on the host) too when ``with_index``. While ``cache`` (the frozen-prefix cache)
        reads its store (:attr:`reading` > 0: a stage its plan reads), batches come from the store,
        indexed by the epoch's order copied to the device once; otherwise from the files through
        the workers, the loader restarted at the batch where it is needed."""
        rank, world = shard
        part = slice(rank * batch_size // world, (rank + 1) * batch_size // world)
        it, at, rows = None, start, None  # the loader's iterator, the batch it gives next; the order on the device
        try:
            for b in range(start, len(order) // batch_size):
                global_batch = slice(b * batch_size, (b + 1) * batch_size)
                if cache is not None and cache.reading > 0:  # the store: no file is read
                    if rows is None:  # once an epoch: a copy a step from pageable memory would sync the host
                        rows = cache.device_order(order)
                    it = None  # its workers' batches ahead are not this epoch's next ones any more
                    on_device = rows[global_batch][part]
                    yield (cache[on_device], self.labels[on_device]) + \
                        ((order[global_batch][part],) if with_index else ())
                    continue
                if it is None or at != b:
                    it = None
                    self._loader.sampler.train(order, batch_size, b, shard, epoch_seed(seed, epoch))
                    it = iter(self._loader.loader)
                x, y, idx, _ = self._loader.next(it, self.stats, f"in epoch {epoch}, batch {b}")
                at = b + 1
                if x is None:
                    raise LoaderError(f"every image of epoch {epoch}'s batch {b} was unreadable (skipped)")
                x = x.to(self.device, non_blocking=True)
                yield (normalise_batch(x, self.mean, self.std, self.channels_last) if normalise else x,
                       y.to(self.device, non_blocking=True)) + ((idx,) if with_index else ())
        finally:
            del it  # an epoch left early: the persistent workers are reset by the next pass

    def close(self) -> None:
        """Stops the workers kept across epochs, once training is over: a worker that ends after
        the last step is then no failure of the run (PyTorch forgets their process ids)."""
        loader = self._loader.loader
        if loader._iterator is not None:  # private: where DataLoader keeps its persistent workers
            loader._iterator._shutdown_workers()
            loader._iterator = None

    def device_batches(self, seed: int, batch_size: int, shard: tuple[int, int], count: int) -> list:
        """``count`` uint8 training batches on the device, of an order no epoch uses: what the time
        model trains on to time the computation alone."""
        order = epoch_order(len(self), seed, -1)
        gen = self.batches(order, seed, -1, batch_size, 0, shard, normalise=False)
        out = [next(gen) for _ in range(min(count, len(order) // batch_size))]
        gen.close()
        return out

    def throughput(self, seed: int, batch_size: int, shard: tuple[int, int],
                   seconds: float = 2.0, window: int = 0) -> tuple[float, float]:
        """``(images a second, first-batch seconds)`` this process's loader gives with the model
        not running. The rate is timed from the arrival of one batch to that of the last, for
        about ``seconds`` (or until an epoch's batches run out), once the batches the workers
        prepared ahead are drained (counted, they would add ``workers * prefetch`` free batches).
        The first batch's wait is what every epoch starts with: the workers begin an epoch only
        when it is asked for. ``window``: which of several timings this is (each reads its own
        order of images, none a training epoch's)."""
        epoch = -2 - window
        order = epoch_order(len(self), seed, epoch)
        n = len(order) // batch_size
        first = min(max(1, self.workers) * (self.prefetch + 1), n - 2)  # the clock starts at this batch
        self._loader.sampler.train(order, batch_size, 0, shard, epoch_seed(seed, epoch))
        asked = time.perf_counter()
        it, images, start, latency = iter(self._loader.loader), 0, None, None
        for b in range(n):
            _, y, _, _ = self._loader.next(it, self.stats, "while the loader was timed")
            latency = time.perf_counter() - asked if latency is None else latency
            if b == first:
                start = time.perf_counter()
            elif start is not None:
                images += len(y)
                if time.perf_counter() - start >= seconds:
                    break
        elapsed = time.perf_counter() - start if start is not None else 0.0
        del it
        return (images / elapsed if elapsed > 0 and images else float("inf")), latency or 0.0


class StreamedImages:
    """A streamed split read in order: ``images[a:b]`` (consecutive slices stream through the
    workers, prefetched) or ``images[index_tensor]`` (decoded here) give normalised float32
    (N, C, H, W) on the device; ``len``, ``shape``, ``device`` and ``dtype`` as a tensor's. An
    unreadable image stops the read, or with ``data.skip_bad_images`` is given black (evaluation
    splits are scanned for those first and leave them out)."""

    def __init__(self, dataset: StreamDataset, indices: np.ndarray, size: tuple[int, int], opts,
                 device: torch.device, mean: torch.Tensor, std: torch.Tensor, channels_last: bool, stats: StreamStats):
        self._loader = Loader(dataset, opts, device, persistent=False)
        self.indices, self.stats, self.device = np.asarray(indices), stats, device
        self.mean, self.std, self.channels_last = mean, std, channels_last
        self.shape = torch.Size((len(self.indices), dataset.channels, *size))
        self._it, self._pos, self._chunk = None, -1, 0

    dtype = torch.float32
    nbytes = 0  # read from the files: nothing held in memory

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx) -> torch.Tensor:
        if isinstance(idx, slice):
            a, b, step = idx.indices(len(self))
            if step != 1:
                raise IndexError("streamed images are read in steps of 1")
            x = self._range(a, b)
        else:
            keys = [int(self.indices[i]) for i in torch.as_tensor(idx).reshape(-1).tolist()]
            batch = collate([self._loader.dataset[(k, None)] for k in keys])
            x = self._complete(self._loader.checked(batch, self.stats, "reading images by index"), keys)
        return normalise_batch(x.to(self.device, non_blocking=True), self.mean, self.std, self.channels_last)

    def labels(self) -> np.ndarray:
        return self._loader.dataset.labels[self.indices]

    def _range(self, a: int, b: int) -> torch.Tensor:
        if b <= a:
            return torch.empty((0, *self.shape[1:]), dtype=torch.uint8)
        if self._it is None or self._pos != a or self._chunk != b - a:
            self._loader.sampler.sequential(self.indices[a:].tolist(), b - a)
            self._it, self._chunk = iter(self._loader.loader), b - a
        batch = self._loader.next(self._it, self.stats, f"reading images {a}..{b - 1} in order")
        self._pos = b
        if self._pos >= len(self):
            self._it = None  # the pass is over: its workers go
        return self._complete(batch, self.indices[a:b].tolist())

    def _complete(self, batch, keys: list[int]) -> torch.Tensor:
        """The batch's images in the order of ``keys``, a skipped one given black, so that every
        row is there."""
        x, _, idx, bad = batch
        if not bad:
            return x
        out = torch.zeros((len(keys), *self.shape[1:]), dtype=torch.uint8)
        row = {int(i): j for j, i in enumerate(idx)}
        for p, k in enumerate(keys):
            if k in row:
                out[p] = x[row[k]]
        return out
