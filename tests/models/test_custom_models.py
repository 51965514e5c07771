"""Your own model (``model=custom``, examples/custom_model.py), explicit groups and the refusals
of groupings that are not a chain, the config checks of every external kind, and
``python -m freezeout.groups``."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from helpers import REPO
from helpers import compose_cfg as make_cfg
from torch import nn

from freezeout.config import register_configs
from freezeout.errors import ConfigError
from freezeout.models import LayerGroup
from freezeout.models.adapters import group_model
from freezeout.models.chain import check_chain
from freezeout.models.factory import build_run_model
from freezeout.models.trace import trace_forward
from freezeout.training.checks import validate

register_configs()
pytestmark = pytest.mark.usefixtures("one_thread")
CUSTOM = ["model=custom", "model._target_=examples.custom_model.SmallCNN", "data=fashion_mnist", "device=cpu"]




def build(*overrides: str) -> nn.Module:
    cfg = make_cfg(*overrides)
    validate(cfg)
    return build_run_model(cfg, torch.device("cpu"))


def tiny_net(num_classes: int, hidden: int = 8) -> nn.Module:
    """A builder that does not take ``in_channels``: it must not be given it."""
    return nn.Sequential(nn.Conv2d(1, hidden, 3), nn.BatchNorm2d(hidden), nn.ReLU(), nn.Conv2d(hidden, hidden, 3),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden, num_classes))


def test_custom_model_is_built_from_the_data_and_grouped_in_forward_order():
    model = build(*CUSTOM, "+model.width=8", "+model.depth=3")
    net = model.net
    assert net.stem[0].in_channels == 1 and net.head.out_features == 10 and net.stem[0].out_channels == 8
    assert [g.name for g in model.layer_groups()] == ["stem", "blocks.0", "blocks.1", "blocks.2", "head"]
    assert model.grouping == "forward order"
    head = model.layer_groups()[-1]
    assert head.roots == [net.pool, net.dropout, net.head]  # pooling and dropout only feed the classifier
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_builder_without_in_channels_gets_only_num_classes():
    model = build("model=custom", "model._target_=test_custom_models.tiny_net", "+model.hidden=4",
                  "data=fashion_mnist", "device=cpu")
    assert [g.name for g in model.layer_groups()] == ["0, 1", "3", "7"]  # conv+BN, conv, head
    assert model.net[-1].out_features == 10


def test_explicit_regex_groups_use_the_users_own_parameter_names():
    model = build(*CUSTOM, r"model.groups=[stem,'blocks\.[01]\.',blocks.2,head]")
    groups = model.layer_groups()
    assert [g.name for g in groups] == ["stem", r"blocks\.[01]\.", "blocks.2", "head"]
    assert groups[1].roots == [model.net.blocks[0], model.net.blocks[1]]
    assert model.grouping == "model.groups"
    names = {id(p): n for n, p in model.net.named_parameters()}
    assert {names[id(p)] for p in groups[3].parameters()} == {"head.weight", "head.bias"}


@pytest.mark.parametrize("groups, message", [
    (r"[stem,'blocks\.\d',blocks.2,head]", "model.groups: parameter 'blocks.2.conv1.weight' is in two groups: "
                                           r"entry 1 ('blocks\\.\\d') and entry 2 ('blocks.2'); make the entries disjoint"),
    ("[stem,blocks]", "model.groups: parameter 'head.weight' is in no group; add an entry that matches it "
                      "(a module path such as 'head', or a regex)"),
    ("[blocks,stem,head]", "layer groups are not a chain: group 1 (stem) has parameter 'stem.0.weight', which the "
                           "forward pass uses before parameter 'blocks.2.bn2.weight' of the earlier group 0 (blocks); "
                           "list the groups in forward order"),
    ("[stem,blocks,nothing,head]", "model.groups: entry 2 ('nothing') matches no parameter of the model; "
                                   "`python -m freezeout.groups` lists the groups auto finds"),
    ("foo", "model.groups='foo'; allowed: auto, or a list of parameter-name prefixes or regexes in forward order, "
            "head last, e.g. model.groups=[conv1,layer1,layer2,fc]"),
])
def test_groupings_that_are_not_a_chain_are_refused_in_one_line(groups, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*CUSTOM, f"model.groups={groups}"))
    assert str(err.value) == message


def test_check_chain_refuses_a_parameter_in_two_groups():
    model = build(*CUSTOM)
    g = model.layer_groups()
    twice = [g[0], LayerGroup("again", [model.net.stem, model.net.blocks]), *g[2:]]
    with pytest.raises(ConfigError, match=r"parameter 'stem\.0\.weight' is in group 0 \(stem\) and in group 1 \(again\)"):
        check_chain(model.net, twice, trace_forward(model.net, (1, 1, 28, 28)))


class MatcherOutOfOrder(nn.Module):
    """Has a timm-style ``group_matcher`` whose first group takes a module that runs late."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.blocks = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        self.aux = nn.Linear(4, 10)  # never runs in the forward pass
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))

    def group_matcher(self, coarse=False):
        return {"stem": r"^stem|^blocks\.1", "blocks": r"^blocks\.(\d+)"}


