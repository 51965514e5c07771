"""cache_frozen=auto and the store's accounting. The plan is decided from measured numbers given
to the time model's functions: each stage reads the store only where it pays over the run (its
steps against the advances it needs), so a short run steps aside and a long one reads it. The
store: its budget counts both buffers (the old store and the new coexist while it advances) and
the training images in the same memory; it is kept in the run's precision, in two reused
buffers; batches of a host store take their indices from a host copy of the epoch's order. A
real tiny run with auto records its plan and trains."""
from __future__ import annotations

import pytest
import torch
from helpers import TINY, compose_cfg

from freezeout.config import register_configs
from freezeout.errors import ConfigError
from freezeout.freezing.controller import freeze_module
from freezeout.models import build_model
from freezeout.speedup.formulas import time_speedup
from freezeout.speedup.timemodel import apply_cache_plan, plan_cache_stages
from freezeout.training.cache import FrozenPrefixCache, _HostGather, cache_mode
from freezeout.training.trainer import train

register_configs()
pytestmark = pytest.mark.usefixtures("one_thread")

#: Four groups freezing at a quarter, a half and three quarters of the run: stages 0-3 last a quarter each.
TIMES = (0.25, 0.5, 0.75, 1.0)
UNCACHED = {0: 1.0, 1: 0.8, 2: 0.6, 3: 0.4}  # seconds a step without the store


def test_auto_reads_the_store_where_it_is_faster_and_not_where_it_is_slower():
    cheap = {1: 1.0, 2: 1.0, 3: 1.0}  # seconds to advance the store to each stage
    faster = {0: 1.0, 1: 0.5, 2: 0.3, 3: 0.1}
    slower = {0: 1.0, 1: 0.9, 2: 0.7, 3: 0.5}
    mixed = {0: 1.0, 1: 0.5, 2: 0.7, 3: 0.1}  # stage 2: reading its wide store is slower than recomputing
    assert plan_cache_stages(TIMES, 1000, UNCACHED, faster, cheap) == {1, 2, 3}
    assert plan_cache_stages(TIMES, 1000, UNCACHED, slower, cheap) == set()
    assert plan_cache_stages(TIMES, 1000, UNCACHED, mixed, cheap) == {1, 3}  # stage 3 advances past 2 itself
    seconds, events = apply_cache_plan({1, 3}, UNCACHED, mixed, cheap)
    assert seconds == {0: 1.0, 1: 0.5, 2: 0.6, 3: 0.1} and events == {0: 0.0, 1: 1.0, 2: 0.0, 3: 2.0}


def test_auto_steps_aside_in_a_short_run_and_reads_the_store_in_a_long_one():
    """Advances that cost more than a short run's steps save: none read; over a long run: all."""
    faster = {0: 1.0, 1: 0.5, 2: 0.3, 3: 0.1}
    dear = {1: 40.0, 2: 30.0, 3: 30.0}
    assert plan_cache_stages(TIMES, 100, UNCACHED, faster, dear) == set()  # saves 22.5 s, advances cost 100 s
    assert plan_cache_stages(TIMES, 10_000, UNCACHED, faster, dear) == {1, 2, 3}
    for total in (100, 400, 1000, 10_000):  # never slower than the uncached run, by the same time model
        plan = plan_cache_stages(TIMES, total, UNCACHED, faster, dear)
        seconds, events = apply_cache_plan(plan, UNCACHED, faster, dear)
        assert time_speedup(seconds, TIMES, events, total) >= time_speedup(UNCACHED, TIMES, {}, total)


def test_an_adaptive_rule_decides_each_stage_on_its_own():
    cached = {0: 1.0, 1: 0.5, 2: 0.7, 3: 0.1}
    assert plan_cache_stages(None, 1000, UNCACHED, cached, {1: 1.0, 2: 1.0, 3: 1.0}) == {1, 3}


