"""The peer rules (layer_freezing, autofreeze) on hand-computed cases and real tiny runs, and the
frozen-prefix activation cache against the uncached run."""
from __future__ import annotations

import logging
import math

import pytest
from helpers import REPO, TINY
from hydra import compose, initialize_config_dir

from freezeout.config import register_configs
from freezeout.errors import ConfigError
from freezeout.freezing.rules import (
    autofreeze_count,
    layer_freezing_count,
    layer_freezing_times,
    percentile,
    realised_times,
    strategy_schedule,
)
from freezeout.freezing.schedule import learning_rate
from freezeout.rundir.records import read_metrics
from freezeout.speedup.formulas import time_speedup
from freezeout.training.checks import validate
from freezeout.training.trainer import train

register_configs()
pytestmark = pytest.mark.usefixtures("one_thread")
LF = {"name": "layer_freezing", "freeze_start": 0.5, "freeze_level": 1.0}


# --- layer_freezing: Composer's rule, on layer groups -------------------------------------------

@pytest.mark.parametrize("tau, start, level, expected", [
    (0.25, 0.5, 1.0, 0), (0.5, 0.5, 1.0, 0),  # none while tau <= freeze_start
    (0.75, 0.5, 1.0, 3),  # int(1.0 * 0.25 / 0.5 * 6) = 3 of the 6 non-head groups
    (0.75, 0.5, 0.5, 1),  # int(0.5 * 0.5 * 6) = int(1.5) = 1
    (0.25, 0.0, 1.0, 1), (0.5, 0.0, 1.0, 3), (0.75, 0.0, 1.0, 4),
    (1.0, 0.0, 1.0, 6),  # everything but the head, never the head
])
def test_layer_freezing_count_hand_computed(tau, start, level, expected):
    assert layer_freezing_count(tau, 7, start, level) == expected


def test_layer_freezing_freezes_at_epoch_ends_and_never_the_head():
    # 7 groups, 4 epochs of 16 iterations: epoch ends at 16 (tau .25), 32 (.5), 48 (.75); 64 is the end
    assert layer_freezing_times(7, 16, 64, 0.5, 1.0) == [0.75] * 3 + [1.0] * 4
    assert layer_freezing_times(7, 16, 64, 0.0, 1.0) == [0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.0]
    schedule = strategy_schedule(LF, 7, 0.8, True, 16, 64, 0.1)
    assert schedule.freeze_at == (48, 48, 48, 64, 64, 64, 64)  # the first iteration after epoch 3
    # no per-group rates: every group follows the baseline's cosine until it freezes
    assert schedule.lr_at(0, 47) == schedule.lr_at(6, 47) == pytest.approx(learning_rate(47, 1.0, 64, 0.1, False))
    assert schedule.lr_at(0, 48) == 0.0 and schedule.lr_at(3, 48) > 0.0
    # an epoch end at every iteration: group i of the 4 non-head groups freezes once int(4 tau) > i;
    # the last one only at tau = 1, the end of training, where freezing changes nothing
    assert layer_freezing_times(5, 1, 1000, 0.0, 1.0) == [0.25, 0.5, 0.75, 1.0, 1.0]


# --- autofreeze ---------------------------------------------------------------------------------

def test_percentile_interpolates_like_numpy():
    assert percentile([0.9, 0.05, 0.2, 0.1], 50) == pytest.approx(0.15)
    assert percentile([1.0, 2.0, 3.0], 25) == pytest.approx(1.5) and percentile([4.0], 80) == 4.0


