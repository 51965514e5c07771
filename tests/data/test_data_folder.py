"""Image folders of real PNG files (Fashion-MNIST images): labels, splits, statistics, resizing,
channels, every layout error, the memory budget; and the augmentation's black padding against
torchvision's own transforms."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from helpers import TINY, run_cli
from PIL import Image

from freezeout.data import check_sizes, dataset_spec, load_data, shift_and_flip
from freezeout.errors import ConfigError

CPU = torch.device("cpu")
CLASSES = {"bag": 8, "coat": 4, "trouser": 1}  # folder -> Fashion-MNIST label; sorted: bag, coat, trouser


@pytest.fixture(scope="module")
def fmnist_by_class(fmnist_root):
    """25 real Fashion-MNIST training images (uint8 28x28) of each of three classes."""
    import torchvision

    ds = torchvision.datasets.FashionMNIST(str(fmnist_root), train=True)
    return {name: ds.data[ds.targets == label][:25].numpy() for name, label in CLASSES.items()}


def write_folder(root, images_by_class, split="train", first=0, count=20, transform=None):
    """``root/split/<class>/imgNN.png`` from images ``first .. first + count`` of each class."""
    for name, images in images_by_class.items():
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(first, first + count):
            img = Image.fromarray(images[i])
            (transform(img, i) if transform else img).save(folder / f"img{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folder(fmnist_by_class, tmp_path_factory):
    """3 classes x 20 training PNGs, and a test/ folder of 3 x 5 others."""
    root = write_folder(tmp_path_factory.mktemp("folder"), fmnist_by_class)
    return write_folder(root, fmnist_by_class, "test", first=20, count=5)


def cfg(root, **kw):
    return {"source": "image_folder", "name": "pngs", "root": str(root), "val_size": 12, **kw}


def as_uint8(x: torch.Tensor, spec) -> np.ndarray:
    """Undo the normalisation: the stored bytes back."""
    mean, std = torch.tensor(spec.mean).view(1, -1, 1, 1), torch.tensor(spec.std).view(1, -1, 1, 1)
    x = x.float() if not isinstance(x, torch.Tensor) else x  # a store: its normalised images
    return (x * std + mean).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_labels_splits_and_statistics(folder, fmnist_by_class):
    spec = dataset_spec(cfg(folder))
    assert (spec.num_classes, spec.in_channels, spec.image_size) == (3, 1, (28, 28))
    assert (spec.train_size, spec.val_size, spec.test_size, spec.classes) == (48, 12, 15, ("bag", "coat", "trouser"))
    splits = load_data(cfg(folder), CPU, with_test=True)
    assert splits.train_x.shape == (48, 1, 28, 28) and splits.val_x.shape == (12, 1, 28, 28)
    assert splits.test_x.shape == (15, 1, 28, 28) and splits.train_y.dtype == torch.int64
    label_of = {img.tobytes(): label for label, name in enumerate(sorted(CLASSES))
                for img in fmnist_by_class[name][:25]}
    seen = []
    for x, y in ((splits.train_x, splits.train_y), (splits.val_x, splits.val_y), (splits.test_x, splits.test_y)):
        images = [img[..., 0].tobytes() for img in as_uint8(x, splits.spec)]
        assert [label_of[b] for b in images] == y.tolist()  # every image has its folder's label
        seen.append(set(images))
    train, val, test = seen
    assert not train & val and len(train | val) == 60  # validation is held out of the 60, disjoint
    assert len(set(splits.val_y.tolist())) > 1  # the fixed order mixes classes
    # Statistics of the 48 training images alone (not val, not test), as the spec reports them.
    kept = np.stack([np.frombuffer(b, np.uint8) for b in train]) / 255
    assert splits.spec.mean[0] == pytest.approx(kept.mean(), abs=1e-9)
    assert splits.spec.std[0] == pytest.approx(kept.std(), abs=1e-9)
    assert abs(splits.train_x.float().mean().item()) < 1e-5
    assert splits.train_x.float().std(unbiased=False).item() == pytest.approx(1, abs=1e-5)
    # subset: the first N of the same order; validation and its labels do not move.
    small = load_data(cfg(folder, subset=10), CPU)
    assert np.array_equal(as_uint8(small.train_x.float(), small.spec), as_uint8(splits.train_x[:10], splits.spec))
    assert torch.equal(small.val_y, splits.val_y) and small.spec.mean != splits.spec.mean


def test_val_folder_and_test_statistics_stay_out(fmnist_by_class, tmp_path):
    invert = lambda img, i: Image.fromarray(255 - np.asarray(img))  # noqa: E731  (far from train's mean)
    root = write_folder(tmp_path, fmnist_by_class, count=10)
    write_folder(root, fmnist_by_class, "val", first=10, count=4, transform=invert)
    write_folder(root, fmnist_by_class, "test", first=14, count=4, transform=invert)
    spec = dataset_spec(cfg(root, val_size=5000))  # val_size is unused when val/ exists
    assert (spec.train_size, spec.val_size, spec.test_size) == (30, 12, 12)
    splits = load_data(cfg(root, val_size=5000), CPU, with_test=True)
    train = np.concatenate([fmnist_by_class[n][:10] for n in sorted(CLASSES)]) / 255
    assert splits.spec.mean[0] == pytest.approx(train.mean(), abs=1e-9)
    assert splits.val_x.float().mean().item() > 0.5 and splits.test_x.float().mean().item() > 0.5  # inverted: far from 0
    assert splits.val_y.tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_resize_and_channel_conversion(fmnist_by_class, tmp_path):
    # Mixed sizes and colour: every fourth image 40x36 RGB (a tinted copy), the others 28x28 grey.
    def mixed(img, i):
        if i % 4:
            return img
        rgb = np.stack([np.asarray(img), np.asarray(img) // 2, 255 - np.asarray(img)], -1)
        return Image.fromarray(rgb.astype(np.uint8)).resize((36, 40))
    root = write_folder(tmp_path, fmnist_by_class, count=8, transform=mixed)
    grey = load_data(cfg(root, val_size=4, image_size=16, channels=1), CPU)
    assert grey.train_x.shape == (20, 1, 16, 16) and grey.spec.image_size == (16, 16)
    rect = load_data(cfg(root, val_size=4, image_size=[12, 20]), CPU)
    assert rect.train_x.shape == (20, 3, 12, 20)  # the first image (bag/img00.png) is RGB: 3 channels
    # A grey image as RGB has three equal channels; resizing matches PIL's bilinear resize.
    one = load_data(cfg(write_folder(tmp_path / "grey", fmnist_by_class, count=4), val_size=2, image_size=[14, 10],
                        channels=3), CPU)
    img = as_uint8(one.train_x.float(), one.spec)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    pngs = sorted((tmp_path / "grey" / "train").rglob("*.png"))
    expected = {np.asarray(Image.open(p).convert("RGB").resize((10, 14), Image.BILINEAR)).tobytes() for p in pngs}
    assert {i.tobytes() for i in img} <= expected


def broken(kind, folder, tmp_path):
    """A copy of ``folder`` with one layout mistake."""
    root = tmp_path / kind
    shutil.copytree(folder, root)
    if kind == "no train":
        shutil.rmtree(root / "train")
    elif kind == "empty class":
        (root / "train" / "dress").mkdir()
    elif kind == "corrupt":
        (root / "train" / "coat" / "img07.png").write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    elif kind == "truncated":
        png = root / "train" / "coat" / "img07.png"
        png.write_bytes(png.read_bytes()[:200])
    elif kind == "mixed sizes":
        png = root / "train" / "trouser" / "img03.png"
        Image.open(png).resize((20, 24)).save(png)
    elif kind == "val classes":
        shutil.copytree(root / "test", root / "val")
        shutil.rmtree(root / "val" / "coat")
        shutil.copytree(root / "test" / "coat", root / "val" / "shoe")
    elif kind == "one class":
        shutil.rmtree(root / "train" / "bag")
        shutil.rmtree(root / "train" / "coat")
    return root


@pytest.mark.parametrize("kind, needles", [
    ("no train", ["has no train/ folder", "DIR/train/<class>/<images>"]),
    ("empty class", ["class folder", "train/dress holds no images"]),
    ("corrupt", ["cannot read the image", "coat/img07.png"]),
    ("truncated", ["cannot read the image", "coat/img07.png", "truncated"]),
    ("mixed sizes", ["images differ in size", "bag/img00.png is 28x28", "trouser/img03.png is 24x20",
                     "data.image_size"]),
    ("val classes", ["val must have the class folders of", "missing ['coat']", "not in train ['shoe']"]),
    ("one class", ["1 class folder(s)", "at least 2"]),
])
def test_layout_errors_are_one_clear_line(kind, needles, folder, tmp_path):
    with pytest.raises(ConfigError) as e:
        load_data(cfg(broken(kind, folder, tmp_path)), CPU)
    for needle in needles:
        assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("options, needles", [
    ({"max_memory_gb": 1e-5, "loader": "memory"}, ["4.7e-05 GB", "60 images of 1x28x28", "data.max_memory_gb=1e-05",
                                                   "data.subset", "data.image_size", "data.loader=stream"]),
    ({"val_size": 60}, ["data.val_size=60 is outside [1, 59]"]),
    ({"subset": 49}, ["data.subset=49 is outside [1, 48]"]),
    ({"image_size": [1, 2, 3]}, ["data.image_size=[1, 2, 3]", "[H, W]"]),
    ({"channels": 2}, ["data.channels=2", "1 (grey), 3 (RGB)"]),
])
def test_option_errors_before_loading(options, needles, folder):
    with pytest.raises(ConfigError) as e:
        check_sizes(cfg(folder, **options), dataset_spec(cfg(folder, **options)))
    for needle in needles:
        assert needle in str(e.value)


def test_memory_budget_counts_the_test_split_and_the_resize(folder):
    budget = dict(image_size=56, max_memory_gb=0.0002, loader="memory")  # kept in memory, as uint8
    spec = dataset_spec(cfg(folder, **budget))
    assert check_sizes(cfg(folder, **budget), spec) == 48  # 60 x 56^2 x 1 byte = 0.19 MB
    with pytest.raises(ConfigError, match="75 images of 1x56x56"):
        load_data(cfg(folder, **budget), CPU, with_test=True)


def test_test_split_needed_for_eval_test(fmnist_by_class, tmp_path):
    root = write_folder(tmp_path, fmnist_by_class, count=6)
    with pytest.raises(ConfigError, match="eval_test=true, but pngs has no test split"):
        check_sizes(cfg(root, val_size=3), dataset_spec(cfg(root, val_size=3)), with_test=True)


@pytest.mark.parametrize("source", ["fashion_mnist", "cifar10"])
def test_padding_is_black_as_torchvision_pads_before_normalising(source, fmnist_root, tmp_path):
    """Our crop + flip on normalised tensors equals torchvision's RandomCrop(padding=4) + flip on
    the image, then Normalize, for every crop offset and both flips."""
    if source == "fashion_mnist":
        data = load_data({"name": "fashion_mnist", "root": str(fmnist_root), "val_size": 10, "subset": 3}, CPU)
    else:
        from test_data import write_cifar
        write_cifar(tmp_path, "cifar10", n_train=20)
        data = load_data({"name": "cifar10", "root": str(tmp_path), "val_size": 10, "subset": 3}, CPU)
    spec, n, h, pad = data.spec, 3, data.train_x.shape[2], 4
    images = [TF.to_tensor(Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img))
              for img in as_uint8(data.train_x.float(), spec)]  # the stored uint8 images, as torchvision reads them
    assert torch.equal(torch.stack([TF.normalize(t, spec.mean, spec.std) for t in images]), data.train_x.float())
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            for flip in (False, True):
                ours = shift_and_flip(data.train_x.float(), torch.full((n,), dy), torch.full((n,), dx),
                                      torch.full((n,), flip), pad, torch.tensor(spec.black))
                for i, t in enumerate(images):
                    crop = TF.crop(TF.pad(t, [pad], fill=0), dy, dx, h, h)
                    theirs = TF.normalize(TF.hflip(crop) if flip else crop, spec.mean, spec.std)
                    assert torch.equal(ours[i], theirs), (dy, dx, flip)


@pytest.mark.slow
def test_train_on_an_image_folder_end_to_end(folder, tmp_path):
    """run.py on the PNG folder: one epoch of a tiny DenseNet, augmented, with a test evaluation."""
    args = [a for a in TINY if not a.startswith(("data", "epochs", "batch_size"))]
    proc = run_cli(*args, "data=image_folder", f"data.root={folder}", "data.name=pngs", "data.val_size=12",
                   "data.augment=true", "epochs=1", "batch_size=8", "eval_test=true", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations"] == 6  # 48 // 8
    assert summary["test_err"] is not None and summary["data"]["source"] == "image_folder"
