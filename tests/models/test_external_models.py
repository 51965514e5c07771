"""Real timm and torchvision models (random init, no downloads) through automatic grouping:
a chain with the head last, a frozen prefix that stays bitwise still and records no autograd,
and a FLOP-model speedup that falls as t_0 rises."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from freezeout.errors import ConfigError
from freezeout.freezing.controller import freeze_module
from freezeout.freezing.schedule import layer_times
from freezeout.models.chain import balanced_segments, check_chain
from freezeout.models.factory import build_external
from freezeout.models.flops import group_costs
from freezeout.models.trace import trace_forward
from freezeout.speedup.formulas import flops_speedup

pytestmark = pytest.mark.usefixtures("one_thread")

#: id -> (model config, input shape C x H x W, how the groups are found, expected group count)
MODELS = {
    "timm-resnet18": ({"kind": "timm", "name": "resnet18"}, (1, 28, 28), "timm's group_matcher", 10),
    "timm-vit": ({"kind": "timm", "name": "vit_tiny_patch16_224",
                  "kwargs": {"img_size": 32, "patch_size": 4, "drop_path_rate": 0.1}}, (3, 32, 32),
                 "timm's group_matcher", 14),
    "timm-convnext_atto": ({"kind": "timm", "name": "convnext_atto"}, (3, 32, 32), "timm's group_matcher", 14),
    "timm-mobilenetv3": ({"kind": "timm", "name": "mobilenetv3_small_050"}, (1, 28, 28), "timm's group_matcher", 15),
    "tv-resnet18": ({"kind": "torchvision", "name": "resnet18"}, (1, 28, 28), "forward order", 10),
    "tv-mobilenet_v3_small": ({"kind": "torchvision", "name": "mobilenet_v3_small"}, (3, 32, 32), "forward order", 14),
    "tv-efficientnet_b0": ({"kind": "torchvision", "name": "efficientnet_b0"}, (1, 28, 28), "forward order", 19),
}
_BUILT: dict[str, nn.Module] = {}


def model(key: str) -> nn.Module:
    """A fresh copy of the model (built once per session: tests may freeze their copy)."""
    if key not in _BUILT:
        cfg, (c, h, w), _, _ = MODELS[key]
        torch.manual_seed(0)
        _BUILT[key] = build_external(cfg, 10, c, (h, w))
    return copy.deepcopy(_BUILT[key])


def shape(key: str) -> tuple[int, ...]:
    return (1, *MODELS[key][1])


def classifier(m: nn.Module) -> nn.Module:
    """timm says which module classifies; for torchvision it is the last linear layer."""
    net = m.net
    return net.get_classifier() if hasattr(net, "get_classifier") else [x for x in net.modules() if isinstance(x, nn.Linear)][-1]


@pytest.mark.parametrize("key", MODELS)
def test_auto_groups_are_a_chain_with_the_classifier_in_the_head_only(key):
    m = model(key)
    groups = m.layer_groups()
    assert m.grouping == MODELS[key][2]
    assert len(groups) == MODELS[key][3] >= 5
    ids = [id(p) for g in groups for p in g.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in m.parameters()}, "each parameter once"
    head_classifier = {id(p) for p in classifier(m).parameters()}
    assert head_classifier <= {id(p) for p in groups[-1].parameters()}
    assert all(not head_classifier & {id(p) for p in g.parameters()} for g in groups[:-1])
    assert all(next(g.parameters(), None) is not None for g in groups)
    check_chain(m.net, groups, trace_forward(m.net, shape(key)))  # forward order holds


def _state(groups) -> dict[str, torch.Tensor]:
    """Parameters and buffers (norm statistics) of layer groups, cloned."""
    out = {}
    for i, g in enumerate(groups):
        for r, root in enumerate(g.roots):
            out.update({f"{i}.{r}.{k}": v.detach().clone() for k, v in root.state_dict().items()})
        out.update({f"{i}.loose{j}": p.detach().clone() for j, p in enumerate(g.loose)})
    return out


def _tensors(out) -> list[torch.Tensor]:
    items = out if isinstance(out, (tuple, list)) else [out]
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point()]


@pytest.mark.parametrize("key", MODELS)
def test_a_frozen_prefix_stays_bitwise_unchanged_and_records_no_autograd(key):
    m = model(key)
    groups = m.layer_groups()
    k = len(groups) // 2
    for g in groups[:k]:
        freeze_module(g)
    before, trainable_before = _state(groups[:k]), _state(groups[k:])
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05, momentum=0.9, weight_decay=1e-4)
    graph: dict[int, list[bool]] = {i: [] for i in range(len(groups))}
    hooks = [root.register_forward_hook(lambda mod, a, out, i=i: graph[i].extend(t.grad_fn is not None for t in _tensors(out)))
             for i, g in enumerate(groups) for root in g.roots]
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        m.train()  # as the trainer does each epoch: the frozen prefix must stay in eval mode
        x, y = torch.randn(4, *MODELS[key][1], generator=gen), torch.randint(0, 10, (4,), generator=gen)
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for h in hooks:
        h.remove()
    after = _state(groups[:k])
    assert before.keys() == after.keys() and all(torch.equal(before[n], after[n]) for n in before)
    assert all(not mod.training for g in groups[:k] for mod in g.modules()), "frozen modules left eval mode"
    assert all(p.grad is None for g in groups[:k] for p in g.parameters())
    assert not any(any(graph[i]) for i in range(k)), "a frozen group recorded an autograd graph"
    assert any(graph[k]), "the first trainable group recorded no graph"
    moved = _state(groups[k:])
    assert any(not torch.equal(trainable_before[n], moved[n]) for n in moved), "nothing trained"


@pytest.mark.parametrize("key", MODELS)
def test_flops_speedup_is_a_fraction_that_falls_as_t0_rises(key):
    costs = group_costs(model(key), shape(key))
    speedups = [flops_speedup(costs, layer_times(len(costs), t_0, "cubic")) for t_0 in (0.3, 0.6, 0.9)]
    assert all(0.0 < s < 1.0 for s in speedups)
    assert speedups[0] > speedups[1] > speedups[2]


def test_torchvision_stem_takes_the_datas_single_channel():
    m = model("tv-resnet18")
    conv = m.net.conv1
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (1, 64, (7, 7), (2, 2))
    # drawn like the original (Kaiming normal, fan-out: std sqrt(2 / (64 * 7 * 7)) = 0.0255)
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 49)) ** 0.5, rel=0.1)
    assert m.notes == ["first conv 'conv1' takes 3 channels, the data has 1: replaced by a 1-channel conv, "
                       "randomly initialised like the original"]
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_max_groups_merges_the_body_to_about_equal_flops_and_keeps_the_head():
    cfg, (c, h, w), _, _ = MODELS["tv-resnet18"]
    torch.manual_seed(0)
    m = build_external({**cfg, "max_groups": 4}, 10, c, (h, w))
    groups = m.layer_groups()
    assert len(groups) == 4 and groups[-1].name == "fc"
    assert {id(p) for g in groups for p in g.parameters()} == {id(p) for p in m.parameters()}
    body = group_costs(m, (1, c, h, w))[:-1]
    assert max(body) <= 1.25 * sum(body) / 3  # near an equal split of the body in three
    assert "merged to 4" in m.grouping


@pytest.mark.parametrize("costs, k, sizes", [
    ([1, 1, 1, 1], 2, [2, 2]), ([5, 1, 1, 1, 1, 1], 2, [1, 5]), ([1, 1, 1], 5, [1, 1, 1]),
    ([0, 0, 0, 0], 2, [2, 2]), ([1, 2, 3, 4, 5, 6, 7, 8, 9], 3, [5, 2, 2]),
])
def test_balanced_segments(costs, k, sizes):
    assert balanced_segments(costs, k) == sizes


def test_pretrained_without_network_fails_in_one_line(monkeypatch, tmp_path):
    hub = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)  # no download is even tried
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError) as err:
        build_external({"kind": "timm", "name": "resnet10t", "pretrained": True}, 10, 1, (28, 28))
    message = str(err.value)
    assert "\n" not in message and message.startswith("model.pretrained=true: the weights of timm model 'resnet10t'")
    assert "model.pretrained=false" in message


@pytest.mark.slow
def test_run_py_trains_a_torchvision_resnet18_on_fashion_mnist(fmnist_root, tmp_path):
    """End to end through the command line: the 1-channel stem, auto groups, FreezeOut, records."""
    import json

    from helpers import run_cli

    from freezeout.rundir.records import read_metrics

    proc = run_cli("model=torchvision", "model.name=resnet18", "data=fashion_mnist", f"data.root={fmnist_root}",
                   "data.subset=128", "data.val_size=200", "epochs=2", "batch_size=32", "optimizer.lr=0.02", "t_0=0.5",
                   "device=cpu", "progress=false", "checkpoint=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["iterations_done"] == 8
    assert summary["num_groups"] == 10 and summary["model"]["kind"] == "torchvision"
    assert 0 < summary["predicted_speedup"]["flops"] < 1 and summary["predicted_speedup"]["paper"] is None
    frozen = [r["frozen_groups"] for r in read_metrics(tmp_path / "metrics.jsonl")]
    assert frozen == sorted(frozen) and frozen[-1] == 9  # all but the head by the end
    log = (tmp_path / "run.log").read_text()
    assert "replaced by a 1-channel conv" in log and "layer groups (forward order):" in log and "(10 layer groups" in log
