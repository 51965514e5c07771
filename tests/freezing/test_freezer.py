"""The FreezeOut controller on a tiny real DenseNet (docs/design.md, "Freezing")."""
import copy
import io

import pytest
import torch
from torch import nn

from freezeout.freezing.controller import FreezeOut, freeze_module
from freezeout.freezing.optim import optimizer_factory
from freezeout.freezing.schedule import Schedule, learning_rate
from freezeout.models import build_model

SGD = {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4}

BATCH = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_densenet(seed: int = 0) -> nn.Module:
    """DenseNet-BC L=10 k=4 on 1 channel: 7 groups (stem, 3 bottlenecks, 2 transitions, head)."""
    torch.manual_seed(seed)
    return build_model("densenet", 10, 1, depth=10, growth_rate=4)


def batches(n: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g))
        for _ in range(n)
    ]


def controller(model: nn.Module, total_iters: int, t_0: float = 0.3, strategy: str = "linear", lr: float = 0.1,
               scale_lr: bool = True, optimizer: dict = SGD) -> FreezeOut:
    groups = model.layer_groups()
    schedule = Schedule.freezeout(len(groups), t_0, strategy, total_iters, lr, scale_lr)
    return FreezeOut(groups, schedule, optimizer_factory(optimizer))


def train_iteration(model: nn.Module, fo: FreezeOut, j: int, x: torch.Tensor, y: torch.Tensor):
    """One trainer iteration: controller step, forward, backward, optimizer step. Like the trainer,
    ``model.train()`` is called once per epoch, every 5 iterations here, so groups also freeze
    mid-epoch (then nothing but the controller puts their BN in eval mode)."""
    if j % 5 == 0:
        model.train()
    fo.step(j)
    loss = nn.functional.cross_entropy(model(x), y)
    fo.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    fo.optimizer.step()


def snapshot(module) -> dict[str, torch.Tensor]:
    """Weights and buffers (BN running_mean/var, num_batches_tracked) of a module or of a layer
    group's modules, cloned."""
    roots = getattr(module, "roots", [module])
    return {f"{r}.{k}": v.detach().clone() for r, root in enumerate(roots) for k, v in root.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def test_tiny_model_schedule_is_as_planned():
    """T=40, linear, t_0=0.3, 7 groups: t_i = 0.3 + 0.7 i/6, so groups freeze at ceil(40 t_i)."""
    fo = controller(tiny_densenet(), 40)
    assert fo.freeze_at == (12, 17, 22, 26, 31, 36, 40)


def test_frozen_groups_stay_bitwise_unchanged_while_later_groups_train():
    model = tiny_densenet()
    fo = controller(model, 40)
    groups = model.layer_groups()
    data = batches(22)
    frozen_snap: dict[int, dict] = {}
    for j, (x, y) in enumerate(data):
        if j in (12, 17):  # the iterations (mid-epoch) at which group 0, then group 1 (BNs) freeze
            i = fo.freeze_at.index(j)
            # before: it trained, with gradients and a momentum buffer
            assert all(p.grad is not None for p in groups[i].parameters())
            assert all("momentum_buffer" in fo.optimizer.state[p] for p in groups[i].parameters())
            assert fo.step(j) == i + 1
            frozen_snap[i] = snapshot(groups[i])
        if j == 17:
            later_snap = {i: snapshot(g) for i, g in enumerate(groups) if i >= 2}
        train_iteration(model, fo, j, x, y)  # j = 17..21: five steps with group 1 frozen, train()
        # is called at j = 20

    assert fo.num_frozen == 2
    model.train()  # the trainer calls this every epoch: frozen BNs must stay in eval mode
    assert batchnorms(groups[1]), "group 1 should contain BatchNorm layers for this test"
    for i in (0, 1):
        g = groups[i]
        assert same(snapshot(g), frozen_snap[i]), f"frozen group {i} changed"
        for p in g.parameters():
            assert p.grad is None
            assert not p.requires_grad
            assert p not in fo.optimizer.state
        assert fo.optimizer.param_groups[i]["params"] == []
        assert fo.optimizer.param_groups[i]["lr"] == 0.0
        assert all(not bn.training for bn in batchnorms(g))
    for i in range(2, len(groups)):
        g = groups[i]
        assert not same(snapshot(g), later_snap[i]), f"active group {i} did not train"
        assert all(p.requires_grad and p.grad is not None for p in g.parameters())
        assert all(bn.training for bn in batchnorms(g))
    # the next group's BN statistics still move (5 more batches tracked)
    bn = batchnorms(groups[2])[0]
    assert bn.num_batches_tracked.item() == later_snap[2]["0.0.num_batches_tracked"].item() + 5


def test_frozen_bn_stays_in_eval_across_train_eval_toggles():
    model = tiny_densenet()
    freeze_module(model.layer_groups()[1])
    for mode in (True, False, True):
        model.train(mode)
        assert all(not bn.training for bn in batchnorms(model.layer_groups()[1]))
        assert all(bn.training == mode for bn in batchnorms(model.layer_groups()[2]))


def test_a_frozen_group_runs_in_eval_mode_as_a_whole():
    """Not only BatchNorm: dropout (and any module using ``self.training``) stays off too, so a
    frozen group is a fixed function of its input even while the model trains."""
    torch.manual_seed(0)
    model = build_model("wrn", 10, 1, depth=10, widen_factor=1, dropout=0.5)
    block = model.layer_groups()[1]
    assert any(isinstance(m, nn.Dropout) for m in block.modules())
    freeze_module(block)
    model.train()
    assert all(not m.training for m in block.modules())
    assert all(m.training for m in model.layer_groups()[2].modules())
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block.roots[0](x), block.roots[0](x))  # no dropout noise


