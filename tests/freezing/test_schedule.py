"""FreezeOut's schedule (docs/design.md, "Freezing times", "Learning rates"): hand-computed values."""
import math
import re

import pytest

from freezeout.freezing.schedule import (
    STRATEGIES,
    check_strategy,
    check_t_0,
    freeze_iteration,
    layer_times,
    learning_rate,
)


@pytest.mark.parametrize(
    "strategy, expected",
    [
        # n=3, t_0=0.5: x_i = 0.5, 0.75, (head) 1
        ("linear", [0.5, 0.75, 1.0]),
        ("squared", [0.25, 0.5625, 1.0]),
        ("cubic", [0.125, 0.421875, 1.0]),
        ("none", [1.0, 1.0, 1.0]),
    ],
)
def test_layer_times_hand_computed_n3(strategy, expected):
    assert layer_times(3, 0.5, strategy) == pytest.approx(expected, abs=1e-12)


def test_layer_times_cubic_paper_default():
    """cubic, t_0=0.8 (given before scaling): the first group freezes at 0.8**3 = 0.512."""
    # n=5: x_i = 0.8, 0.85, 0.9, 0.95, 1
    expected = [0.512, 0.614125, 0.729, 0.857375, 1.0]
    assert layer_times(5, 0.8, "cubic") == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("t_0", [0.1, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("n", [1, 2, 7, 40])
def test_last_group_always_one_and_times_non_decreasing(n, t_0, strategy):
    times = layer_times(n, t_0, strategy)
    assert len(times) == n
    assert times[-1] == 1.0
    assert all(0.0 < t <= 1.0 for t in times)
    assert times == sorted(times)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_t_0_one_equals_none(strategy):
    assert layer_times(6, 1.0, strategy) == layer_times(6, 1.0, "none") == [1.0] * 6


def test_none_ignores_t_0():
    assert layer_times(4, 0.3, "none") == [1.0] * 4


@pytest.mark.parametrize("t_0", [0, 0.0, -0.1, 1.0001, 2, float("nan"), "0.5", None, True])
def test_invalid_t_0_raises_naming_value(t_0):
    with pytest.raises(ValueError, match=re.escape(f"t_0={t_0!r}")):
        check_t_0(t_0)
    with pytest.raises(ValueError, match=re.escape(f"t_0={t_0!r}")):
        layer_times(3, t_0, "cubic")


@pytest.mark.parametrize("strategy", ["quadratic", "Cubic", "", "linear "])
def test_invalid_strategy_raises_naming_value_and_allowed(strategy):
    with pytest.raises(ValueError, match=re.escape(repr(strategy))) as info:
        check_strategy(strategy)
    assert all(s in str(info.value) for s in STRATEGIES)
    with pytest.raises(ValueError, match=re.escape(repr(strategy))):
        layer_times(3, 0.5, strategy)


@pytest.mark.parametrize("n", [0, -1])
def test_invalid_n_raises_naming_value(n):
    with pytest.raises(ValueError, match=re.escape(f"n={n}")):
        layer_times(n, 0.5, "linear")


# --- learning rates ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "j, scale_lr, expected",
    [
        # t_i = 0.5, T = 100, lr = 0.1: annealed over t_i*T = 50 iterations, lr0 = 0.2 when scaled
        (0, True, 0.2),
        (0, False, 0.1),
        (25, True, 0.1),  # cos(pi/2) = 0: half of lr0
        (25, False, 0.05),
        (10, True, 0.5 * 0.2 * (1 + math.cos(math.pi * 10 / 50))),
        (10, False, 0.5 * 0.1 * (1 + math.cos(math.pi * 10 / 50))),
        (49, True, 0.5 * 0.2 * (1 + math.cos(math.pi * 49 / 50))),
        (50, True, 0.0),
        (50, False, 0.0),
        (99, True, 0.0),
    ],
)
def test_learning_rate_hand_computed(j, scale_lr, expected):
    assert learning_rate(j, 0.5, 100, 0.1, scale_lr) == pytest.approx(expected, rel=1e-12, abs=0)


def test_learning_rate_head_is_plain_cosine_over_all_of_training():
    """t_i = 1: the baseline cosine annealing, lr0 = lr whether scaled or not."""
    for scale_lr in (True, False):
        assert learning_rate(0, 1.0, 8, 0.1, scale_lr) == pytest.approx(0.1)
        assert learning_rate(4, 1.0, 8, 0.1, scale_lr) == pytest.approx(0.05)
        assert learning_rate(7, 1.0, 8, 0.1, scale_lr) > 0.0


@pytest.mark.parametrize(
    "t_i, T, frozen_at",
    [
        (0.5, 100, 50),  # t*T integer: that very iteration is frozen
        (0.25, 10, 3),  # t*T = 2.5: j=2 still trains, j=3 frozen
        (0.3, 10, 3),
        (0.8**3, 1000, 512),  # 0.8**3 * 1000 is 512.0000000000001 in floats: still 512
        (0.9**2, 100, 81),
        (1.0, 7, 7),  # the head never freezes inside training
    ],
)
@pytest.mark.parametrize("scale_lr", [True, False])
def test_freeze_boundary(t_i, T, frozen_at, scale_lr):
    """j = ceil(t_i*T) is frozen (lr exactly 0.0), the iteration before is not (lr > 0)."""
    assert freeze_iteration(t_i, T) == frozen_at
    assert learning_rate(frozen_at, t_i, T, 0.1, scale_lr) == 0.0
    assert learning_rate(frozen_at - 1, t_i, T, 0.1, scale_lr) > 0.0


def test_cubic_default_schedule_first_group_freezes_at_512_of_1000():
    t_first = layer_times(10, 0.8, "cubic")[0]
    assert freeze_iteration(t_first, 1000) == 512
    assert learning_rate(511, t_first, 1000, 0.1, True) > 0.0
    assert learning_rate(512, t_first, 1000, 0.1, True) == 0.0


def test_learning_rate_decreases_until_freezing():
    lrs = [learning_rate(j, 0.3, 100, 0.1, True) for j in range(30)]
    assert all(a > b > 0.0 for a, b in zip(lrs, lrs[1:]))
    assert lrs[0] == pytest.approx(0.1 / 0.3)
