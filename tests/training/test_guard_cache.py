"""The frozen-prefix cache on a real tiny DenseNet: a budget that fits exactly one stage (its
store and the training images) stops there, one byte less stops before it; every stored row is
what the frozen groups compute for its image, in chunks that do not divide the images; advancing
step by step or at once agrees."""
from __future__ import annotations

import logging

import pytest
import torch

from freezeout.freezing.controller import freeze_module
from freezeout.models import build_model
from freezeout.training.cache import FrozenPrefixCache, stage_shapes

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    with torch.no_grad():  # BatchNorm statistics that are not the identity, as after training
        net.train()(torch.randn(32, 1, 12, 12))
    for g in net.groups[:3]:
        freeze_module(g)
    return net.train()  # the frozen groups stay in eval mode


@pytest.fixture(scope="module")
def images():
    return torch.randn(10, 1, 12, 12, generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def expected(model, images, k):
    return torch.cat([model.forward_from(0, images[i:i + 1], stop=k) for i in range(len(images))])


def test_stage_shapes_and_bytes(model, images):
    shapes = stage_shapes(model, (1, 12, 12), torch.device("cpu"))
    assert model.training and len(shapes) == len(model.groups)
    assert shapes[-1] == (10,) and shapes[0] == tuple(model.forward_from(0, images[:1], stop=1).shape[1:])
    cache = FrozenPrefixCache(model, images, 1e9)
    for k, shape in enumerate(shapes[:3], start=1):
        assert cache.stage_bytes(k) == 4 * len(images) * torch.Size(shape).numel()


def test_a_budget_of_exactly_one_stage_stops_after_it(model, images, caplog):
    one = FrozenPrefixCache(model, images, 1e9).held_bytes(1)  # the stage-1 store and the images
    cache = FrozenPrefixCache(model, images, one, batch_size=4)  # 10 images: chunks of 3, 3, 4
    with caplog.at_level(logging.WARNING, logger="freezeout"):
        assert cache.advance(3) == 1 and cache.stage == 1 and cache.full
    assert "it stays at 1 group(s)" in caplog.text
    assert torch.allclose(cache.features, expected(model, images, 1), atol=1e-5)
    assert cache.advance(3) == 1  # full: no further try
    short = FrozenPrefixCache(model, images, one - 1)
    assert short.advance(1) == 0 and short.features is images and short.full


def test_every_row_is_what_the_frozen_prefix_computes(model, images):
    at_once = FrozenPrefixCache(model, images, 1e9, batch_size=4)
    assert at_once.advance(3) == 3
    assert torch.allclose(at_once.features, expected(model, images, 3), atol=1e-5)
    stepwise = FrozenPrefixCache(model, images, 1e9, batch_size=3, on_host=True)
    assert stepwise.advance(1) == 1 and stepwise.advance(3) == 3
    assert torch.allclose(stepwise.features, at_once.features, atol=1e-5)
    idx = torch.tensor([9, 0, 4])
    assert torch.equal(at_once[idx], at_once.features[idx]) and len(at_once) == 10
    assert at_once.dtype == torch.float32 and at_once.device == images.device