@pytest.mark.parametrize("k", [1, 3, 6])
def test_frozen_prefix_records_no_autograd_graph(k):
    """Run the groups one by one: frozen outputs have no grad_fn, the first trainable one has."""
    model = tiny_densenet()
    fo = controller(model, 10)  # freeze_at = [3, 5, 6, 7, 8, 9, 10]
    assert fo.step(fo.freeze_at[k - 1]) == k
    model.train()
    groups = model.layer_groups()
    (x, y), = batches(1)
    h = x
    for i, g in enumerate(model.groups):  # the built-in model is the chain of its groups' modules
        h = g(h)
        if i < k:
            assert h.grad_fn is None and not h.requires_grad, f"frozen group {i} recorded a graph"
        else:
            assert h.grad_fn is not None, f"trainable group {i} recorded no graph"
    nn.functional.cross_entropy(h, y).backward()
    for i, g in enumerate(groups):
        for p in g.parameters():
            assert (p.grad is None) == (i < k), f"group {i}"


def test_learning_rates_per_group_follow_the_schedule():
    model = tiny_densenet()
    fo = controller(model, 10, scale_lr=True)
    assert fo.step(5) == 2
    for i, pg in enumerate(fo.optimizer.param_groups):
        expected = 0.0 if i < 2 else learning_rate(5, fo.times[i], 10, 0.1, True)
        assert pg["lr"] == pytest.approx(expected, abs=0)
    assert fo.current_lr() == fo.optimizer.param_groups[2]["lr"] > 0.0
    assert fo.optimizer.param_groups[-1]["lr"] == pytest.approx(0.05)  # head: cos(pi * 5/10)


def test_strategy_none_never_freezes_and_anneals_all_groups_alike():
    model = tiny_densenet()
    fo = controller(model, 10, strategy="none")
    for j in range(10):
        assert fo.step(j) == 0
    lrs = {pg["lr"] for pg in fo.optimizer.param_groups}
    assert lrs == {learning_rate(9, 1.0, 10, 0.1, True)}


def test_controller_rejects_shared_parameters_and_zero_iterations():
    model = tiny_densenet()
    g = model.layer_groups()
    make_sgd = optimizer_factory(SGD)
    with pytest.raises(ValueError, match="shares a parameter"):
        FreezeOut([g[0], g[1], g[1]], Schedule.freezeout(3, 0.5, "cubic", 10, 0.1, True), make_sgd)
    with pytest.raises(ValueError, match="total_iters=0"):
        FreezeOut(g, Schedule.freezeout(len(g), 0.5, "cubic", 0, 0.1, True), make_sgd)
    with pytest.raises(ValueError, match="7 layer groups but a schedule for 3"):
        FreezeOut(g, Schedule.freezeout(3, 0.5, "cubic", 10, 0.1, True), make_sgd)


def _roundtrip(obj):
    """Through torch.save / torch.load, as a checkpoint would go."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_state_dict_roundtrip_resumes_identically():
    data = batches(15)
    model_a = tiny_densenet(seed=0)
    fo_a = controller(model_a, 20)  # freeze_at = [6, 9, 11, 13, 16, 18, 20]
    for j in range(10):
        train_iteration(model_a, fo_a, j, *data[j])
    assert fo_a.num_frozen == 2
    checkpoint = _roundtrip({"model": model_a.state_dict(), "freezeout": fo_a.state_dict()})

    model_b = tiny_densenet(seed=123)  # different init: everything must come from the checkpoint
    model_b.load_state_dict(checkpoint["model"])
    fo_b = controller(model_b, 20)
    fo_b.load_state_dict(checkpoint["freezeout"])

    assert fo_b.num_frozen == fo_a.num_frozen == 2
    model_b.train()
    for i, g in enumerate(model_b.layer_groups()):
        frozen = i < 2
        assert all(p.requires_grad != frozen for p in g.parameters())
        assert all(bn.training != frozen for bn in batchnorms(g))
    opt_a, opt_b = fo_a.optimizer, fo_b.optimizer
    assert [pg["lr"] for pg in opt_b.param_groups] == [pg["lr"] for pg in opt_a.param_groups]
    assert len(opt_b.state) == len(opt_a.state) > 0
    for pg_a, pg_b in zip(opt_a.param_groups, opt_b.param_groups):
        assert len(pg_a["params"]) == len(pg_b["params"])
        for pa, pb in zip(pg_a["params"], pg_b["params"]):
            buf_a, buf_b = opt_a.state[pa]["momentum_buffer"], opt_b.state[pb]["momentum_buffer"]
            assert torch.equal(buf_a, buf_b)

    for j in range(10, 15):  # groups 2 and 3 freeze at 11 and 13 on both
        train_iteration(model_a, fo_a, j, *data[j])
        train_iteration(model_b, fo_b, j, *data[j])
    assert fo_a.num_frozen == fo_b.num_frozen == 4
    assert same(snapshot(model_a), snapshot(model_b))
    # and training did move the weights since the checkpoint (the comparison is not vacuous)
    assert not same(snapshot(model_a), {k: v for k, v in checkpoint["model"].items()})


def test_load_state_dict_refuses_to_unfreeze():
    model = tiny_densenet()
    fo = controller(model, 10)
    state = copy.deepcopy(fo.state_dict())  # nothing frozen
    fo.step(5)
    with pytest.raises(ValueError, match="unfreeze"):
        fo.load_state_dict(state)
