"""Automatic layer groups on small models a user would write: each norm layer with the layer it
normalises, the head the classifier alone (and the global pooling and dropout that only feed
it), what runs before every parameter in the first group, what never runs in the head; the
trace they are found from; the chain check and the FLOP-balanced merge."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from freezeout.errors import ConfigError
from freezeout.models import LayerGroup
from freezeout.models.adapters import group_model
from freezeout.models.chain import balanced_segments, check_chain, merge_groups
from freezeout.models.grouping import (
    GroupSpec,
    explicit_groups,
    forward_order_groups,
    timm_groups,
)
from freezeout.models.trace import dummy_input, first_conv, trace_forward

pytestmark = pytest.mark.usefixtures("one_thread")
IMAGE = (2, 1, 12, 12)


def cbr(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


def modules_of(model) -> list[list[str]]:
    return [spec.modules for spec in model.specs]


def test_a_plain_sequential_keeps_each_batchnorm_with_its_convolution():
    net = nn.Sequential(*cbr(1, 4), *cbr(4, 4), nn.MaxPool2d(2), *cbr(4, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 10))
    model = group_model(net, IMAGE)
    assert model.grouping == "forward order"
    assert modules_of(model) == [["0", "1", "2"], ["3", "4", "5", "6"], ["7", "8", "9"], ["10", "11", "12"]]
    assert [s.name for s in model.specs] == ["0, 1", "3, 4", "7, 8", "12"]  # the head: the classifier alone


def test_a_root_level_mlp_keeps_its_hidden_layers_out_of_the_head():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 10))
    assert modules_of(group_model(mlp, IMAGE)) == [["0", "1", "2"], ["3", "4"], ["5"]]
    normed = nn.Sequential(nn.Flatten(), nn.Linear(144, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.1),
                           nn.Linear(16, 10))
    assert modules_of(group_model(normed, IMAGE)) == [["0", "1", "2", "3"], ["4", "5"]]


class Normalize(nn.Module):
    """Input normalisation with fixed statistics: buffers, no parameters."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(0.5))
        self.register_buffer("std", torch.tensor(0.25))

    def forward(self, x):
        return (x - self.mean) / self.std


class InputNormNet(nn.Module):
    """Declares its input normalisation last and a parameter-free module it never runs first."""

    def __init__(self):
        super().__init__()
        self.unused = nn.ReLU()  # never runs
        self.body = nn.Sequential(*cbr(1, 4), *cbr(4, 4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 10)
        self.aux = nn.Linear(4, 10)  # never runs either (an auxiliary classifier)
        self.normalize = Normalize()

    def forward(self, x):
        return self.head(self.pool(self.body(self.normalize(x))).flatten(1))


def test_input_normalisation_joins_the_first_group_and_what_never_runs_the_head():
    model = group_model(InputNormNet(), IMAGE)
    assert modules_of(model) == [["normalize", "body.0", "body.1", "body.2"], ["body.3", "body.4", "body.5"],
                                 ["pool", "head", "unused", "aux"]]
    net, trace = model.net, trace_forward(model.net, IMAGE)
    explicit = explicit_groups(net, trace, [r"body\.[01]\.", r"body\.4|body\.3", "head|aux"])
    assert [sorted(s.modules) for s in explicit] == [["body.0", "body.1", "body.2", "normalize"],
                                                     ["body.3", "body.4", "body.5", "pool"], ["aux", "head", "unused"]]


def test_a_plain_module_name_is_that_module_not_every_name_it_begins():
    net = nn.Sequential(nn.Flatten(), *(nn.Linear(144 if i == 1 else 4, 4) for i in range(1, 12)))
    trace = trace_forward(net, IMAGE)
    specs = explicit_groups(net, trace, [str(i) for i in range(1, 12)])  # "1" is not "10" or "11"
    assert [s.modules for s in specs] == [["1", "0"], *([str(i)] for i in range(2, 12))]  # "0": free, joins 1
    whole = explicit_groups(net, trace, [".*"])[0].modules  # one group: the model's modules, not the model
    assert sorted(whole, key=int) == [str(i) for i in range(12)]
    regex = explicit_groups(net, trace, ["1", "[2-9]|10", "11"])
    assert [s.modules for s in regex][1] == [str(i) for i in range(2, 11)]


def test_a_learned_input_norm_joins_the_first_group():
    net = nn.Sequential(nn.BatchNorm2d(1), *cbr(1, 4), *cbr(4, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    model = group_model(net, IMAGE)
    assert modules_of(model) == [["0", "1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]]
    assert model.specs[0].name == "0, 1, 2"


class ClassifierContainer(nn.Module):
    """torchvision's layout: ``features`` and ``classifier`` containers, an average pool between."""

    def __init__(self, final_norm: bool):
        super().__init__()
        self.features = nn.Sequential(*cbr(1, 4), nn.MaxPool2d(2), *cbr(4, 8))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        head = [nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 10)] if final_norm else \
            [nn.Flatten(), nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 10)]
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)))


