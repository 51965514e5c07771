"""``summary.train_step_seconds``: training's own seconds a step at each freezing stage, the
loop's seconds split at its freezing events, to set beside the time model's ``step_seconds``."""
from __future__ import annotations

import signal

import pytest
from helpers import TINY, compose_cfg

from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train


def stage_steps(freeze_iterations: list, iterations: int) -> dict[int, int]:
    """Steps trained with ``k`` groups frozen, from the iteration each group froze at."""
    bounds = [0, *sorted(j for j in freeze_iterations if j is not None), iterations]
    return {k: end - begin for k, (begin, end) in enumerate(zip(bounds, bounds[1:])) if end > begin}


def test_a_freezeout_run_records_its_step_seconds_by_stage_adding_up_to_its_training_seconds(fmnist_root, tmp_path,
                                                                                             one_thread):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5", "predict_time=true",
                      "predict_time_share=1.0", "checkpoint=false")
    summary = train(cfg, tmp_path)
    steps = stage_steps(summary.freeze_iterations, summary.iterations)
    assert summary.status == "completed" and len(steps) > 3  # several stages trained through
    assert sorted(summary.train_step_seconds, key=int) == [str(k) for k in steps]
    assert set(summary.train_step_seconds) <= set(summary.step_seconds)  # the time model timed each one
    assert all(s > 0 for s in summary.train_step_seconds.values())
    total = sum(summary.train_step_seconds[str(k)] * n for k, n in steps.items())
    assert total == pytest.approx(summary.train_seconds, rel=1e-6)  # a partition of training's seconds


def test_a_run_stopped_mid_epoch_and_resumed_counts_each_stage_once(fmnist_root, tmp_path, one_thread):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=linear", "t_0=0.5", "log_every=5")

    def stop_at_25(iteration: int) -> None:  # iteration 25 of 48: mid-epoch and mid-schedule
        if iteration == 25:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path, pause=stop_at_25, pause_every=25)
    resumed = train(cfg, tmp_path)
    steps = stage_steps(resumed.freeze_iterations, resumed.iterations)
    assert resumed.status == "completed" and sorted(resumed.train_step_seconds, key=int) == [str(k) for k in steps]
    total = sum(resumed.train_step_seconds[str(k)] * n for k, n in steps.items())
    assert total == pytest.approx(resumed.train_seconds, rel=1e-6)
