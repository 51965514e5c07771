"""Which process of a launch keeps the run's log: rank 0 keeps its log file and its info lines;
every other rank drops its log file and says warnings only (the rank read from torchrun's
variables, before the process group exists). One process asked for runs in this process, starting
none. The bytes all-reduced per step are counted epoch by epoch, each epoch's mean its own, and a
checkpoint brings them back."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.distributed as dist
from torch import nn

from freezeout.distributed import process_group as distributed
from freezeout.distributed import ranks as runranks


@pytest.mark.parametrize("rank, keeps", [("0", True), ("1", False), ("3", False)])
def test_rank_0_alone_keeps_its_log_file_and_info_lines(monkeypatch, tmp_path, rank, keeps):
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", rank)
    root, ours = logging.getLogger(), logging.getLogger("freezeout")
    level = ours.level
    handler = logging.FileHandler(tmp_path / "run.log")
    root.addHandler(handler)
    try:
        ours.setLevel(logging.INFO)
        runranks.quiet_other_ranks()
        assert (handler in root.handlers) == keeps
        assert ours.getEffectiveLevel() == (logging.INFO if keeps else logging.WARNING)
    finally:
        root.removeHandler(handler)
        handler.close()
        ours.setLevel(level)


def _must_not_run() -> None:
    raise AssertionError("one process was asked for: nothing may be started")


def test_one_process_asked_for_runs_here_and_starts_none():
    assert distributed.spawned(1, _must_not_run) is False


@pytest.fixture
def one_process_group(tmp_path):
    """A real gloo process group of one process (DDP needs one; a single process is enough here)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_the_bytes_all_reduced_are_counted_epoch_by_epoch(one_process_group, one_thread):
    from freezeout.distributed.gradsync import GradSync
    from freezeout.freezing.controller import freeze_module
    from freezeout.models.adapters import group_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = group_model(net, (1, 1, 6, 6))
    sync, x = GradSync(model), torch.randn(2, 1, 6, 6)

    def steps(n: int) -> None:
        for _ in range(n):
            sync.forward(x).sum().backward()
            sync.step_done()

    sync.wrap(0)
    steps(3)
    whole = sync.bytes_per_step[0]
    assert sync.take_epoch_bytes_per_step() == whole > 0
    freeze_module(model.layer_groups()[0])
    sync.wrap(1)
    steps(2)
    assert 0 < sync.bytes_per_step[1] < whole
    resumed = GradSync(model)  # a checkpoint written mid-epoch: every stage's count, and the epoch so far
    resumed.load_state_dict({**sync.state_dict(), "bytes_per_step": {"0": whole, "1": sync.bytes_per_step[1]}})
    assert resumed.bytes_per_step == sync.bytes_per_step
    assert resumed.take_epoch_bytes_per_step() == sync.bytes_per_step[1]
    assert sync.take_epoch_bytes_per_step() == sync.bytes_per_step[1]  # this epoch's steps alone
    assert sync.take_epoch_bytes_per_step() is None  # no step since