def test_a_matcher_that_is_not_a_chain_gives_way_to_forward_order():
    model = group_model(MatcherOutOfOrder(), (1, 1, 28, 28))
    assert model.grouping == "forward order"
    assert [(g.name, g.modules) for g in model.specs] == [
        ("stem", ["stem"]), ("blocks.0", ["blocks.0"]), ("blocks.1", ["blocks.1"]), ("fc, aux", ["fc", "aux"])]


@pytest.mark.parametrize("overrides, message", [
    (["model=timm", "model.name=resnet9000"], "model.name='resnet9000' is not a timm model; list them with: "
                                               "python -c \"import timm; print(timm.list_models('*resnet*'))\""),
    (["model=timm"], "model=timm needs model.name=<a timm model>, e.g. model.name=resnet18"),
    (["model=timm", "model.name=resnet10t", "model.kwargs={bogus:1}"],
     "timm model 'resnet10t' could not be built with model.kwargs={'bogus': 1}: "
     "TypeError: ResNet.__init__() got an unexpected keyword argument 'bogus'"),
    (["model=timm", "model.name=resnet10t", "model.kwargs={in_chans:3}"],
     "model.kwargs.in_chans is not allowed: it comes from the data"),
    (["model=timm", "model.name=vit_tiny_patch16_224"],
     "the model fails on the data's 1x28x28 inputs (AssertionError: Input height (28) doesn't match model (224).); "
     "size-dependent models take their size in model.kwargs, e.g. model.kwargs={img_size:28,patch_size:4} for a "
     "timm ViT"),
    (["model=torchvision", "model.name=fasterrcnn_resnet50_fpn"],
     "model.name='fasterrcnn_resnet50_fpn' is not a torchvision classification model; list them with: python -c "
     "\"import torchvision; print(torchvision.models.list_models(module=torchvision.models))\""),
    (["model=torchvision", "model.name=resnet18", "model.max_groups=1"],
     "model.max_groups=1; need >= 2 (the head is a group of its own) or null"),
    (["model=custom"], "model=custom needs model._target_=package.module.Name, a class or function that returns an "
                       "nn.Module (see examples/custom_model.py)"),
    (["model=custom", "model._target_=examples.nope.Net"],
     "model._target_='examples.nope.Net' cannot be imported (ModuleNotFoundError: No module named 'examples.nope'); "
     "give package.module.Name of a class or function that returns an nn.Module, importable from where you launch"),
    ([*CUSTOM, "+model.wdth=8"], "model._target_=examples.custom_model.SmallCNN failed: TypeError: "
                                 "SmallCNN.__init__() got an unexpected keyword argument 'wdth'"),
    ([*CUSTOM, "+model.num_classes=3"], "model.num_classes=3 is set by the data; remove it"),
])
def test_validate_rejects_bad_external_settings_in_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("data=fashion_mnist", "device=cpu", *overrides))
    assert str(err.value) == message


@pytest.mark.parametrize("overrides", [
    ["model=timm", "model.name=resnet10t", "data=cifar100"],
    ["model=timm", "model.name=vit_tiny_patch16_224", "model.kwargs={img_size:28,patch_size:4}", "data=fashion_mnist"],
    ["model=torchvision", "model.name=resnet18", "data=fashion_mnist", "model.max_groups=4"],
    ["model=torchvision", "model.name=resnet18", "data=cifar10", "model.groups=['conv1|bn1',layer1,layer2,layer3,layer4,fc]"],
])
def test_external_models_compose_and_validate(overrides):
    """The checks find what the run then uses: the device, the data's shape and size."""
    checked = validate(make_cfg("device=cpu", *overrides))
    cifar = "data=cifar10" in overrides or "data=cifar100" in overrides
    assert str(checked.device) == "cpu"
    assert checked.spec.num_classes == (100 if "data=cifar100" in overrides else 10)
    assert (checked.spec.in_channels, tuple(checked.spec.image_size)) == ((3, (32, 32)) if cifar else (1, (28, 28)))
    assert checked.train_images == (45000 if cifar else 55000)  # the training split less 5,000 validation images
    assert checked.iterations_per_epoch == checked.train_images // 50  # batch_size 50, full batches only


def groups_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "freezeout.groups", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_groups_cli_prints_the_table():
    proc = groups_cli("model=torchvision", "model.name=resnet18", "data=fashion_mnist", "t_0=0.5")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("resnet18 (torchvision) on fashion_mnist (1x28x28): 10 layer groups (forward order); "
                               "cubic t_0=0.5: predicted speedup (flops) ")
    assert lines[1].split() == ["#", "group", "params", "FLOPs", "t_i"]
    rows = [line.split() for line in lines[2:]]
    assert [r[0] for r in rows] == [str(i) for i in range(10)]
    assert rows[0][1:3] == ["conv1,", "bn1"] and rows[0][-1] == "0.125" and rows[-1][1:] == ["fc", "(head:", "pool,", "fc)", "5,130", "0.0%", "1.000"]
    assert "first conv 'conv1' takes 3 channels, the data has 1" in proc.stderr


def test_groups_cli_bad_setting_is_one_line_and_exit_2():
    proc = groups_cli("model=timm", "model.name=resnet9000")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "error: model.name='resnet9000' is not a timm model; list them with: python -c "
        "\"import timm; print(timm.list_models('*resnet*'))\""]
