"""What a user reads in the logs: the data described in one line, a line before an unpack with
its size and destination, the head's layers named, the baseline's progress without a t_0, and
the Lightning callback's groups and freezing events through Lightning's own logging."""
from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from freezeout.models.adapters import group_model
from freezeout.models.report import format_report, grouping_rows
from freezeout.training.progress import run_label


def test_the_head_is_labelled_with_the_layers_it_holds():
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    groups = group_model(net, (1, 1, 28, 28)).layer_groups()
    rows = grouping_rows(groups, [1.0] * len(groups), [0.5, 1.0])
    assert [r.name for r in rows] == ["0", "4 (head: pool, flatten, fc)"]
    assert "4 (head: pool, flatten, fc)" in format_report(rows).splitlines()[-1]


def test_the_baseline_progress_has_no_t_0():
    assert run_label("none", 0.5) == "none"
    assert run_label("cubic", 0.5) == "cubic t_0=0.5"
    assert run_label("autofreeze", 0.8) == "autofreeze"


def test_an_unpack_says_its_size_and_destination_first(tmp_path, caplog):
    from freezeout.data.builtin import SYSTEM_FASHION_MNIST, provide_fashion_mnist

    if not SYSTEM_FASHION_MNIST.exists():
        pytest.skip("no system copy of Fashion-MNIST")
    with caplog.at_level(logging.INFO, logger="freezeout"):
        provide_fashion_mnist(tmp_path, download=False)
    raw = (tmp_path / "FashionMNIST" / "raw").resolve()
    (line,) = [r.getMessage() for r in caplog.records if "unpacking" in r.getMessage()]
    assert "55 MB unpacked" in line and str(raw) in line
    total = sum(f.stat().st_size for f in raw.iterdir())
    assert 50e6 < total < 60e6  # the size said is the size written
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="freezeout"):
        provide_fashion_mnist(tmp_path, download=False)  # there: nothing to say
    assert not caplog.records


def test_a_run_describes_its_data_in_one_line(tiny_cfg, tmp_path, caplog, one_thread):
    from freezeout.training.trainer import train

    with caplog.at_level(logging.INFO, logger="freezeout"):
        train(tiny_cfg("epochs=1", "strategy=none"), tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    (data,) = [line for line in lines if line.startswith("data: ")]
    assert data.startswith("data: fashion_mnist: 512 training, 500 validation images, 10 classes, 1x28x28, "
                           "in memory on cpu (0.4 MB")


def test_the_lightning_callback_logs_its_groups_and_each_freezing_event(fmnist_root, tmp_path, caplog, one_thread):
    L = pytest.importorskip("lightning.pytorch")
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from freezeout.integrations.lightning import FreezeOutCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
            self.example_input_array = torch.zeros(1, 1, 28, 28)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))), batch_size=8)
    metrics = L.loggers.CSVLogger(tmp_path)
    callback = FreezeOutCallback("linear", t_0=0.5)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=metrics, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, log_every_n_steps=1)
    trainer.callbacks.append(callback)
    with caplog.at_level(logging.INFO):
        trainer.fit(Module(), loader)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "FreezeOut linear" in text and "3 layer groups over 16 steps" in text
    freeze_at = callback.controller.freeze_at
    assert f"freezes at step {freeze_at[0]}" in text and "never (the head)" in text
    events = [line for line in text.splitlines() if line.startswith("FreezeOut: froze layer group")]
    assert [line.split()[4] for line in events] == ["0", "1"]
    assert f"at step {freeze_at[0]} of 16" in events[0]
    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    frozen = [float(r["freezeout/frozen_groups"]) for r in rows if r.get("freezeout/frozen_groups")]
    assert frozen and frozen[-1] == 2.0 and frozen[0] == 0.0