@pytest.mark.parametrize("changes, q, cap, expected", [
    ([0.1, 0.2, 0.9, 0.05], 50, 2, 1),  # threshold 0.15: 0.1 yes, 0.2 stops the prefix
    ([0.01, 0.02, 0.9, 0.5], 50, 3, 2),  # threshold 0.26: two, then 0.9
    ([0.01, 0.02, 0.9, 0.5], 50, 1, 1),  # at most max_per_check
    ([0.3, 0.1, 0.2, 0.05], 50, 3, 0),  # a prefix only: the first group has not settled
    ([0.01, 0.5], 50, 5, 1),  # the head (last) never freezes
    ([0.7], 50, 5, 0),  # only the head is active
    ([0.2, 0.2, 0.2], 50, 5, 0),  # strictly below: equal changes freeze nothing
    ([0.1, math.inf, 0.3], 50, 5, 1),  # no gradient before: never "settled"
])
def test_autofreeze_count_hand_computed(changes, q, cap, expected):
    assert autofreeze_count(changes, q, cap) == expected


def test_autofreeze_skips_a_check_whose_gradients_are_not_finite():
    """A step the fp16 scaler skipped leaves inf/NaN gradients: that check decides nothing and keeps
    the last finite norms as its reference (it would otherwise freeze on nonsense changes)."""
    import torch

    from freezeout.freezing.rules import AutoFreeze
    from freezeout.freezing.schedule import Schedule
    from freezeout.models import build_model

    torch.manual_seed(0)
    model = build_model("densenet", 10, 1, depth=10, growth_rate=4)
    groups = model.layer_groups()
    controller = AutoFreeze(groups, Schedule((1.0,) * len(groups), 100, 0.1, False, anneal="global"),
                            lambda pg: torch.optim.SGD(pg, lr=0.1), interval=1, percentile=90.0, max_per_check=3)
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    controller.step(1)  # the first check: norms become the reference
    reference = list(controller.previous)
    assert all(v is not None and math.isfinite(v) for v in reference)
    next(groups[0].parameters()).grad.fill_(math.inf)
    assert controller.step(2) == 0 and controller.previous == reference  # no decision, reference kept
    next(groups[0].parameters()).grad.fill_(0.5)
    controller.step(3)
    assert controller.previous != reference  # finite again: the check runs


def test_realised_times_are_fractions_of_training():
    assert realised_times([16, 40, None], 80) == [0.2, 0.5, 1.0]


# --- real tiny runs -------------------------------------------------------------------------------

def compose_cfg(fmnist_root, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, f"data.root={fmnist_root}", "checkpoint=false",
                                                        *overrides])


def test_layer_freezing_run_freezes_as_composer_would(tmp_path, fmnist_root):
    summary = train(compose_cfg(fmnist_root, "strategy=layer_freezing", "epochs=4"), tmp_path)
    assert summary.status == "completed" and summary.num_groups == 7
    assert summary.freeze_iterations == [48, 48, 48, None, None, None, None]
    # metrics count the groups frozen during an epoch's last step: the end of epoch 3 freezes for epoch 4
    assert [r["frozen_groups"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 0, 0, 3]
    assert 0 < summary.predicted_speedup["flops"] < 0.3 and summary.predicted_speedup["paper"] is None


def test_autofreeze_run_freezes_a_prefix_only_and_predicts_from_what_happened(tmp_path, fmnist_root):
    cfg = compose_cfg(fmnist_root, "strategy=autofreeze", "strategy.interval=4", "strategy.max_per_check=2",
                      "epochs=4", "predict_time=true", "predict_time_share=1.0")
    summary = train(cfg, tmp_path)
    frozen_at = summary.freeze_iterations
    assert frozen_at[-1] is None  # never the head
    done = [j for j in frozen_at if j is not None]
    assert done, "autofreeze froze nothing in 64 iterations with checks every 4"
    assert frozen_at[:len(done)] == done and all(j is None for j in frozen_at[len(done):])  # a prefix
    assert done == sorted(done) and all(j % 4 == 0 for j in done)  # at checks, in order
    assert summary.layer_times == [j / 64 for j in done] + [1.0] * (7 - len(done))
    assert 0 < summary.predicted_speedup["flops"] < 1  # from the realised schedule
    # The time model timed every stage the rule might reach, before training (at the end, a copy of
    # the trained model would have had its frozen groups frozen at "stage 0" too).
    assert sorted(summary.step_seconds, key=int) == [str(k) for k in range(7)]
    assert all(s > 0 for s in summary.step_seconds.values())
    assert summary.predicted_speedup["time"] == pytest.approx(time_speedup(
        {int(k): v for k, v in summary.step_seconds.items()}, summary.layer_times), abs=1e-3)  # + ~0 event costs


@pytest.mark.parametrize("rule", ["layer_freezing", "autofreeze"])
@pytest.mark.parametrize("setting", ["t_0=0.5", "scale_lr=false", "const_time=true"])
def test_a_setting_a_rival_does_not_read_is_refused(fmnist_root, rule, setting):
    """FreezeOut's own settings would be ignored by a rival rule: refused, naming the key."""
    key = setting.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}=\S+ does not apply to strategy={rule} .* default {key}="):
        validate(compose_cfg(fmnist_root, f"strategy={rule}", setting))
    validate(compose_cfg(fmnist_root, f"strategy={rule}"))  # the defaults pass
    validate(compose_cfg(fmnist_root, "strategy=cubic", setting))  # and FreezeOut reads them


