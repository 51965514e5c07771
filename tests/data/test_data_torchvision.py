"""torchvision datasets by class name: Fashion-MNIST from the system copy, FakeData through the
sample-by-sample path, the config group, and every error (including offline download)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from helpers import REPO, run_cli
from hydra import compose, initialize_config_dir
from PIL import Image

from freezeout.config import register_configs
from freezeout.data import dataset_spec, load_data
from freezeout.data.common import fixed_order
from freezeout.data.tvsets import _sample
from freezeout.errors import ConfigError
from freezeout.training.checks import validate

register_configs()
CPU = torch.device("cpu")


def tv(name, **kw):
    return {"source": "torchvision", "name": name, "val_size": 500, **kw}


def test_fashion_mnist_by_class_name(fmnist_root):
    spec = dataset_spec(tv("FashionMNIST", root=str(fmnist_root), download=False))
    assert (spec.num_classes, spec.in_channels, spec.image_size, spec.train_size) == (10, 1, (28, 28), 59_500)
    assert spec.classes[0] == "T-shirt/top" and spec.test_size is None  # known once loaded
    splits = load_data(tv("FashionMNIST", root=str(fmnist_root), subset=1000, download=False), CPU, with_test=True)
    assert splits.train_x.shape == (1000, 1, 28, 28) and splits.val_x.shape == (500, 1, 28, 28)
    assert splits.test_x.shape == (10_000, 1, 28, 28) and splits.spec.test_size == 10_000
    # The images and labels are torchvision's own, in the fixed order (val: its last 500).
    ds = torchvision.datasets.FashionMNIST(str(fmnist_root), train=True)
    order = fixed_order([str(i) for i in range(len(ds))])
    for j, i in ((0, order[0]), (999, order[999])):
        img, label = ds[i]
        stored = np.asarray(img) / 255
        assert splits.train_y[j].item() == label
        expected = (stored - splits.spec.mean[0]) / splits.spec.std[0]
        assert np.allclose(splits.train_x[j, 0].numpy(), expected, atol=1e-5)
    assert splits.val_y.tolist() == ds.targets[order[-500:]].tolist()
    # Normalised with the statistics of the 1,000 training images it keeps.
    kept = ds.data[order[:1000]].double() / 255
    assert splits.spec.mean[0] == pytest.approx(kept.mean().item(), abs=1e-9)
    assert splits.spec.std[0] == pytest.approx(kept.std(unbiased=False).item(), abs=1e-9)


def test_resize_and_rgb_go_through_pil(fmnist_root):
    splits = load_data(tv("FashionMNIST", root=str(fmnist_root), subset=40, val_size=10, image_size=[14, 12],
                          channels=3, download=False), CPU)
    assert splits.train_x.shape == (40, 3, 14, 12) and splits.spec.image_size == (14, 12)
    ds = torchvision.datasets.FashionMNIST(str(fmnist_root), train=True)
    first = ds[fixed_order([str(i) for i in range(len(ds))])[0]][0]
    expected = np.asarray(first.convert("RGB").resize((12, 14), Image.BILINEAR)) / 255
    spec = splits.spec
    got = splits.train_x[0].permute(1, 2, 0).numpy() * np.asarray(spec.std) + np.asarray(spec.mean)
    assert np.allclose(got, expected, atol=1e-5)


def test_a_dataset_without_files_or_test_split():
    """FakeData: no root, no download, no stored array; decoded sample by sample."""
    opts = tv("FakeData", val_size=8, kwargs={"size": 40, "image_size": [3, 12, 10], "num_classes": 4})
    spec = dataset_spec(opts)
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (4, 3, (12, 10))
    assert (spec.train_size, spec.test_size) == (32, 0)
    splits = load_data(opts, CPU)
    assert splits.train_x.shape == (32, 3, 12, 10) and set(splits.train_y.tolist()) <= {0, 1, 2, 3}
    with pytest.raises(ConfigError, match="eval_test=true, but FakeData has no test split"):
        load_data(opts, CPU, with_test=True)


@pytest.mark.parametrize("options, needles", [
    (tv("Cifar10"), ["data.name='Cifar10' is not a torchvision dataset", "did you mean CIFAR10",
                     "image-classification ones: ", " SVHN,"]),
    (tv("CocoDetection"), ["CocoDetection is not an image-classification dataset"]),
    (tv("Kinetics"), ["Kinetics is not an image-classification dataset"]),
    (tv("ImageFolder"), ["data=image_folder data.root=DIR"]),
    (tv("EMNIST"), ["EMNIST needs split", "balanced", "+data.kwargs.split=VALUE"]),
    (tv("EMNIST", kwargs={"split": "nope"}), ["EMNIST(root='data', split='nope', train=True) rejected its arguments",
                                              "Unknown value 'nope'", "data.kwargs"]),
    (tv("MNIST", kwargs={"train": False}), ["data.kwargs may not set train"]),
    (tv("???"), ["data.name is not set"]),
    (tv("FakeData", kwargs={"size": 4}), ["data.val_size=500 is outside [1, 3]"]),
    ({"name": "cifar10", "image_size": 16}, ["data=cifar10 is used at its own size", "data=torchvision"]),
    ({"name": "cifar1O"}, ["data.name='cifar1O' is unknown; allowed: cifar10, cifar100, fashion_mnist"]),
])
def test_bad_names_and_arguments(options, needles):
    with pytest.raises(ConfigError) as e:
        dataset_spec(options)
    for needle in needles:
        assert needle in str(e.value)


def test_missing_without_download_and_not_classification(tmp_path):
    with pytest.raises(ConfigError, match=r"KMNIST is not in data.root=.* and data.download=false \(RuntimeError: "
                                          r"Dataset not found"):
        dataset_spec(tv("KMNIST", root=str(tmp_path), download=False))
    fake = Image.new("L", (4, 4))
    with pytest.raises(ConfigError, match=r"X is not an image-classification dataset: a sample is \(Image, Tensor\)"):
        _sample([(fake, torch.zeros(40))], 0, "X")  # e.g. CelebA's attribute vectors
    assert _sample([(fake, torch.tensor(3))], 0, "X") == (fake, 3)


def test_config_group_composes_and_validates(fmnist_root):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["data=torchvision", "data.name=FashionMNIST",
                                                       f"data.root={fmnist_root}", "model.depth=10", "device=cpu",
                                                       "+data.kwargs.unused=1"])
        assert cfg.data.source == "torchvision" and cfg.data.kwargs == {"unused": 1}
        with pytest.raises(ConfigError, match="unexpected keyword argument 'unused'"):
            validate(cfg)
        cfg.data.kwargs = {}
        validate(cfg)
        cfg.data.max_memory_gb = 0.01  # 60,000 x 28 x 28 x 1 byte (uint8) = 0.047 GB
        with pytest.raises(ConfigError, match=r"0.047 GB .*as uint8.*data.max_memory_gb=0.01"):
            validate(cfg)


@pytest.mark.slow
def test_offline_download_failure_says_what_to_do(tmp_path):
    proc = run_cli("data=torchvision", "data.name=KMNIST", f"data.root={tmp_path / 'empty'}", "model.depth=10",
                   "device=cpu", f"hydra.run.dir={tmp_path / 'run'}",
                   env={"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
                        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    # Less the run's first line and the notice said before the download is tried:
    lines = [x for x in proc.stderr.strip().splitlines() if "run directory:" not in x and "torchvision downloads it" not in x]
    assert "KMNIST is not in" in proc.stderr and "torchvision downloads it into" in proc.stderr  # the notice
    assert len(lines) == 1 and "KMNIST is not in data.root" in lines[0] and "downloading it failed" in lines[0]
    assert "torchvision.datasets.KMNIST('DIR', train=True, download=True)" in lines[0]
    assert "data=fashion_mnist" in lines[0]
