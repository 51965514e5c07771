"""The validation split is the end of the official training set and never overlaps training."""
from __future__ import annotations

import torch
import torchvision

from freezeout.data import load_data


def test_validation_is_the_last_images_and_disjoint_from_training(fmnist_root):
    raw = torchvision.datasets.FashionMNIST(str(fmnist_root), train=True, download=False)
    images, labels = raw.data, raw.targets  # uint8 (60000, 28, 28)
    splits = load_data({"name": "fashion_mnist", "root": str(fmnist_root), "val_size": 300, "subset": 700,
                        "download": False}, torch.device("cpu"))
    spec = splits.spec

    def normalised(x):
        return (x.float().div(255).unsqueeze(1) - spec.mean[0]) / spec.std[0]

    assert torch.allclose(splits.val_x.float(), normalised(images[-300:]), atol=1e-6)
    assert torch.equal(splits.val_y, labels[-300:])
    assert torch.allclose(splits.train_x.float(), normalised(images[:700]), atol=1e-6)
    assert torch.equal(splits.train_y, labels[:700])
    # no training image is also a validation image (by content, not just by index)
    train_keys = {bytes(x.numpy()) for x in images[:700]}
    assert not any(bytes(x.numpy()) in train_keys for x in images[-300:])
