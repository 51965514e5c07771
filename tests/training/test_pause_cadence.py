"""``train(pause=..., pause_every=N)``: runs taking turns hand over every N iterations, whatever
their log_every (the turns launcher's ``turn_every``); without N, at the log points."""
from __future__ import annotations

import pytest
from helpers import TINY, compose_cfg

from freezeout.errors import ConfigError

from freezeout.training.trainer import train


def test_a_run_pauses_every_n_iterations_or_at_its_log_points(fmnist_root, tmp_path, one_thread):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "epochs=1", "log_every=4", "checkpoint=false")
    every, at_logs = [], []
    summary = train(cfg, tmp_path / "every", pause=every.append, pause_every=1)
    assert summary.status == "completed" and every == list(range(1, summary.iterations + 1))
    train(cfg, tmp_path / "logs", pause=at_logs.append)
    assert at_logs == list(range(4, summary.iterations + 1, 4))


@pytest.mark.parametrize("bad", ["epochs", 0, -3, 2.5, True])
def test_a_bad_pause_every_is_one_line_before_anything_is_written(bad, fmnist_root, tmp_path):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "epochs=1", "checkpoint=false")
    with pytest.raises(ConfigError, match=rf"pause_every={bad!r} is not allowed.*'epoch'"):
        train(cfg, tmp_path / "run", pause=lambda _: None, pause_every=bad)
    assert not (tmp_path / "run").exists()
