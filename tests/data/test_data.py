"""Data: real Fashion-MNIST from the system copy, CIFAR's own pickle format, device-side batches."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from freezeout.data import augment_batch, load_data, train_batches
from freezeout.errors import ConfigError


def write_cifar(root, name: str, n_train: int = 60, n_test: int = 20, seed: int = 0):
    """A small dataset in CIFAR's own format: pickled dicts of uint8 rows (3x32x32, channel-major)."""
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder, label_key, classes = root / "cifar-10-batches-py", "labels", 10
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
    else:
        folder, label_key, classes = root / "cifar-100-python", "fine_labels", 100
        train_files, test_files = ["train"], ["test"]
    folder.mkdir(parents=True)
    per_file = n_train // len(train_files)
    for files, n in ((train_files, per_file), (test_files, n_test)):
        for f in files:
            entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                     label_key: rng.integers(0, classes, n).tolist()}
            with open(folder / f, "wb") as fh:
                pickle.dump(entry, fh)
    return folder


def test_fashion_mnist_from_system_copy(fmnist_root):
    splits = load_data(dict(name="fashion_mnist", root=str(fmnist_root), val_size=5000, subset=1000,
                            download=False), torch.device("cpu"), with_test=True)
    assert splits.train_x.shape == (1000, 1, 28, 28) and splits.val_x.shape == (5000, 1, 28, 28)
    assert splits.test_x.shape == (10000, 1, 28, 28)
    assert set(splits.train_y.unique().tolist()) == set(range(10))
    assert abs(splits.train_x.float().mean().item()) < 0.1  # normalised with the dataset's statistics
    # The validation split is the *last* val_size training images, disjoint from the subset.
    full = load_data(dict(name="fashion_mnist", root=str(fmnist_root), val_size=5000, download=False),
                     torch.device("cpu"))
    assert torch.equal(full.train_x[:1000], splits.train_x.float()) and len(full.train_x) == 55000


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickle_format_is_read(tmp_path, name):
    folder = write_cifar(tmp_path, name)
    splits = load_data(dict(name=name, root=str(tmp_path), val_size=10, download=False), torch.device("cpu"),
                       with_test=True)
    assert splits.train_x.shape == (50, 3, 32, 32) and splits.val_x.shape == (10, 3, 32, 32)  # 60 in all
    assert splits.test_x.shape == (20, 3, 32, 32)
    # Pixel (row 0, col 1) of image 0 in channel 0 is byte 1 of the row-major red plane.
    first_train_file = "data_batch_1" if name == "cifar10" else "train"
    with open(folder / first_train_file, "rb") as fh:
        raw = pickle.load(fh)["data"][0]
    spec = splits.spec
    expected = (raw[1] / 255 - spec.mean[0]) / spec.std[0]
    assert splits.train_x[0, 0, 0, 1].item() == pytest.approx(expected, abs=1e-5)


def test_missing_cifar_without_download_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cifar100 is not in data.root"):
        load_data(dict(name="cifar100", root=str(tmp_path), download=False), torch.device("cpu"))


def test_subset_larger_than_a_local_copy_is_rejected(tmp_path):
    write_cifar(tmp_path, "cifar10")
    with pytest.raises(ConfigError, match="data.subset=55"):  # 60 images, 10 held out: 50 to train
        load_data(dict(name="cifar10", root=str(tmp_path), val_size=10, subset=55, download=False),
                  torch.device("cpu"))


@pytest.mark.parametrize("fill", [0.0, (-1.0, -2.0, -3.0)])
def test_augmentation_crops_and_flips_on_the_device(fill):
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment_batch(x, torch.Generator().manual_seed(0), pad=2, fill=fill)
    assert out.shape == x.shape
    for i in range(2):  # every output is a shifted (fill-padded) and maybe mirrored copy
        found = False
        for flip in (False, True):
            src = x[i].flip(2) if flip else x[i]
            padded = torch.nn.functional.pad(src, (2, 2, 2, 2))
            padded[:, [0, 1, -2, -1], :] = padded[:, :, [0, 1, -2, -1]] = torch.tensor(fill).view(-1, 1, 1)
            for dy in range(5):
                for dx in range(5):
                    found |= torch.equal(padded[:, dy:dy + 8, dx:dx + 8], out[i])
        assert found


def test_batches_cover_each_image_at_most_once_per_epoch():
    x, y = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    batches = list(train_batches(x, y, 3, torch.Generator().manual_seed(0), augment=False))
    assert len(batches) == 3  # the partial last batch is dropped
    seen = torch.cat([b[1] for b in batches])
    assert len(set(seen.tolist())) == 9
    for xb, yb in batches:
        assert torch.equal(xb.view(-1), yb.float())


def test_memory_budget_is_checked_before_loading():
    from freezeout.data import check_sizes, dataset_spec

    opts = {"name": "cifar100", "max_memory_gb": 0.1}  # 45,000 + 5,000 images x 3x32x32 x 1 byte = 0.154 GB
    with pytest.raises(ConfigError, match=r"0.154 GB .*50000 images of 3x32x32.*data.max_memory_gb=0.1: .*data.subset"):
        check_sizes(opts, dataset_spec(opts))
    check_sizes({**opts, "max_memory_gb": 0.18}, dataset_spec(opts))
    with pytest.raises(ConfigError, match="0.184 GB .*60000 images"):  # with the 10,000 test images
        check_sizes({**opts, "max_memory_gb": 0.18}, dataset_spec(opts), with_test=True)


@pytest.mark.parametrize("augment", [False, True])
def test_the_shards_of_a_step_are_the_single_process_batch(augment):
    x, y = torch.randn(100, 1, 8, 8), torch.arange(100)
    one = list(train_batches(x, y, 12, torch.Generator().manual_seed(3), augment, -1.0))
    gens = [torch.Generator().manual_seed(3) for _ in range(3)]
    shards = [list(train_batches(x, y, 12, g, augment, -1.0, shard=(r, 3))) for r, g in enumerate(gens)]
    assert len(one) == 8 and all(len(s) == 8 for s in shards)
    for i, (xb, yb) in enumerate(one):
        assert torch.equal(torch.cat([s[i][0] for s in shards]), xb)  # augmentation included
        assert torch.equal(torch.cat([s[i][1] for s in shards]), yb)
        assert all(len(s[i][1]) == 4 for s in shards)
    assert all(torch.equal(g.get_state(), gens[0].get_state()) for g in gens)  # the streams stay equal
