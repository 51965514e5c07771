"""Runs taking turns each in a process of their own (freezeout.bench.turns): the order of the turns,
the hand-over kept out of a run's timed seconds, results as a lone run's (dropout included, which
a shared process's random stream broke), a failing or vanished run leaving the others to train on
with keep_going, and a stop request ending every run at its turn, resumed exactly."""
from __future__ import annotations

import os
import time

import pytest
from helpers import TINY

from freezeout.bench.turns import take_turns, train_in_turn
from freezeout.config import compose_config
from freezeout.errors import ConfigError
from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(root, *extra: str):
    tiny = [o for o in TINY if not (o.startswith("model") and any(e.startswith("model=") for e in extra))]
    return compose_config(*tiny, f"data.root={root}", "data.subset=256", "epochs=2", "log_every=2", *extra)


def hand_over_three_times(i, cfg, run_dir, pause):
    """A job that trains nothing: three hand-overs, then where it ran."""
    import torch

    for j in (1, 2, 3):
        pause(j)
    return os.getpid(), torch.get_num_threads()


def slow_hand_over(i, cfg, run_dir, pause):
    """``train`` with a hand-over that takes 3 s."""
    def slow(j):
        time.sleep(3.0)
        pause(j)
    return train(cfg, run_dir, pause=slow, pause_every=4)


def vanish_or_train(i, cfg, run_dir, pause):
    if i == 0:
        os._exit(3)  # as a process killed for its memory: no result, no error
    return train_in_turn(i, cfg, run_dir, pause)


def test_each_run_has_a_process_of_its_own_and_the_turns_go_round_then_back(tmp_path):
    turns: list[tuple[int, int]] = []
    out = take_turns([(None, tmp_path / str(i)) for i in range(3)], run=hand_over_three_times,
                     on_turn=lambda i, j: turns.append((i, j)))
    pids = [pid for pid, _ in out]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert [threads for _, threads in out] == [1, 1, 1]  # the launching process's torch threads (one_thread)
    assert turns == [(0, 1), (1, 1), (2, 1), (2, 2), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3)]


def test_a_slow_hand_over_adds_nothing_to_the_runs_seconds(fmnist_root, tmp_path):
    jobs = [(_cfg(fmnist_root, "strategy=none"), tmp_path / "a"), (_cfg(fmnist_root, "strategy=cubic"), tmp_path / "b")]
    started = time.perf_counter()
    summaries = take_turns(jobs, run=slow_hand_over)
    wall = time.perf_counter() - started
    # 16 iterations, a hand-over every 4: each run sleeps 4 x 3 s in its hand-overs, 24 s in all.
    assert wall > 24
    for s in summaries:
        assert s.status == "completed" and s.iterations_done == 16
        assert s.train_seconds < 6, s.train_seconds  # the 12 s it slept are not training


def test_runs_with_dropout_compute_in_turns_what_they_compute_alone(fmnist_root, tmp_path):
    # WRN with dropout draws from torch's global random stream: in one shared process the runs
    # drew it in turns, each from where the other left it.
    wrn = ["model=wrn", "model.depth=10", "model.widen_factor=1", "model.dropout=0.3", "checkpoint=false"]
    jobs = [(_cfg(fmnist_root, *wrn, "strategy=none"), tmp_path / "base"),
            (_cfg(fmnist_root, *wrn, "strategy=cubic", "t_0=0.5"), tmp_path / "cubic")]
    summaries = take_turns(jobs)
    alone = [train(cfg, tmp_path / f"alone-{i}") for i, (cfg, _) in enumerate(jobs)]
    for s, a in zip(summaries, alone):
        assert s.final_val_loss == a.final_val_loss and s.final_val_err == a.final_val_err


def test_with_keep_going_a_failing_or_vanished_run_leaves_the_others_training(fmnist_root, tmp_path):
    jobs = [(_cfg(fmnist_root, "strategy=none"), tmp_path / "vanishes"),
            (_cfg(fmnist_root, "optimizer.momentum=0", "optimizer.nesterov=true"), tmp_path / "bad"),
            (_cfg(fmnist_root, "strategy=cubic"), tmp_path / "good")]
    vanished, bad, good = take_turns(jobs, keep_going=True, run=vanish_or_train)
    assert isinstance(vanished, RuntimeError) and "exit code 3" in str(vanished)
    assert isinstance(bad, ConfigError) and "nesterov" in str(bad)
    assert good.status == "completed" and good.iterations_done == 16


def test_a_stop_request_ends_every_run_at_its_turn_and_they_resume_exactly(fmnist_root, tmp_path):
    jobs = [(_cfg(fmnist_root, "strategy=none"), tmp_path / "base"),
            (_cfg(fmnist_root, "strategy=cubic", "t_0=0.5"), tmp_path / "cubic")]
    turns: list[int] = []
    stopped = take_turns(jobs, keep_going=True, stop=lambda: "SIGINT" if len(turns) >= 6 else None,
                         on_turn=lambda i, j: turns.append(j))
    assert all(isinstance(e, Interrupted) and e.signame == "SIGINT" for e in stopped), stopped
    assert turns == [2, 2, 4, 4, 6, 6]  # each handed over three times, then stopped at its turn
    resumed = take_turns(jobs)
    alone = [train(cfg, tmp_path / f"alone-{i}") for i, (cfg, _) in enumerate(jobs)]
    for s, a in zip(resumed, alone):
        assert s.status == "completed" and s.final_val_loss == a.final_val_loss
