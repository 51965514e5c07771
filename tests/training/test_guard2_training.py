"""The frozen-prefix store looks like the batches it serves at every stage it reads (its shape and
dtype are the stored rows', the images' while it reads them). A real run stopped mid-epoch
records where it stopped: its checkpoint says it stopped inside an epoch, its summary counts the
steps' waits up to the stop; resumed, its best validation error is the lowest of its epochs'."""
from __future__ import annotations

import json
import signal

import pytest
import torch

from freezeout.freezing.controller import freeze_module
from freezeout.models import build_model
from freezeout.rundir.records import read_metrics
from freezeout.training.cache import FrozenPrefixCache
from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_store_has_the_shape_and_dtype_of_the_rows_it_serves():
    torch.manual_seed(0)
    model = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    for g in model.groups[:3]:
        freeze_module(g)
    images = torch.randn(6, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    everything = torch.arange(len(images))
    cache = FrozenPrefixCache(model, images, 1e9)
    assert cache.shape == images.shape and cache.dtype == images.dtype
    shapes = set()
    for k in (1, 2, 3):
        assert cache.advance(k) == k
        rows = cache[everything]
        assert cache.shape == rows.shape and cache.dtype == rows.dtype, k
        shapes.add(cache.shape)
    assert len(shapes) == 3  # each stage's store has its own shape: the check above tells them apart
    auto = FrozenPrefixCache(model, images, 1e9, stages={2})
    assert auto.advance(1) == 0 and auto.shape == images.shape  # a stage outside the plan reads the images
    assert auto.advance(2) == 2 and auto.shape == auto[everything].shape


def test_a_run_stopped_mid_epoch_records_where_it_stopped_and_resumes_to_its_best(tiny_cfg, tmp_path):
    cfg = tiny_cfg("epochs=2", "strategy=none", "log_every=4")  # 16 steps an epoch

    def pause(j: int) -> None:
        if j == 20:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path, pause=pause)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["loader"] == {"kind": "memory", "iteration": 20, "in_epoch": True}
    stopped = json.loads((tmp_path / "summary.json").read_text())["input"]
    assert stopped["data_wait_by_stage"]["0"]["steps"] == 20  # every step up to the stop, not the last epoch's
    assert stopped["data_wait_seconds"] == checkpoint["loop"]["data_wait_seconds"]

    summary = train(cfg, tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["loader"] == {"kind": "memory", "iteration": 32, "in_epoch": False}
    errors = [r["val_err"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert len(set(errors)) == 2  # the epochs differ: the lowest is one of them, not both
    assert summary.best_val_err == checkpoint["loop"]["best_val_err"] == min(errors)
