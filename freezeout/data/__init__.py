"""Datasets for training: kept in memory as uint8 on the device (batching, conversion and
augmentation are tensor ops there, as in airbench), or streamed from image files by DataLoader
workers when they do not fit (``data.loader``).

Sources (``data.source``): ``builtin`` (cifar10, cifar100, fashion_mnist), ``image_folder``
(your own images, one folder per class), ``shards`` (WebDataset tar shards) and ``torchvision``
(any torchvision image-classification dataset by its class name). :func:`load_data` gives every
split indexed as normalised float32 images (:class:`Splits`).
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
from .images import BadImage
from .load import dataset_spec, load_data
from .loader import LoaderError
from .recipes import RECIPES, augment_recipe
from .store import ImageStore

__all__ = ["RECIPES", "SYSTEM_FASHION_MNIST", "BadImage", "DatasetSpec", "ImageStore", "LoaderError", "Splits",
           "augment_batch", "augment_draws", "augment_recipe", "batch_stream", "check_sizes", "dataset_spec",
           "epoch_permutation", "iterations_per_epoch", "load_data", "shift_and_flip", "train_batches"]