def test_bad_settings_of_a_rival_are_refused(fmnist_root):
    with pytest.raises(ConfigError, match=r"strategy.freeze_start=1.0 for layer_freezing; allowed: \[0, 1\)"):
        validate(compose_cfg(fmnist_root, "strategy=layer_freezing", "strategy.freeze_start=1.0"))
    with pytest.raises(ConfigError, match=r"strategy.percentile=100.0 for autofreeze"):
        validate(compose_cfg(fmnist_root, "strategy=autofreeze", "strategy.percentile=100"))


# --- the frozen-prefix cache ----------------------------------------------------------------------

def _losses(run_dir):
    return [(r["train_loss"], r["val_loss"], r["val_err"], r["frozen_groups"]) for r in
            read_metrics(run_dir / "metrics.jsonl")]


@pytest.mark.parametrize("strategy", ["cubic", "autofreeze"])
def test_cache_gives_the_uncached_runs_losses(tmp_path, fmnist_root, strategy):
    extra = ["strategy.interval=4"] if strategy == "autofreeze" else ["t_0=0.5"]
    plain = train(compose_cfg(fmnist_root, f"strategy={strategy}", *extra), tmp_path / "plain")
    cached = train(compose_cfg(fmnist_root, f"strategy={strategy}", *extra, "cache_frozen=true"), tmp_path / "cached")
    assert cached.freeze_iterations == plain.freeze_iterations and plain.frozen_groups >= 2
    # fp32 tolerance 1e-6 relative: the store holds the very tensors the prefix would compute (on
    # this CPU the losses agree to the last bit)
    for a, b in zip(_losses(tmp_path / "plain"), _losses(tmp_path / "cached"), strict=True):
        assert a[3] == b[3] and a[:3] == pytest.approx(b[:3], rel=1e-6)


def test_cache_within_a_tiny_budget_stays_behind_and_still_trains_the_same(tmp_path, fmnist_root, caplog):
    plain = train(compose_cfg(fmnist_root, "t_0=0.5", "epochs=2"), tmp_path / "plain")
    with caplog.at_level(logging.WARNING, logger="freezeout"):
        cached = train(compose_cfg(fmnist_root, "t_0=0.5", "epochs=2", "cache_frozen=true", "cache_memory_gb=1e-9"),
                       tmp_path / "cached")
    assert "cache_memory_gb=0.00: it stays at 0 group(s)" in caplog.text
    for a, b in zip(_losses(tmp_path / "plain"), _losses(tmp_path / "cached"), strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert cached.status == plain.status == "completed"


def test_cache_with_augmentation_is_refused(fmnist_root):
    with pytest.raises(ConfigError, match="cache_frozen=true needs data.augment=false"):
        validate(compose_cfg(fmnist_root, "cache_frozen=true", "data.augment=true"))
