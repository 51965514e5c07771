"""Which process of a launch keeps the run's log: rank 0 keeps its log file and its info lines;
every other rank drops its log file and says warnings only. The rank is read from torchrun's
variables, as it is before the process group exists."""
from __future__ import annotations

import logging

import pytest

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