def test_a_classifier_container_is_the_head_but_its_norm_stays_with_the_body():
    vgg = group_model(ClassifierContainer(final_norm=False), IMAGE)
    assert modules_of(vgg) == [["features.0", "features.1", "features.2", "features.3"],
                               ["features.4", "features.5", "features.6"],
                               ["avgpool", *(f"classifier.{i}" for i in range(5))]]
    assert vgg.specs[-1].name == "classifier"
    convnext = group_model(ClassifierContainer(final_norm=True), IMAGE)
    assert modules_of(convnext)[1:] == [["features.4", "features.5", "features.6", "avgpool", "classifier.0",
                                         "classifier.1"], ["classifier.2"]]


class NormGroupMatcher(nn.Module):
    """timm-style ``group_matcher`` that makes the final norm a group of its own (as timm's ViT)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.blocks = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        self.norm = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.pool(self.norm(self.blocks(self.stem(x)))).flatten(1))

    def group_matcher(self, coarse=False):
        return {"stem": r"^stem", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}


class StemNormMatcher(nn.Module):
    """A matcher that makes the stem's norm a group of its own, right after the stem's."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3)
        self.stem_norm = nn.BatchNorm2d(4)
        self.blocks = nn.Sequential(nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        self.fc = nn.Linear(4, 10)

    def forward(self, x):
        return self.fc(self.blocks(self.stem_norm(self.stem(x))).mean((2, 3)))

    def group_matcher(self, coarse=False):
        return {"stem": r"^stem\.", "blocks": [(r"^stem_norm", (0,)), (r"^blocks\.(\d+)", (1,))]}


def test_a_matchers_group_of_norm_layers_alone_joins_the_group_before():
    model = group_model(NormGroupMatcher(), IMAGE)
    assert model.grouping == "timm's group_matcher"
    assert modules_of(model) == [["stem"], ["blocks.0"], ["blocks.1", "norm"], ["pool", "fc"]]
    assert modules_of(group_model(StemNormMatcher(), IMAGE)) == [["stem", "stem_norm"], ["blocks.0"], ["blocks.1"],
                                                                 ["fc"]]
    assert timm_groups(nn.Sequential(nn.Linear(2, 2)), trace_forward(nn.Sequential(nn.Linear(2, 2)), (1, 2))) is None


def test_a_model_of_one_layer_is_one_group_of_that_layer():
    model = group_model(nn.Sequential(nn.Linear(144, 10)), (2, 144))
    assert [(s.name, s.modules, s.loose) for s in model.specs] == [("0", ["0"], [])]
    wrapped = nn.Sequential(nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 10)))
    assert modules_of(group_model(wrapped, IMAGE)) == [["0.0", "0.1", "0.2"], ["0.3"]]  # opened down to it


def test_forward_order_groups_follow_the_run_not_the_declaration():
    class Reversed(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Conv2d(4, 4, 3)
            self.early = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            return self.fc(self.late(self.early(x)).mean((2, 3)))

    net = Reversed()
    assert [s.modules for s in forward_order_groups(net, trace_forward(net, IMAGE))] == [["early"], ["late"], ["fc"]]


# --- the trace ---------------------------------------------------------------------------------

class Twice(nn.Module):
    """Runs ``shared`` twice and a tied weight in two places; draws a random number."""

    def __init__(self):
        super().__init__()
        self.shared = nn.Conv2d(1, 1, 1)
        self.bn = nn.BatchNorm2d(1)
        self.mid = nn.Conv2d(1, 1, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        x = self.shared(x)
        x = self.bn(self.mid(x)) + torch.rand(1)  # touches the global stream
        return self.drop(self.shared(x))


def test_the_trace_records_first_runs_and_leaves_the_model_and_the_rng_as_they_were():
    net = Twice().train()
    net.mid.eval()  # a mixed state must come back as it was
    stats = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    trace = trace_forward(net, (3, 1, 4, 4))
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, stats[k]) for k, v in net.state_dict().items())  # eval: BN statistics still
    assert [m.training for m in net.modules()] == [True, True, True, False, True]
    order = sorted(trace.module_start, key=trace.module_start.get)
    assert order == ["", "shared", "mid", "bn", "drop"]  # shared's second run does not move it
    assert trace.param_use["shared.weight"] < trace.param_use["mid.weight"] < trace.param_use["bn.weight"]
    assert trace.module_start["shared"] < trace.param_use["shared.weight"] < trace.module_start["mid"]


