"""WebDataset tar shards (data=shards), written by make_folder beside the JPEG folder: the same
images and classes as the folder, in memory or streamed, a run trains on them, and every layout
mistake is one line naming the shard, the sample or the class."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import torch
from test_data_stream import RUN, compose_cfg, jpegs  # noqa: F401 (the folder fixture)

from freezeout.data import dataset_spec, load_data
from freezeout.data.make_folder import CLASSES
from freezeout.errors import ConfigError
from freezeout.training.trainer import train

CPU = torch.device("cpu")


def images_by_class(data) -> set[tuple[bytes, str]]:
    x = data.train_x.float() if hasattr(data.train_x, "float") else data.train_x
    pixels = (x * torch.tensor(data.spec.std).view(1, -1, 1, 1) + torch.tensor(data.spec.mean).view(1, -1, 1, 1))
    pixels = pixels.mul(255).round().to(torch.uint8)
    return {(img.numpy().tobytes(), data.spec.classes[y]) for img, y in zip(pixels, data.train_y.tolist())}


def test_shards_hold_the_folders_images(jpegs, one_thread):  # noqa: F811
    spec = dataset_spec({"source": "shards", "name": "s", "root": str(jpegs / "shards")})
    assert spec.classes == CLASSES and (spec.in_channels, spec.image_size) == (3, (16, 16))
    assert (spec.train_size, spec.val_size) == (192, 64)
    folder = load_data({"source": "image_folder", "name": "f", "root": str(jpegs), "loader": "memory"}, CPU)
    shards = load_data({"source": "shards", "name": "s", "root": str(jpegs / "shards"), "loader": "memory"}, CPU)
    assert images_by_class(shards) == images_by_class(folder)  # 192 JPEGs decoded alike, each with its class
    streamed = load_data({"source": "shards", "name": "s", "root": str(jpegs / "shards"), "loader": "stream",
                          "workers": 1}, CPU)
    seen = torch.cat([x for x, _ in streamed.stream.batches(streamed.stream.order(0, 1), 0, 1, 64)])
    stored = shards.train_x.float()
    assert sorted(map(bytes, seen.numpy().reshape(192, -1))) == sorted(map(bytes, stored.numpy().reshape(192, -1)))


def test_a_run_trains_on_shards(jpegs, tmp_path, one_thread):  # noqa: F811
    args = [a for a in RUN if not a.startswith("data=")]
    summary = train(compose_cfg("data=shards", *args, f"data.root={jpegs / 'shards'}", "epochs=1"), tmp_path)
    assert summary.status == "completed" and summary.input["loader"] == "stream" and summary.val_images == 64


def tar(path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))


def jpeg() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.parametrize("case, needles", [
    ("empty shard", ["the shard", "01.tar holds no samples"]),
    ("empty class", ["class 2 ('c')", "has no training samples"]),
    ("no label", ["00.tar: sample b has no class (.cls)", "KEY.cls"]),
    ("bad label", ["b.cls holds b'x'", "not a class index"]),
    ("compressed", ["02.tar.gz is compressed", "uncompressed .tar"]),
    ("no train", ["has no train/ folder", "DIR/train/*.tar"]),
])
def test_layout_mistakes_are_named(case, needles, tmp_path):
    root, img = tmp_path / "shards", jpeg()
    samples = {"a.jpg": img, "a.cls": b"0", "b.jpg": img, "b.cls": b"1"}
    if case == "no label":
        del samples["b.cls"]
    if case == "bad label":
        samples["b.cls"] = b"x"
    tar(root / ("train" if case != "no train" else "training") / "00.tar", samples)
    if case == "empty shard":
        tar(root / "train" / "01.tar", {})
    if case == "empty class":
        (root / "classes.txt").write_text("a\nb\nc\n")
    if case == "compressed":
        (root / "train" / "02.tar.gz").write_bytes(b"")
    with pytest.raises(ConfigError) as e:
        dataset_spec({"source": "shards", "name": "s", "root": str(root), "val_size": 1})
    assert all(n in str(e.value) for n in needles), str(e.value)
    assert "\n" not in str(e.value)
