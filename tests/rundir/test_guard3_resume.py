"""A run directory's checkpoint is checked against the config on its own: a directory that holds
a checkpoint but no summary (or a summary without a config) is resumed only by the same config."""
from __future__ import annotations

import pytest
from helpers import TINY, compose_cfg
from omegaconf import OmegaConf

from freezeout.errors import ConfigError
from freezeout.rundir.checkpoint import CHECKPOINT_FILE, save_checkpoint
from freezeout.rundir.resume import prior_run


def test_a_checkpoint_without_a_summary_refuses_a_different_config(tmp_path):
    cfg = compose_cfg(*TINY, "epochs=2")
    # What the training loop writes into every checkpoint: the run's resolved config.
    save_checkpoint(tmp_path / CHECKPOINT_FILE, {"config": OmegaConf.to_container(cfg, resolve=True), "epoch": 1})
    assert not (tmp_path / "summary.json").exists()

    previous, checkpoint = prior_run(tmp_path, cfg)  # the same config: resumed from it
    assert previous is None and checkpoint["epoch"] == 1

    with pytest.raises(ConfigError, match=r"different config \(optimizer\.lr: 0\.1 there, 0\.05 now"):
        prior_run(tmp_path, compose_cfg(*TINY, "epochs=2", "optimizer.lr=0.05"))
    with pytest.raises(ConfigError, match=r"different config \(epochs: 2 there, 3 now"):
        prior_run(tmp_path, compose_cfg(*TINY, "epochs=3"))