def test_first_conv_is_the_first_to_run_and_dummy_input_follows_the_model():
    class Stem(nn.Module):
        def __init__(self):
            super().__init__()
            self.second = nn.Conv2d(3, 3, 1)
            self.first = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return self.second(self.first(x))

    net = Stem().train()
    assert first_conv(net, (1, 3, 4, 4)) == "first" and net.training and net.first.training
    normed = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 3, 1)).train()
    assert first_conv(normed, (2, 3, 4, 4)) == "1"  # the input norm ran before it: in eval mode
    assert normed[0].num_batches_tracked.item() == 0 and not normed[0].running_mean.any() and normed[0].training
    assert first_conv(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), (1, 3, 4, 4)) is None
    x = dummy_input(nn.Linear(2, 2).double(), (5, 2))
    assert x.dtype == torch.float64 and x.shape == (5, 2) and not x.any()
    assert dummy_input(nn.ReLU(), (1, 2)).dtype == torch.float32


# --- the chain and the merge ---------------------------------------------------------------------

def test_check_chain_names_what_is_out_of_order_or_missing():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    trace = trace_forward(net, (1, 2))
    check_chain(net, [LayerGroup("a", [net[0]]), LayerGroup("b", [net[1]]), LayerGroup("c", [net[2]])], trace)
    with pytest.raises(ConfigError, match=r"group 1 \(b\) has parameter '0.bias', which the forward pass uses "
                                          r"before parameter '1.weight' of the earlier group 0 \(a\)"):
        check_chain(net, [LayerGroup("a", [net[1]]), LayerGroup("b", [net[0]]), LayerGroup("c", [net[2]])], trace)
    with pytest.raises(ConfigError, match=r"parameter '2.weight' is in no group"):
        check_chain(net, [LayerGroup("a", [net[0]]), LayerGroup("b", [net[1]])], trace)
    with pytest.raises(ConfigError, match=r"group 2 \(c\) has parameter '1.bias'"):  # after a later group
        check_chain(net, [LayerGroup("a", [net[0]]), LayerGroup("b", [net[2]]), LayerGroup("c", [net[1]])], trace)


def best_max_sum(costs: list[float], k: int) -> float:
    """The smallest largest run sum over every split of ``costs`` into ``k`` contiguous runs."""
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(costs)), k - 1):
        edges = [0, *cuts, len(costs)]
        best = min(best, max(sum(costs[a:b]) for a, b in itertools.pairwise(edges)))
    return best


def test_balanced_segments_are_optimal_and_exactly_k():
    gen = torch.Generator().manual_seed(0)
    for trial in range(60):
        n = 2 + trial % 6
        costs = torch.randint(0, 6, (n,), generator=gen).tolist()
        for k in range(1, n + 1):
            sizes = balanced_segments(costs, k)
            assert len(sizes) == k and sum(sizes) == n and min(sizes) >= 1, (costs, k, sizes)
            edges = list(itertools.accumulate([0, *sizes]))
            assert max(sum(costs[a:b]) for a, b in itertools.pairwise(edges)) == best_max_sum(costs, k), (costs, k)


def test_merge_keeps_the_head_and_every_module_in_order():
    specs = [GroupSpec(f"g{i}", [f"m{i}"], [f"p{i}"] if i == 0 else []) for i in range(6)]
    merged = merge_groups(specs, [1, 1, 1, 1, 4, 100], 3)
    assert [s.modules for s in merged] == [["m0", "m1", "m2", "m3"], ["m4"], ["m5"]]
    assert [s.name for s in merged] == ["g0 … g3", "g4", "g5"] and merged[0].loose == ["p0"]
    assert merge_groups(specs, [1] * 6, 6) == specs
    with pytest.raises(ValueError, match="max_groups=1"):
        merge_groups(specs, [1] * 6, 1)
