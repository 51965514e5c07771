"""``freezeout.FreezeController`` in training loops the harness does not own: the plain-PyTorch
example (examples/plain_pytorch.py) on real Fashion-MNIST, its frozen prefix bitwise unchanged and
without gradients; the rates against FreezeOut's formula; resume through ``state_dict``; the
rivals; predicted speedups; bad settings."""
from __future__ import annotations

import copy
import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from freezeout import FreezeController, flops_speedup, group_costs, layer_times, learning_rate

REPO = Path(__file__).resolve().parents[2]


def load_example():
    spec = importlib.util.spec_from_file_location("plain_pytorch", REPO / "examples" / "plain_pytorch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()


@pytest.fixture(scope="module")
def batches(example, fmnist_root):
    """512 training images in 8 batches of 64, as tensors (the same batches every epoch)."""
    loader = example.fashion_mnist(str(fmnist_root), True, 512)
    torch.manual_seed(0)
    return list(loader)


def tensors(module_group) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(module_group.modules())
            for k, v in [*m.named_parameters(recurse=False), *m.named_buffers(recurse=False)]}


def test_example_freezes_a_prefix_that_stays_bitwise_unchanged_and_gets_no_gradient(example, batches, one_thread):
    torch.manual_seed(0)
    seen = {"steps": 0, "snapshots": {}, "checked": 0}
    times, total, lr = layer_times(3, 0.5, "cubic"), 2 * len(batches), 0.1

    def after_step(net, controller):
        seen["steps"] += 1
        j = controller.iteration
        for i, group in enumerate(controller.groups):
            if i < controller.num_frozen:
                if i not in seen["snapshots"]:  # it froze at this step: its weights from now on
                    seen["snapshots"][i] = tensors(group)
                assert all(not p.requires_grad and p.grad is None for p in group.parameters())
                assert not any(m.training for m in group.modules())  # eval mode despite net.train()
                assert controller.rates()[i] == 0.0
                seen["checked"] += 1
            elif j < total:  # FreezeOut's rate for step j, scaled by 1 / t_i
                assert controller.rates()[i] == pytest.approx(learning_rate(j, times[i], total, lr, True), abs=1e-12)

    loader = _Replay(batches)
    net, controller = example.train(loader, epochs=2, after_step=after_step)
    assert seen["steps"] == total == 16
    assert controller.frozen_at == [math.ceil(times[0] * total), math.ceil(times[1] * total), None] == [2, 7, None]
    assert controller.num_frozen == 2 and seen["checked"] > 10
    for i, snapshot in seen["snapshots"].items():  # unchanged since the step it froze, to the last bit
        now = tensors(controller.groups[i])
        assert snapshot.keys() == now.keys() and all(torch.equal(snapshot[k], now[k]) for k in now)
    assert 0.3 < controller.predicted_speedup() < 0.7


class _Replay:
    """A loader that gives the same real batches every epoch (``len`` as a DataLoader's)."""

    def __init__(self, batches):
        self.batches = batches

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


def small_net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def sgd(groups):
    return torch.optim.SGD(groups, lr=0.05, momentum=0.9)


def run_steps(net, controller, batches):
    for x, y in batches:
        controller.optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        controller.optimizer.step()
        controller.step()


def test_state_dict_resumes_to_the_same_weights(batches, one_thread):
    net = small_net()
    controller = FreezeController(net, sgd, 12, "cubic", t_0=0.5, input_shape=(1, 1, 28, 28))
    run_steps(net, controller, batches[:4])
    saved_net, saved = copy.deepcopy(net.state_dict()), copy.deepcopy(controller.state_dict())
    saved_rates = controller.rates()
    assert saved["num_frozen"] == 1 and saved["iteration"] == 4
    run_steps(net, controller, batches[4:8] * 2)

    again = small_net()
    again.load_state_dict(saved_net)
    resumed = FreezeController(again, sgd, 12, "cubic", t_0=0.5, input_shape=(1, 1, 28, 28))
    resumed.load_state_dict(saved)
    assert resumed.num_frozen == 1 and resumed.iteration == 4 and resumed.rates() == saved_rates
    run_steps(again, resumed, batches[4:8] * 2)
    assert resumed.frozen_at == controller.frozen_at == [2, 6, None]
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))


