"""Runs taking turns (freezeout.bench.turns): real tiny runs, each in a process of its own, hand over at their log
points, as their CSV logs' wall times show, and compute exactly what they compute alone."""
from __future__ import annotations

import csv

import pytest
from helpers import TINY

from freezeout.bench.turns import take_turns
from freezeout.config import compose_config
from freezeout.errors import ConfigError
from freezeout.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(root, *extra: str):
    return compose_config(*TINY, f"data.root={root}", "data.subset=256", "epochs=2", "log_every=2",
                          "checkpoint=false", "logger=csv", *extra)


def _loss_rows(run_dir) -> list[tuple[float, int]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [(float(r["wall_time"]), int(r["step"])) for r in csv.DictReader(f) if r["name"] == "train/loss"]


def test_runs_take_turns_at_their_log_points_and_train_as_alone(fmnist_root, tmp_path):
    jobs = [(_cfg(fmnist_root, "strategy=none"), tmp_path / "baseline"),
            (_cfg(fmnist_root, "strategy=cubic", "t_0=0.5"), tmp_path / "cubic")]
    summaries = take_turns(jobs)
    assert [s.status for s in summaries] == ["completed", "completed"]
    rows = {name: _loss_rows(tmp_path / name) for name in ("baseline", "cubic")}
    steps = [j for _, j in rows["baseline"]]
    assert steps == [j for _, j in rows["cubic"]] == list(range(2, 17, 2))  # 256 images / batch 32 x 2 epochs
    # Every run logs iteration j before any run logs iteration j + 2: the turns interleave. Run one
    # after the other, the second run's first row would come after the first run's last one.
    for k in range(len(steps) - 1):
        assert max(rows[n][k][0] for n in rows) <= min(rows[n][k + 1][0] for n in rows)
    alone = [train(cfg, tmp_path / f"alone-{i}") for i, (cfg, _) in enumerate(jobs)]
    for s, a in zip(summaries, alone):  # taking turns changes when a run trains, not what it computes
        assert s.final_val_err == a.final_val_err and s.final_val_loss == a.final_val_loss
        assert s.freeze_iterations == a.freeze_iterations and s.iterations_done == a.iterations_done


def test_a_failing_run_stops_the_round_with_its_own_error(fmnist_root, tmp_path):
    jobs = [(_cfg(fmnist_root, "strategy=none"), tmp_path / "good"),
            (_cfg(fmnist_root, "optimizer.momentum=0", "optimizer.nesterov=true"), tmp_path / "bad")]
    with pytest.raises(ConfigError, match="nesterov"):
        take_turns(jobs)
    summary = tmp_path / "good" / "summary.json"
    assert not summary.exists() or '"completed"' not in summary.read_text()  # stopped at its next turn
