"""A real AutoFreeze run stopped by SIGINT late in an epoch, just before a check that freezes, and
resumed in the same process: its freezing decisions, weights and records are the uninterrupted
run's (its last gradient norms came back with it), and the seconds trained before the stop count
in that epoch's ``epoch_seconds`` and in every ``train_seconds`` after it."""
from __future__ import annotations

import json
import signal
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY, compose_cfg

from freezeout.config import register_configs
from freezeout.rundir.records import read_metrics
from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train

register_configs()
#: 3 epochs of 16 steps; AutoFreeze checks every 2 iterations and freezes at several of them.
RUN = [*TINY, "strategy=autofreeze", "strategy.interval=2", "log_every=1"]




def stop_and_resume(cfg, run_dir, at: int) -> SimpleNamespace:
    """Train ``run_dir`` with SIGINT sent at log point ``at`` (the run stops there), keep what the
    stopped run left on disk, then resume it to the end."""
    def pause(j: int) -> None:
        if j == at:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted) as stopped:
        train(cfg, run_dir, pause=pause)
    left = SimpleNamespace(iteration=stopped.value.iteration,
                           summary=json.loads((run_dir / "summary.json").read_text()),
                           checkpoint=torch.load(run_dir / "checkpoint.pt", weights_only=False))
    return SimpleNamespace(stopped=left, resumed=train(cfg, run_dir))


@pytest.fixture(scope="module")
def runs(fmnist_root, tmp_path_factory, one_thread):
    cfg = compose_cfg(*RUN, f"data.root={fmnist_root}")
    root = tmp_path_factory.mktemp("resume")
    straight = train(cfg, root / "straight")
    # A check that froze a group, the latest in its epoch (the first such): stop one step before
    # it, so that the steps before the stop outnumber those after it in that epoch.
    froze = [f for f in straight.freeze_iterations if f is not None]
    check = max(froze, key=lambda f: ((f - 1) % 16, -f))
    return SimpleNamespace(cfg=cfg, root=root, straight=straight, check=check,
                           **vars(stop_and_resume(cfg, root / "stopped", check - 1)))


def comparable(run_dir):
    return [{k: v for k, v in r.items() if not k.endswith(("_seconds", "_mb"))}  # wall clock, memory
            for r in read_metrics(run_dir / "metrics.jsonl")]


def test_autofreeze_resumed_just_before_a_check_decides_as_the_uninterrupted_run(runs):
    assert runs.stopped.iteration == runs.check - 1 and runs.stopped.checkpoint["partial_epoch"] is not None
    assert runs.stopped.checkpoint["freezer"]["previous"][-1] is not None  # norms of the last check, saved
    assert runs.resumed.status == "completed"
    assert runs.resumed.freeze_iterations == runs.straight.freeze_iterations
    assert comparable(runs.root / "straight") == comparable(runs.root / "stopped")
    a, b = (torch.load(runs.root / d / "checkpoint.pt", weights_only=False)["model"] for d in ("straight", "stopped"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seconds_trained_before_a_stop_count_in_their_epoch(runs):
    checkpoint, summary = runs.stopped.checkpoint, runs.stopped.summary
    before = checkpoint["partial_epoch"]["seconds"]  # the stopped epoch's training so far
    assert before > 0 and summary["status"] == "interrupted"
    assert summary["train_seconds"] == checkpoint["loop"]["train_seconds"] + before
    records = read_metrics(runs.root / "stopped" / "metrics.jsonl")
    epoch = (runs.check - 1) // 16  # 0-based index of the stopped epoch's record
    assert records[epoch]["epoch_seconds"] >= before
    total = 0.0
    for r in records:
        total += r["epoch_seconds"]
        assert r["train_seconds"] == total
    assert runs.resumed.train_seconds == total >= summary["train_seconds"]


def test_autofreeze_resumed_exactly_at_a_check_decides_as_the_uninterrupted_run(runs):
    at_check = stop_and_resume(runs.cfg, runs.root / "at-check", runs.check)
    assert at_check.stopped.iteration == runs.check
    assert at_check.resumed.freeze_iterations == runs.straight.freeze_iterations