def test_cache_frozen_takes_true_false_and_auto_only():
    assert [cache_mode(v) for v in (True, False, "auto", "AUTO")] == ["on", "off", "auto", "auto"]
    with pytest.raises(ConfigError, match="cache_frozen='yes'; allowed: true, false, auto"):
        cache_mode("yes")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("densenet", 10, 1, depth=10, growth_rate=4)  # stem, bottleneck, transition, ...
    with torch.no_grad():
        net.train()(torch.randn(32, 1, 12, 12))
    for g in net.groups[:3]:
        freeze_module(g)
    return net.train()


@pytest.fixture(scope="module")
def images():
    return torch.randn(10, 1, 12, 12, generator=torch.Generator().manual_seed(1))


def test_the_budget_counts_the_old_and_the_new_store_and_the_images(model, images):
    probe = FrozenPrefixCache(model, images, 1e9)
    s1, s2, data = probe.stage_bytes(1), probe.stage_bytes(2), images.numel() * 4
    assert FrozenPrefixCache(model, images, data + s1 + s2).advance(2) == 2
    assert FrozenPrefixCache(model, images, data + s1 + s2 - 1).advance(2) == 1  # the old store stays while it advances
    assert FrozenPrefixCache(model, images, s1 + s2).advance(2) == 1  # the images share its memory
    host = FrozenPrefixCache(model, images, s1 + s2, on_host=True)  # a CPU run: the host is the same memory
    assert host.advance(2) == 1 and host.held_bytes() == data + s1


def test_the_store_reuses_its_two_buffers(model, images):
    cache = FrozenPrefixCache(model, images, 1e9)
    cache.advance(1)
    first = cache.features.data_ptr()
    cache.advance(3)  # the transition's output is smaller than the stem's: it goes back into that buffer
    assert cache.features.data_ptr() == first and cache.held_bytes() == images.numel() * 4 + sum(
        cache.stage_bytes(k) for k in (1, 2))


def test_the_store_is_kept_in_the_runs_precision(model, images):
    fp32, bf16 = FrozenPrefixCache(model, images, 1e9), FrozenPrefixCache(model, images, 1e9, precision="bf16")
    assert fp32.advance(3) == bf16.advance(3) == 3
    assert bf16.features.dtype == torch.bfloat16 and bf16.stage_bytes(3) * 2 == fp32.stage_bytes(3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = model.forward_from(0, images, stop=3)  # what the uncached bf16 run's prefix computes
    assert torch.equal(bf16.features, expected)


def test_a_stage_outside_the_plan_reads_the_images(model, images):
    cache = FrozenPrefixCache(model, images, 1e9, stages={3})
    idx = torch.tensor([4, 0, 9])
    assert cache.advance(1) == 0 and cache.stage == 0 and torch.equal(cache[idx], images[idx])
    assert cache.advance(3) == 3 and cache.stage == 3 and torch.equal(cache[idx], cache.features[idx])
    assert cache.record() == {"mode": "auto", "stages": [3], "stage": 3, "full": False, "on_host": False,
                              "held_bytes": cache.held_bytes()}


def test_a_host_stores_batches_index_a_host_copy_of_the_epochs_order():
    gather = _HostGather(cache=None)
    perm = torch.randperm(100)
    for i in range(3):  # the batches of one epoch, and a process's shard of each
        idx = perm[i * 32:(i + 1) * 32][8:24]
        assert torch.equal(gather.host_index(idx), idx) and gather._perm is perm
    copy = gather._host_perm
    assert gather.host_index(perm[32:64]) is not None and gather._host_perm is copy  # one copy an epoch
    other = torch.randperm(100)
    assert torch.equal(gather.host_index(other[:32]), other[:32]) and gather._perm is other




def test_a_run_with_auto_records_its_plan(fmnist_root, tmp_path):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5", "cache_frozen=auto",
                      "predict_time_share=1.0")
    summary = train(cfg, tmp_path / "auto")
    assert summary.status == "completed" and summary.predicted_speedup["time"] is not None
    plan = summary.cache["stages"]
    assert summary.cache["mode"] == "auto" and set(plan) <= {int(k) for k in summary.step_seconds} - {0}
    assert summary.cache["stage"] == (max(plan) if plan else 0)
