"""Predicted speedups (docs/design.md, "Predicted speedup"): pure formulas by hand, then real models."""
import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from freezeout.freezing.controller import FreezeOut
from freezeout.freezing.schedule import Schedule, layer_times
from freezeout.models import build_model
from freezeout.models.flops import group_costs
from freezeout.speedup.formulas import (
    flops_speedup,
    freezing_stages,
    frozen_groups_at,
    paper_costs,
    paper_speedup,
    time_speedup,
)
from freezeout.speedup.timemodel import calc_speedup
from freezeout.training.stagetiming import measure_stage_seconds
from freezeout.training.step import TrainStep


def flops_for(costs, t_0, strategy):
    """The FLOP model for FreezeOut's schedule of ``len(costs)`` groups."""
    return flops_speedup(costs, layer_times(len(costs), t_0, strategy))

# --- paper: DenseNet-BC k=2, L=10 (m=1 bottleneck per block), computed by hand ------------------
# stem: 3*2k*32^2*9 = 3*4*1024*9                          = 110592
# block 1 (A=1024, q=2): q*4k^2*A + 36k^2*A = 2*16*1024 + 144*1024 = 32768 + 147456 = 180224
# q: 2 -> 3 -> 3//2 = 1
# block 2 (A=256, q=1):  1*16*256 + 144*256 = 4096 + 36864  = 40960;  q: 1 -> 2 -> 1
# block 3 (A=64,  q=1):  1*16*64 + 144*64   = 1024 + 9216   = 10240
PAPER_COSTS_K2_L10 = [110592, 180224, 40960, 10240]
SUM_C = 342016


pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_costs_hand_computed():
    assert paper_costs(2, 10) == PAPER_COSTS_K2_L10
    assert sum(PAPER_COSTS_K2_L10) == SUM_C


def _paper_by_hand(s):
    """C_f = sum c + sum_idx c_idx * s_idx with N = 4; C = 2 sum c."""
    c_f = SUM_C + sum(c * si for c, si in zip(PAPER_COSTS_K2_L10, s))
    return 1.0 - c_f / (2 * SUM_C)


def test_paper_speedup_linear_has_the_1_3_factor():
    # t_0=0.5, N=4: x_idx = 0.5 + 0.5*idx/4 = 0.5, 0.625, 0.75, 0.875
    # sum c*x = 55296 + 112640 + 30720 + 8960 = 207616 -> 1 - 549632/684032 = 134400/684032
    assert _paper_by_hand([0.5, 0.625, 0.75, 0.875]) == pytest.approx(134400 / 684032)
    assert paper_speedup(2, 10, 0.5, "linear") == pytest.approx(1.3 * 134400 / 684032, rel=1e-12)


def test_paper_speedup_squared_and_cubic():
    xs = [0.5, 0.625, 0.75, 0.875]
    assert paper_speedup(2, 10, 0.5, "squared") == pytest.approx(
        _paper_by_hand([x * x for x in xs]), rel=1e-12)
    assert paper_speedup(2, 10, 0.5, "cubic") == pytest.approx(
        _paper_by_hand([0.125, 0.244140625, 0.421875, 0.669921875]), rel=1e-12)


def test_paper_speedup_none_is_zero():
    assert paper_speedup(2, 10, 0.5, "none") == 0.0
    assert paper_speedup(12, 76, 0.1, "none") == 0.0


def test_paper_speedup_rejects_bad_settings():
    with pytest.raises(ValueError, match=re.escape("t_0=0")):
        paper_speedup(12, 76, 0, "cubic")
    with pytest.raises(ValueError, match="'quartic'"):
        paper_speedup(12, 76, 0.5, "quartic")


# --- flops -------------------------------------------------------------------------------------

