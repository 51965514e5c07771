"""The engine and the trainer around it, in process on real tiny runs: what is timed, evaluation
mode, the time model's statistic, the records against the schedule, and resume."""
from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY, compose_cfg

from freezeout.config import register_configs
from freezeout.freezing.schedule import Schedule
from freezeout.models.factory import build_run_model
from freezeout.rundir.records import RunSummary, read_metrics
from freezeout.training.stagetiming import median_stage_seconds
from freezeout.training.step import evaluate
from freezeout.training.trainer import train

register_configs()
pytestmark = pytest.mark.usefixtures("one_thread")




def tiny(fmnist_root, *overrides: str):
    return compose_cfg(*TINY, f"data.root={fmnist_root}", *overrides)


def test_median_is_the_time_models_statistic():
    # the slowest sample (a burst of load) must not be the figure; nor the fastest
    assert median_stage_seconds({0: [0.30, 0.10, 0.20], 3: [0.05, 0.90, 0.06, 0.07]}) == {0: 0.20, 3: 0.065}


def test_evaluate_runs_in_eval_mode_and_moves_no_statistic(fmnist_root):
    from freezeout.data import load_data

    cfg = tiny(fmnist_root)
    model = build_run_model(cfg, torch.device("cpu")).train()
    data = load_data(cfg.data, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, err = evaluate(model, data.val_x, data.val_y)
    assert model.training  # restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running stats untouched
    model.eval()
    with torch.no_grad():
        out = model(data.val_x.float())
    assert err == pytest.approx((out.argmax(1) != data.val_y).float().mean().item())
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(out, data.val_y).item(), rel=1e-5)


def test_train_seconds_count_training_steps_only(tmp_path, fmnist_root):
    # 2 steps of 32 images per epoch against 5,000 validation images: evaluation dwarfs training,
    # so a train_seconds that included it could not stay below eval_seconds.
    cfg = tiny(fmnist_root, "data.subset=64", "data.val_size=5000", "epochs=2", "checkpoint=false")
    summary = train(cfg, tmp_path)
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert summary.train_seconds == pytest.approx(sum(r["epoch_seconds"] for r in records))
    assert all(r["epoch_seconds"] < r["eval_seconds"] for r in records)
    assert summary.train_seconds < summary.eval_seconds


def test_metrics_lr_and_frozen_groups_follow_the_schedule(tmp_path, fmnist_root):
    cfg = tiny(fmnist_root, "strategy=cubic", "t_0=0.5", "epochs=3", "checkpoint=false")
    summary = train(cfg, tmp_path)
    schedule = Schedule.freezeout(summary.num_groups, 0.5, "cubic", summary.iterations, cfg.optimizer.lr, True)
    assert tuple(summary.layer_times) == schedule.times
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in records] == [16, 32, 48]
    for r in records:
        last = r["iteration"] - 1  # the controller's last call of the epoch
        frozen = sum(1 for f in schedule.freeze_at if f <= last)
        assert r["frozen_groups"] == frozen
        assert r["lr"] == pytest.approx(schedule.lr_at(frozen, last), rel=1e-12)
    # the realised freezing iterations are the schedule's, the head never freezes
    assert summary.freeze_iterations == [f if f < summary.iterations else None for f in schedule.freeze_at]


def test_const_time_uses_the_time_model_when_it_was_measured(tmp_path, fmnist_root):
    cfg = tiny(fmnist_root, "epochs=2", "const_time=true", "t_0=0.5", "predict_time=true", "predict_time_share=1",
               "checkpoint=false")
    summary = train(cfg, tmp_path)
    assert summary.const_time_prediction == "time"
    assert summary.iterations == round(32 / (1 - summary.predicted_speedup["time"]))
    assert summary.iterations_done == summary.iterations


class Kill(Exception):
    """Stands for a kill in the middle of an epoch."""


def test_run_killed_mid_epoch_resumes_to_the_same_weights_in_process(tmp_path, fmnist_root):
    cfg = tiny(fmnist_root, "strategy=cubic", "t_0=0.5", "epochs=3")
    straight = train(cfg, tmp_path / "straight")
    assert straight.status == "completed"

    killed = tmp_path / "killed"
    calls, seen = {"n": 0}, {}

    def kill_in_epoch_2(module, args, out):
        if isinstance(module, torch.nn.Linear) and module.training:  # the head, in training steps
            calls["n"] += 1
            if calls["n"] == 16 + 5:  # 16 iterations an epoch: the 6th step of epoch 2
                seen["summary"] = json.loads((killed / "summary.json").read_text())
                raise Kill()

    handle = torch.nn.modules.module.register_module_forward_hook(kill_in_epoch_2)
    try:
        with pytest.raises(Kill):
            train(cfg, killed)
    finally:
        handle.remove()
    # the summary was rewritten at the end of epoch 1, while the run was still going
    assert seen["summary"]["status"] == "running" and seen["summary"]["iterations_done"] == 16
    assert RunSummary.read(killed / "summary.json").status == "failed"
    assert [r["epoch"] for r in read_metrics(killed / "metrics.jsonl")] == [1]

    resumed = train(cfg, killed)
    assert resumed.status == "completed" and resumed.iterations_done == straight.iterations_done == 48
    drop = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}
    same = [[{k: v for k, v in r.items() if k not in drop} for r in read_metrics(d / "metrics.jsonl")]
            for d in (tmp_path / "straight", killed)]
    assert same[0] == same[1]  # each epoch once, the same losses and errors
    wa = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed.freeze_iterations == straight.freeze_iterations
