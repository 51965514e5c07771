"""Every split of a streamable source (image folder, tar shards) opened for streaming: readers and
transforms per split, the normalisation statistics from a sample of the training images, and
the evaluation splits scanned for unreadable images when those are skipped."""
from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from ..errors import ConfigError
from .common import Splits, channel_stats
from .images import BadImage, bad_input_error
from .loader import Loader, StreamedImages, StreamStats, TrainStream
from .recipes import augment_recipe, stream_transforms
from .stream import StreamDataset

log = logging.getLogger("freezeout")
STATS_SAMPLE = 1024  # training images the normalisation statistics of streamed data are taken from


def open_stream(opts, spec, source, n_train: int, with_test: bool, device: torch.device,
                channels_last: bool) -> Splits:
    """Every split of a streamable source (image folder, tar shards) as streamed images."""
    recipe, size, channels = augment_recipe(opts.augment), tuple(spec.image_size), spec.in_channels
    readers = source.stream_items(opts, spec, n_train, with_test)  # {"train": (reader, labels), ...}
    stats = StreamStats()

    def dataset(split: str, train: bool) -> StreamDataset:
        reader, labels = readers[split]
        return StreamDataset(reader, np.asarray(labels, dtype=np.int64), channels,
                             stream_transforms(recipe, size, train))

    if spec.mean is None:
        mean_, std_ = _sample_stats(dataset("train", False), opts, n_train)
        spec = dataclasses.replace(spec, mean=mean_, std=std_)
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def images(split: str) -> tuple[StreamedImages, torch.Tensor]:
        ds = dataset(split, False)
        keep = np.arange(len(ds))
        if opts.skip_bad_images and split != "train":  # evaluation leaves unreadable images out
            keep = _readable(ds, opts, stats)
        x = StreamedImages(ds, keep, size, opts, device, mean, std, channels_last, stats)
        return x, torch.as_tensor(x.labels(), dtype=torch.long).to(device)

    train_x, train_y = images("train")
    val_x, val_y = images("val")
    test_x, test_y = images("test") if with_test else (None, None)
    if with_test:
        spec = dataclasses.replace(spec, test_size=len(test_x))
    stream = TrainStream(dataset("train", True), train_y, opts, device, mean, std, channels_last, stats)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, spec, loader="stream", stream=stream,
                  bad_images=stats.bad)


def _sample_stats(ds: StreamDataset, opts, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of up to ``STATS_SAMPLE`` training images spread evenly over the
    split (as the evaluation transform gives them): streamed data is not read whole first."""
    picks = np.unique(np.linspace(0, n - 1, min(n, STATS_SAMPLE)).round().astype(np.int64))
    loader = Loader(ds, opts, torch.device("cpu"), persistent=False)
    loader.skip = True
    loader.sampler.sequential(picks.tolist(), 128)
    parts, stats = [], StreamStats()
    for batch in loader.loader:
        for _, name, reason in batch[3]:
            if not opts.skip_bad_images:
                raise bad_input_error(BadImage(name, reason), stats.read)
        if batch[0] is not None:
            parts.append(batch[0].permute(0, 2, 3, 1).numpy())
            stats.read += len(batch[1])
    if not parts:
        raise ConfigError(f"none of the {len(picks)} training images sampled for the normalisation statistics "
                          f"could be read (data.root={opts.root})")
    return channel_stats(np.concatenate(parts))


def _readable(ds: StreamDataset, opts, stats: StreamStats) -> np.ndarray:
    """The indices of ``ds``'s images that decode (one pass through the workers); the others
    are counted as skipped."""
    loader = Loader(ds, opts, torch.device("cpu"), persistent=False)
    loader.sampler.sequential(range(len(ds)), 256)
    keep = []
    for batch in loader.loader:
        keep += batch[2].tolist()
        for _, name, _ in batch[3]:
            stats.bad.append(name)
            log.warning("data: skipped the unreadable image %s", name)
    return np.asarray(sorted(keep), dtype=np.int64)