def test_flops_speedup_hand_computed_on_three_costs():
    # c = [1, 2, 3]; baseline = 6 (fwd) + 6 (weight grads) + 5 (input grads, not group 0) = 17
    # linear t_0=0.5: t = [0.5, 0.75, 1]
    #   freezeout = 6 + (0.5 + 1.5 + 3) + (2*0.5 + 3*0.75) = 6 + 5 + 3.25 = 14.25
    assert flops_for([1, 2, 3], 0.5, "linear") == pytest.approx(1 - 14.25 / 17, rel=1e-12)
    # squared t_0=0.5: t = [0.25, 0.5625, 1]
    #   freezeout = 6 + (0.25 + 1.125 + 3) + (2*0.25 + 3*0.5625) = 6 + 4.375 + 2.1875 = 12.5625
    assert flops_for([1, 2, 3], 0.5, "squared") == pytest.approx(1 - 12.5625 / 17, rel=1e-12)


@pytest.mark.parametrize("strategy", ["linear", "squared", "cubic"])
def test_flops_speedup_zero_for_none_and_t_0_one(strategy):
    costs = [5.0, 1.0, 2.0, 7.0]
    assert flops_for(costs, 0.5, "none") == 0.0
    assert flops_for(costs, 1.0, strategy) == 0.0


@pytest.mark.parametrize("strategy", ["linear", "squared", "cubic"])
def test_flops_speedup_grows_as_t_0_falls(strategy):
    costs = [5.0, 1.0, 2.0, 7.0, 3.0]
    speedups = [flops_for(costs, t_0, strategy) for t_0 in (1.0, 0.9, 0.8, 0.5, 0.3, 0.1)]
    assert all(a < b for a, b in zip(speedups, speedups[1:]))
    assert speedups[-1] < 2 / 3  # nothing can save more than the two backward passes


# --- time --------------------------------------------------------------------------------------

def test_time_speedup_hand_built_stages():
    # 0..0.25: 1.0 s/step, 0.25..0.5: 0.8, 0.5..1: 0.5 -> 0.25 + 0.2 + 0.25 = 0.7 of baseline
    times = [0.25, 0.5, 1.0]
    assert freezing_stages(times) == [0, 1, 2]
    assert time_speedup({0: 1.0, 1: 0.8, 2: 0.5}, times) == pytest.approx(0.3)


def test_time_speedup_ties_skip_the_empty_stage():
    # two groups freeze together at 0.5: stage 1 never happens, so it is neither measured nor used
    times = [0.5, 0.5, 1.0]
    assert frozen_groups_at(0.5, times) == 2
    assert freezing_stages(times) == [0, 2]
    assert time_speedup({0: 2.0, 2: 1.0}, times) == pytest.approx(1 - (2.0 * 0.5 + 1.0 * 0.5) / 2.0)


def test_time_speedup_strategy_none_is_zero():
    times = [1.0, 1.0, 1.0]
    assert freezing_stages(times) == [0]
    assert time_speedup({0: 3.0}, times) == 0.0


# --- real models -------------------------------------------------------------------------------

SHAPE_32 = (1, 3, 32, 32)


@pytest.fixture(scope="module")
def densenet76():
    """The paper's default DenseNet-BC, L=76, k=12 (built once: flop counting it takes ~1 s)."""
    torch.manual_seed(0)
    return build_model("densenet", 10, 3)


@pytest.fixture(scope="module")
def densenet76_costs(densenet76):
    return group_costs(densenet76, SHAPE_32)


def tiny_densenet():
    torch.manual_seed(0)
    return build_model("densenet", 10, 1, depth=10, growth_rate=4)


def test_group_costs_sum_to_the_whole_model_flops(densenet76, densenet76_costs):
    assert len(densenet76_costs) == len(densenet76.layer_groups())
    assert all(c > 0 for c in densenet76_costs[:-1]) and densenet76_costs[-1] >= 0
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        densenet76.eval()(torch.zeros(SHAPE_32))
    densenet76.train()
    assert sum(densenet76_costs) == counter.get_total_flops() > 0


def test_group_costs_scale_with_batch_and_restore_train_mode():
    model = tiny_densenet().train()
    one, two = group_costs(model, (1, 1, 28, 28)), group_costs(model, (2, 1, 28, 28))
    assert two == [2 * c for c in one]
    assert model.training


@pytest.mark.parametrize("t_0", [0.5, 0.8])
@pytest.mark.parametrize("strategy", ["linear", "squared", "cubic"])
def test_calc_speedup_flops_on_densenet76_in_range(densenet76, densenet76_costs, t_0, strategy):
    s = calc_speedup(densenet76, SHAPE_32, t_0, strategy)
    assert 0.0 < s < 0.67
    assert s == pytest.approx(flops_for(densenet76_costs, t_0, strategy), rel=1e-12)


