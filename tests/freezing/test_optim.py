"""Optimizers by name: the controller drives any torch optimizer (SGD, AdamW) per layer group,
drops a frozen group's state, and resumes bitwise."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from freezeout.errors import ConfigError
from freezeout.freezing.controller import FreezeOut
from freezeout.freezing.optim import check_optimizer, optimizer_factory
from freezeout.freezing.schedule import Schedule
from freezeout.models import build_model

ADAMW = {"name": "adamw", "lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.05}
SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}

pytestmark = pytest.mark.usefixtures("one_thread")


def setup(seed: int, optimizer: dict, total: int = 20):
    torch.manual_seed(seed)
    model = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    groups = model.layer_groups()
    schedule = Schedule.freezeout(len(groups), 0.3, "linear", total, optimizer["lr"], True)
    return model, FreezeOut(groups, schedule, optimizer_factory(optimizer))


def batches(n: int):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(n)]


def step(model, fo, j, x, y):
    fo.step(j)
    loss = nn.functional.cross_entropy(model(x), y)
    fo.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    fo.optimizer.step()


def test_adamw_rates_follow_the_schedule_and_frozen_state_is_dropped():
    model, fo = setup(0, ADAMW)  # freeze_at = (6, 9, 11, 13, 16, 18, 20)
    assert isinstance(fo.optimizer, torch.optim.AdamW)
    data = batches(10)
    groups = model.layer_groups()
    for j in range(6):
        step(model, fo, j, *data[j])
    assert all({"exp_avg", "exp_avg_sq"} <= set(fo.optimizer.state[p]) for p in groups[0].parameters())
    before = {k: v.clone() for k, v in groups[0].roots[0].state_dict().items()}
    for j in range(6, 10):  # group 0 freezes at 6, group 1 at 9
        step(model, fo, j, *data[j])
    assert fo.num_frozen == 2
    for g in groups[:2]:
        assert all(p not in fo.optimizer.state and not p.requires_grad for p in g.parameters())
    assert all(torch.equal(before[k], v) for k, v in groups[0].roots[0].state_dict().items())  # no decay
    assert fo.optimizer.param_groups[2]["lr"] == pytest.approx(fo.schedule.lr_at(2, 9), rel=1e-12)
    assert fo.schedule.lr_at(2, 0) == pytest.approx(1e-3 / fo.times[2])  # scale_lr: lr / t_i


@pytest.mark.parametrize("optimizer", [SGD, ADAMW], ids=["sgd", "adamw"])
def test_resume_through_a_checkpoint_equals_an_uninterrupted_run(optimizer):
    data = batches(15)
    model_a, fo_a = setup(0, optimizer)
    for j in range(10):
        step(model_a, fo_a, j, *data[j])
    buf = io.BytesIO()
    torch.save({"model": model_a.state_dict(), "fo": fo_a.state_dict()}, buf)
    buf.seek(0)
    checkpoint = torch.load(buf, weights_only=True)

    model_b, fo_b = setup(123, optimizer)  # different init: everything comes from the checkpoint
    model_b.load_state_dict(checkpoint["model"])
    fo_b.load_state_dict(checkpoint["fo"])
    model_b.train()
    for j in range(10, 15):
        step(model_a, fo_a, j, *data[j])
        step(model_b, fo_b, j, *data[j])
    a, b = model_a.state_dict(), model_b.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fo_a.num_frozen == fo_b.num_frozen == 4 and fo_a.frozen_at == fo_b.frozen_at == [6, 9, 11, 13, None, None,
                                                                                            None]


@pytest.mark.parametrize("cfg, needle", [
    ({**SGD, "momentum": 0.0}, "optimizer.nesterov=true needs optimizer.momentum > 0"),
    ({**SGD, "momentum": 1.0}, "optimizer.momentum=1.0"),
    ({**SGD, "lr": 0.0}, "optimizer.lr=0.0"),
    ({**ADAMW, "betas": [0.9, 1.0]}, "optimizer.betas=[0.9, 1.0]"),
    ({**ADAMW, "eps": 0.0}, "optimizer.eps=0.0"),
    ({**ADAMW, "weight_decay": -1.0}, "optimizer.weight_decay=-1.0"),
    ({**SGD, "name": "lamb"}, "optimizer='lamb' is unknown; allowed: sgd, adamw"),
])
def test_bad_optimizer_settings_name_the_key(cfg, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        check_optimizer(cfg)
