"""Datasets as tensors on the device; batching and augmentation are tensor ops (as in airbench).

Sources (``data.source``): ``builtin`` (cifar10, cifar100, fashion_mnist), ``image_folder``
(your own images, one folder per class) and ``torchvision`` (any torchvision image-classification
dataset by its class name). Each gives uint8 images; :func:`load_data` normalises them per
channel and puts every split on the device as one float32 tensor.
"""
from .batches import (
           augment_batch,
           augment_draws,
           batch_stream,
           epoch_permutation,
           iterations_per_epoch,
           shift_and_flip,
           train_batches,
)
from .builtin import SYSTEM_FASHION_MNIST
from .builtin import provide_fashion_mnist as _provide_fashion_mnist
from .common import DatasetSpec, Splits, check_sizes
from .load import dataset_spec, load_data

__all__ = ["DatasetSpec", "Splits", "SYSTEM_FASHION_MNIST", "augment_batch", "augment_draws", "batch_stream",
           "check_sizes", "dataset_spec", "epoch_permutation", "iterations_per_epoch", "load_data", "shift_and_flip",
           "train_batches"]
