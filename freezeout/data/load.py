"""The two entry points: ``dataset_spec`` (cheap facts, for checks and the model) and
``load_data`` (every split, kept in memory as uint8 on the device or streamed from its files)."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch

from . import builtin, folder, shards, tvsets
from .common import DatasetSpec, Splits, channel_stats, check_memory, check_sizes, choose_loader, options, stored_gb
from .store import to_store

log = logging.getLogger("freezeout")
_SOURCES = {"builtin": builtin, "image_folder": folder, "shards": shards, "torchvision": tvsets}


def dataset_spec(data_cfg: Any) -> DatasetSpec:
    """What ``data_cfg`` (the ``data`` config node, a dict or a DataConfig) describes, without
    loading it: classes, channels, (H, W), split sizes. Bad input is a ConfigError."""
    opts = options(data_cfg)
    return _SOURCES[opts.source].spec(opts)


def load_data(data_cfg: Any, device: torch.device, with_test: bool = False, spec: DatasetSpec | None = None,
              channels_last: bool = False) -> Splits:
    """Every split of ``data_cfg`` for training on ``device``, indexed as normalised float32 NCHW
    images (see :class:`~freezeout.data.common.Splits`) with int64 labels. ``data.loader`` (auto:
    in memory while the uint8 images fit ``data.max_memory_gb``) says whether they are kept in
    memory, as uint8 in ``channels_last`` or contiguous layout, or streamed. The memory budget is
    checked before any image is decoded, and again with the sizes actually loaded. ``spec``: what
    the run's checks found (:func:`dataset_spec`), so that it is not worked out again."""
    opts = options(data_cfg)
    source = _SOURCES[opts.source]
    spec = spec if spec is not None else source.spec(opts)
    n_train = check_sizes(opts, spec, with_test)
    n_test = (spec.test_size or 0) if with_test else 0
    n_images = n_train + spec.val_size + n_test
    loader = choose_loader(opts, n_images, spec.in_channels, spec.image_size)
    if loader == "stream":
        from .streamed import open_stream

        if opts.loader == "auto":
            log.info("data: %d images of %dx%dx%d take %.3g GB as uint8, more than data.max_memory_gb=%g: "
                     "streaming them from %s with %d workers", n_images, spec.in_channels, *spec.image_size,
                     stored_gb(n_images, spec.in_channels, spec.image_size), opts.max_memory_gb, opts.root,
                     opts.workers)
        return open_stream(opts, spec, source, n_train, with_test, device, channels_last)
    raw = source.load(opts, spec, n_train, with_test, channels_last)
    n_test = 0 if raw.test_x is None else len(raw.test_x)
    check_memory(opts, len(raw.train_x) + len(raw.val_x) + n_test, spec.in_channels, spec.image_size)
    if spec.mean is None:  # statistics of the training images only: nothing seen from val or test
        mean, std = channel_stats(raw.train_x)
        spec = dataclasses.replace(spec, mean=mean, std=std)
    if raw.test_x is not None:
        spec = dataclasses.replace(spec, test_size=n_test)
    if raw.bad:
        log.warning("data: skipped %d unreadable image(s) (data.skip_bad_images=true), e.g. %s", len(raw.bad),
                    raw.bad[0])

    def store(x):  # one split at a time, each source array dropped once stored
        return to_store(x, spec.mean, spec.std, device, channels_last)

    def labels(y):
        return torch.as_tensor(y, dtype=torch.long).to(device)

    splits = Splits(store(raw.train_x), labels(raw.train_y), store(raw.val_x), labels(raw.val_y), None, None, spec,
                    bad_images=list(raw.bad))
    if raw.test_x is not None:
        splits.test_x, splits.test_y = store(raw.test_x), labels(raw.test_y)
    return splits
