"""The two entry points: ``dataset_spec`` (cheap facts, for checks and the model) and
``load_data`` (every split as normalised float tensors on the device)."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from . import builtin, folder, tvsets
from .common import DatasetSpec, Splits, channel_stats, check_memory, check_sizes, normalise, options

_SOURCES = {"builtin": builtin, "image_folder": folder, "torchvision": tvsets}


def dataset_spec(data_cfg: Any) -> DatasetSpec:
    """What ``data_cfg`` (the ``data`` config node, a dict or a DataConfig) describes, without
    loading it: classes, channels, (H, W), split sizes. Bad input is a ConfigError."""
    opts = options(data_cfg)
    return _SOURCES[opts.source].spec(opts)


def load_data(data_cfg: Any, device: torch.device, with_test: bool = False, spec: DatasetSpec | None = None) -> Splits:
    """Every split of ``data_cfg`` on ``device``: float32 NCHW images normalised per channel and
    int64 labels. The memory budget is checked before any image is decoded, and again, with the
    sizes actually loaded, before the float tensors are made. ``spec``: what the run's checks
    found (:func:`dataset_spec`), so that it is not worked out again."""
    opts = options(data_cfg)
    source = _SOURCES[opts.source]
    spec = spec if spec is not None else source.spec(opts)
    n_train = check_sizes(opts, spec, with_test)
    raw = source.load(opts, spec, n_train, with_test)
    n_test = 0 if raw.test_x is None else len(raw.test_x)
    check_memory(opts, len(raw.train_x) + len(raw.val_x) + n_test, spec.in_channels, spec.image_size)
    if spec.mean is None:  # statistics of the training images only: nothing seen from val or test
        mean, std = channel_stats(raw.train_x)
        spec = dataclasses.replace(spec, mean=mean, std=std)
    if raw.test_x is not None:
        spec = dataclasses.replace(spec, test_size=n_test)

    def labels(y):
        return torch.as_tensor(y, dtype=torch.long).to(device)

    test_x = test_y = None
    if raw.test_x is not None:
        test_x, test_y = normalise(raw.test_x, spec, device), labels(raw.test_y)
    return Splits(normalise(raw.train_x, spec, device), labels(raw.train_y), normalise(raw.val_x, spec, device),
                  labels(raw.val_y), test_x, test_y, spec)
