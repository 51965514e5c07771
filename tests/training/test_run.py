"""End to end: real short runs through ``run.py`` (subprocess) and through ``train(cfg)``."""
from __future__ import annotations

import json

import pytest
from helpers import TINY, compose_cfg, run_cli

from freezeout.config import register_configs
from freezeout.rundir.records import RunSummary, read_metrics

register_configs()
METRIC_FIELDS = {"epoch", "iteration", "train_loss", "val_loss", "val_err", "frozen_groups", "train_seconds",
                 "epoch_seconds", "eval_seconds", "lr", "peak_memory_mb"}
SUMMARY_FIELDS = {"status", "strategy", "t_0", "scale_lr", "const_time", "model", "data", "seed", "iterations",
                  "iterations_per_epoch", "predicted_speedup", "train_seconds", "final_val_err", "best_val_err",
                  "test_err", "num_params", "device", "versions", "git_revision", "config", "layer_times"}


@pytest.fixture(scope="module")
def cubic_and_baseline(fmnist_root, tmp_path_factory):
    """One cubic run and its baseline, trained through the command line as a user would."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for strategy in ("cubic", "none"):
        proc = run_cli(*TINY, f"data.root={fmnist_root}", f"strategy={strategy}", "t_0=0.5",
                       f"hydra.run.dir={out / strategy}")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[strategy] = out / strategy
    return runs


@pytest.mark.slow
def test_run_writes_metrics_and_summary(cubic_and_baseline):
    run = cubic_and_baseline["cubic"]
    records = read_metrics(run / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert all(METRIC_FIELDS <= set(r) for r in records)
    assert [r["iteration"] for r in records] == [16, 32, 48]  # 512 images / batch 32, 3 epochs
    assert all(a["train_seconds"] < b["train_seconds"] for a, b in zip(records, records[1:]))
    assert SUMMARY_FIELDS <= set(json.loads((run / "summary.json").read_text()))
    summary = RunSummary.read(run / "summary.json")
    assert summary.status == "completed" and summary.iterations == summary.iterations_done == 48
    assert summary.config["seed"] == 0 and summary.versions["torch"]
    assert 0 < summary.predicted_speedup["flops"] < 0.67 and summary.predicted_speedup["paper"] is None
    assert summary.final_val_err == records[-1]["val_err"] < 0.9  # beats chance (90%)
    assert summary.train_seconds == pytest.approx(records[-1]["train_seconds"])
    assert (run / ".hydra" / "config.yaml").exists() and (run / "checkpoint.pt").exists()


@pytest.mark.slow
def test_cubic_freezes_more_groups_over_the_run_and_the_baseline_none(cubic_and_baseline):
    frozen = [r["frozen_groups"] for r in read_metrics(cubic_and_baseline["cubic"] / "metrics.jsonl")]
    assert frozen == sorted(frozen) and frozen[0] < frozen[-1]
    # t_0 = 0.5 cubed: the first group freezes at 12.5% of training, before the end of epoch 1.
    assert frozen[0] >= 1
    summary = RunSummary.read(cubic_and_baseline["cubic"] / "summary.json")
    assert frozen[-1] == summary.num_groups - 1  # all but the head by the end
    base = read_metrics(cubic_and_baseline["none"] / "metrics.jsonl")
    assert [r["frozen_groups"] for r in base] == [0, 0, 0]
    assert all(r["val_err"] < 0.9 for r in base[-1:])




@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_train_on_cifar_format_files(tmp_path, name):
    """The CIFAR path end to end (augmentation, test evaluation) on files in CIFAR's own format."""
    from test_data import write_cifar

    from freezeout.training.trainer import train

    write_cifar(tmp_path / "data", name, n_train=100, n_test=20)
    cfg = compose_cfg(f"data={name}", f"data.root={tmp_path / 'data'}", "data.val_size=20", "model.depth=10",
                      "model.growth_rate=2", "epochs=2", "batch_size=16", "device=cpu", "progress=false",
                      "eval_test=true")
    summary = train(cfg, tmp_path / "run")
    assert summary.status == "completed" and summary.iterations == 10  # 80 // 16 = 5 a epoch
    assert summary.test_err is not None and summary.predicted_speedup["paper"] is not None
    assert summary.model["depth"] == 10 and summary.data["augment"] is True


def test_const_time_trains_longer_by_the_predicted_speedup(tmp_path, fmnist_root):
    from freezeout.training.trainer import train

    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "epochs=1", "const_time=true", "t_0=0.5",
                      "checkpoint=false")
    summary = train(cfg, tmp_path)
    s = summary.predicted_speedup["flops"]
    assert summary.iterations == round(16 / (1 - s)) > 16
    assert summary.iterations_done == summary.iterations
