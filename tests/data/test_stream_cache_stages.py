"""Streamed data with the frozen-prefix cache under a plan (``cache_frozen=auto``): a stage the
plan reads takes its batches from the store; a stage it does not read takes them from the files
through the loader's workers, at the right batch of the epoch, as an uncached epoch does, and
never indexes the streamed images (that would decode the batch in the training process, with a
device tensor on a GPU). The time model's streamed batches follow the same rule."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from freezeout.data import load_data
from freezeout.data.loader import StreamedImages
from freezeout.data.make_folder import write
from freezeout.models import build_model
from freezeout.training.cache import FrozenPrefixCache

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def stream_data(tmp_path_factory, fmnist_root):
    root = tmp_path_factory.mktemp("jpegs")
    write(root, size=16, train=192, val=64, fmnist_root=fmnist_root)
    opts = {"source": "image_folder", "name": "jpegs", "root": str(root), "loader": "stream", "workers": 1,
            "augment": False}
    return load_data(opts, CPU)


@pytest.fixture
def indexed(monkeypatch):
    """Every index other than a slice the streamed images are read with."""
    calls = []
    original = StreamedImages.__getitem__

    def spy(self, idx):
        if not isinstance(idx, slice):
            calls.append(idx)
        return original(self, idx)

    monkeypatch.setattr(StreamedImages, "__getitem__", spy)
    return calls


def test_stages_the_plan_does_not_read_come_through_the_workers(stream_data, indexed, one_thread):
    stream = stream_data.stream
    torch.manual_seed(0)
    model = build_model("densenet", 10, 3, depth=10, growth_rate=4).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    cache = FrozenPrefixCache(model, stream_data.train_x, 1e9, stages={2})
    order = stream.order(0, 1)
    plain = list(stream.batches(order, 0, 1, 32, with_index=True))
    read_before = stream.stats.read
    got = []
    for b, batch in enumerate(stream.batches(order, 0, 1, 32, cache=cache, with_index=True)):
        got.append(batch)
        if b == 1:
            assert cache.advance(2) == 2  # a stage the plan reads: the store from batch 2 on
        if b == 3:
            assert cache.advance(3) == 0 and cache.stage == 2  # one it does not: the files again
    assert len(got) == len(plain) == 6
    assert not indexed, f"the streamed images were indexed with {indexed}"
    for b, ((x, y, idx), (px, py, pidx)) in enumerate(zip(got, plain)):
        assert torch.equal(idx, pidx) and torch.equal(y, py)
        if b in (2, 3):  # from the store: the frozen prefix's output for those very images
            assert x.shape[1:] == cache.features.shape[1:] and torch.equal(x, cache.features[idx])
        else:  # from the files: the uncached epoch's batch, the loader restarted where it was needed
            assert torch.equal(x, px)
    assert stream.stats.read - read_before == 4 * 32 + len(stream)  # 4 batches, and the store's one pass


def test_the_time_models_streamed_batches_read_the_store_only_where_the_plan_does(stream_data, indexed, one_thread):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from freezeout.speedup.inputmodel import stream_batches

    torch.manual_seed(0)
    model = build_model("densenet", 10, 3, depth=10, growth_rate=4).eval()
    cache = FrozenPrefixCache(model, stream_data.train_x, 1e9, stages={2})
    cfg = OmegaConf.create({"seed": 0, "batch_size": 32, "data": {"augment": False}})
    make_batches = stream_batches(cfg, stream_data)
    step = SimpleNamespace(cache=cache)
    cache.advance(2)
    x, _ = next(make_batches(step))
    assert x.shape[1:] == cache.features.shape[1:]  # read from the store
    cache.advance(3)  # not read: the kept batches, images
    x, _ = next(make_batches(step))
    assert x.shape[1:] == stream_data.train_x.shape[1:] and not indexed
