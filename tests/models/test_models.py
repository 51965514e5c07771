"""Every registered model (looped over, as timm does) and the registry's errors."""
import re

import pytest
import torch
from torch import nn

from freezeout.models import GroupedModel, build_model, list_models, model_hparams

#: Small settings so each model builds and runs in milliseconds; others fall back to defaults.
SMALL = {
    "densenet": {"depth": 10, "growth_rate": 4},
    "wrn": {"depth": 10, "widen_factor": 1},
    "vgg": {"width": 4},
}
SHAPES = [(2, 1, 28, 28), (2, 3, 32, 32)]


pytestmark = pytest.mark.usefixtures("one_thread")


def build_small(name: str, in_channels: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, 10, in_channels, **SMALL.get(name, {}))


def test_registry_lists_the_known_models():
    assert {"densenet", "wrn", "vgg"} <= set(list_models())
    assert list_models() == sorted(list_models())


@pytest.mark.parametrize("shape", SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_runs_forward(name, shape):
    model = build_small(name, shape[1])
    assert isinstance(model, GroupedModel)
    out = model(torch.randn(shape))
    assert out.shape == (shape[0], 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", list_models())
def test_groups_head_last_and_only_head_has_linear(name):
    groups = build_small(name, 3).layer_groups()
    assert len(groups) >= 3
    has_linear = [any(isinstance(m, nn.Linear) for m in g.modules()) for g in groups]
    assert has_linear == [False] * (len(groups) - 1) + [True]


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_in_exactly_one_group(name):
    model = build_small(name, 3)
    in_groups = [id(p) for g in model.layer_groups() for p in g.parameters()]
    assert len(in_groups) == len(set(in_groups)), "a parameter is in two groups"
    assert set(in_groups) == {id(p) for p in model.parameters()}
    assert all(len(list(g.parameters())) > 0 for g in model.layer_groups())


@pytest.mark.parametrize("shape", SHAPES, ids=["1x28x28", "3x32x32"])
@pytest.mark.parametrize("name", list_models())
def test_forward_equals_groups_in_sequence(name, shape):
    model = build_small(name, shape[1]).eval()
    x = torch.randn(shape)
    with torch.no_grad():
        h = x
        for g in model.groups:  # a built-in model is the chain of its groups' modules
            h = g(h)
        assert torch.equal(model(x), h)


@pytest.mark.parametrize("name, depth", [("densenet", 75), ("wrn", 27), ("vgg", 17)])
def test_invalid_depth_raises_naming_value(name, depth):
    with pytest.raises(ValueError, match=rf"depth={depth}\b"):
        build_model(name, 10, 3, **{**SMALL[name], "depth": depth})


@pytest.mark.parametrize("name", list_models())
def test_unknown_hparam_raises_listing_allowed(name):
    with pytest.raises(ValueError, match="bogus") as info:
        build_model(name, 10, 3, bogus=1)
    allowed = model_hparams(name)
    assert allowed and all(h in str(info.value) for h in allowed)


def test_model_hparams_excludes_builder_arguments():
    assert model_hparams("densenet") == ["depth", "growth_rate", "compression"]
    assert "num_classes" not in model_hparams("wrn") and "in_channels" not in model_hparams("vgg")


def test_unknown_model_raises_listing_allowed():
    with pytest.raises(ValueError, match=re.escape("'resnet9000'")) as info:
        build_model("resnet9000", 10)
    assert all(name in str(info.value) for name in list_models())
    with pytest.raises(ValueError, match="resnet9000"):
        model_hparams("resnet9000")


def test_densenet_default_is_the_papers_L76_k12():
    model = build_model("densenet", 10)
    assert (model.depth, model.growth_rate) == (76, 12)
    # stem + 3 blocks of (76-4)/6 = 12 bottlenecks + 2 transitions + head
    assert len(model.layer_groups()) == 1 + 36 + 2 + 1