def test_calc_speedup_orders_like_paper(densenet76):
    def both(t_0, strategy):
        return (calc_speedup(densenet76, SHAPE_32, t_0, strategy),
                calc_speedup(densenet76, SHAPE_32, t_0, strategy, method="paper"))

    for method in (0, 1):  # flops, paper
        at_08 = [both(0.8, s)[method] for s in ("linear", "squared", "cubic")]
        assert at_08[0] < at_08[1] < at_08[2], at_08
        for strategy in ("linear", "cubic"):
            assert both(0.5, strategy)[method] > both(0.8, strategy)[method]
    assert both(0.8, "none") == (0.0, 0.0)
    assert both(1.0, "cubic")[0] == 0.0


def test_calc_speedup_paper_matches_paper_speedup(densenet76):
    assert calc_speedup(densenet76, SHAPE_32, 0.8, "cubic", method="paper") == paper_speedup(
        12, 76, 0.8, "cubic")


def test_calc_speedup_paper_rejects_non_densenet_and_non_32x32():
    wrn = build_model("wrn", 10, 3, depth=10, widen_factor=1)
    with pytest.raises(ValueError, match="DenseNet-BC on 32x32"):
        calc_speedup(wrn, SHAPE_32, 0.8, "cubic", method="paper")
    with pytest.raises(ValueError, match="DenseNet-BC on 32x32"):
        calc_speedup(tiny_densenet(), (1, 1, 28, 28), 0.8, "cubic", method="paper")


def test_calc_speedup_rejects_unknown_method_and_bad_settings():
    model = tiny_densenet()
    with pytest.raises(ValueError, match="'guess'") as info:
        calc_speedup(model, (1, 1, 28, 28), 0.8, "cubic", method="guess")
    assert all(m in str(info.value) for m in ("flops", "paper", "time"))
    with pytest.raises(ValueError, match=re.escape("t_0=1.5")):
        calc_speedup(model, (1, 1, 28, 28), 1.5, "cubic")
    with pytest.raises(ValueError, match="batches"):
        calc_speedup(model, (1, 1, 28, 28), 0.8, "cubic", method="time")


def _batches():
    """An endless stream of one fixed batch."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 1, 28, 28, generator=g), torch.randint(0, 10, (8,), generator=g)
    while True:
        yield x, y


def test_calc_speedup_time_on_tiny_model_measures_the_schedules_stages():
    """Measured, so no timing threshold: a schedule that freezes groups saves some of the step
    (the frozen prefix leaves the backward pass), and one that freezes nothing saves exactly 0."""
    s = calc_speedup(tiny_densenet(), (8, 1, 28, 28), 0.5, "cubic", method="time", batches=_batches())
    assert isinstance(s, float) and 0.0 < s < 1.0
    assert calc_speedup(tiny_densenet(), (8, 1, 28, 28), 1.0, "cubic", method="time", batches=_batches()) == 0.0


def test_calc_speedup_time_is_zero_for_none():
    s = calc_speedup(tiny_densenet(), (8, 1, 28, 28), 0.5, "none", method="time",
                     batches=_batches())
    assert s == 0.0


def test_measure_stage_seconds_leaves_the_model_untouched():
    model = tiny_densenet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    def make_controller(groups):  # a schedule that freezes nothing by itself
        return FreezeOut(groups, Schedule((1.0,) * len(groups), 10**9, 0.1, True),
                         lambda pgs: torch.optim.SGD(pgs, lr=0.1, momentum=0.9))

    stream = _batches()
    timings = measure_stage_seconds(model, make_controller, lambda step: stream, [0, 3, 3, 6], TrainStep,
                                    steps=2, chunks=2, warmup=1)
    seconds = timings.samples
    assert sorted(seconds) == [0, 3, 6] and all(len(v) == 2 and min(v) > 0 for v in seconds.values())
    assert sorted(timings.event_seconds) == [0, 3, 6]
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    assert all("train" not in vars(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