def test_layer_freezing_freezes_at_epoch_ends_with_the_baseline_cosine(batches, one_thread):
    net = small_net()
    controller = FreezeController(net, sgd, 32, "layer_freezing", steps_per_epoch=8, input_shape=(1, 1, 28, 28))
    assert controller.settings["freeze_start"] == 0.5  # the schema's default (LayerFreezingConfig)
    for j in range(1, 33):
        run_steps(net, controller, batches[(j - 1) % 8:(j - 1) % 8 + 1])
        if j < 32:
            assert controller.rates()[-1] == pytest.approx(0.5 * 0.05 * (1 + math.cos(math.pi * j / 32)))
    # tau = 3/4 at the end of epoch 3: int(1.0 * (0.75 - 0.5) / 0.5 * 2) = 1 group
    assert controller.frozen_at == [24, None, None]


def test_autofreeze_decides_during_the_run(batches, one_thread):
    net = small_net()
    controller = FreezeController(net, sgd, 40, "autofreeze", interval=2, percentile=60.0, max_per_check=1,
                                  input_shape=(1, 1, 28, 28))
    assert controller.predicted_speedup() == 0.0  # nothing frozen yet
    run_steps(net, controller, batches * 5)
    assert controller.frozen_at[-1] is None  # never the head
    frozen = controller.num_frozen
    assert controller.frozen_at[:frozen] == sorted(controller.frozen_at[:frozen])
    assert (controller.predicted_speedup() > 0) == (frozen > 0)


def test_groups_given_as_modules_match_the_automatic_ones():
    auto = FreezeController(small_net(), sgd, 100, "cubic", input_shape=(1, 1, 28, 28))
    net = small_net()
    given = FreezeController(net, sgd, 100, "cubic", groups=[net[0:4], net[4:6], net[6:]])
    assert [[tuple(p.shape) for p in g.parameters()] for g in auto.groups] == \
        [[tuple(p.shape) for p in g.parameters()] for g in given.groups]
    shape = (1, 1, 28, 28)
    expected = flops_speedup(group_costs(auto.model, shape), layer_times(3, 0.8, "cubic"))
    assert given.predicted_speedup(shape) == pytest.approx(expected) == auto.predicted_speedup()
    assert given.rates() == [pytest.approx(0.05 / t) for t in layer_times(3, 0.8, "cubic")]  # lr / t_i
    assert FreezeController(small_net(), torch.optim.SGD, 10, "none", input_shape=shape).rates() == [1e-3] * 3


@pytest.mark.parametrize("kwargs, needle", [
    ({"rule": "layer_freezing"}, "steps_per_epoch"),
    ({"rule": "autofreeze", "t_0": 0.5}, "t_0=0.5"),
    ({"rule": "cubic", "interval": 3}, "interval=3"),
    ({"rule": "quartic"}, "quartic"),
    ({"rule": "cubic", "t_0": 1.5}, "t_0=1.5"),
    ({"rule": "autofreeze", "percentile": 100.0}, "percentile"),
])
def test_bad_settings_are_one_line_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle) as e:
        FreezeController(small_net(), sgd, 10, input_shape=(1, 1, 28, 28), **kwargs)
    assert "\n" not in str(e.value)


def test_what_the_controller_cannot_guess_is_asked_for():
    net = small_net()
    with pytest.raises(TypeError, match="factory"):
        FreezeController(net, torch.optim.SGD(net.parameters(), lr=0.1), 10)
    with pytest.raises(ValueError, match="input_shape"):
        FreezeController(net, sgd, 10)
    with pytest.raises(ValueError, match="in no layer group"):
        FreezeController(net, sgd, 10, groups=[net[0:4], net[6:]])
    with pytest.raises(ValueError, match="total_steps"):
        FreezeController(net, sgd, 0, input_shape=(1, 1, 28, 28))
