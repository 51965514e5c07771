"""The Lightning callback (``freezeout.integrations.lightning``) on a small LightningModule fit on
real Fashion-MNIST: FreezeOut's rates at every step, the frozen prefix bitwise unchanged from the
step it froze, a resume from Lightning's checkpoint equal to the run that never stopped, and what
the callback refuses."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning.pytorch")

from freezeout import layer_times, learning_rate  # noqa: E402
from freezeout.integrations.lightning import FreezeOutCallback  # noqa: E402

STEPS = 16  # 2 epochs of 8 batches


class Classifier(L.LightningModule):
    def __init__(self, scheduler: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(16, 10))
        self.example_input_array = torch.zeros(1, 1, 28, 28)  # the callback traces it for the layer groups
        self.scheduler = scheduler
        self.rates: dict[int, list[float]] = {}  # the optimizer's rates at each step
        self.weights: dict[int, dict[str, torch.Tensor]] = {}  # the weights each step starts from
        self.norm_training: dict[int, bool] = {}  # the stem's norm layer in train mode at each step

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        j = self.trainer.global_step
        self.rates[j] = [pg["lr"] for pg in self.trainer.optimizers[0].param_groups]
        self.weights[j] = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.norm_training[j] = self.net[1].training
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        if self.scheduler:
            return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, 5)]
        return optimizer


@pytest.fixture(scope="module")
def loader(fmnist_root):
    from torchvision import datasets, transforms

    data = datasets.FashionMNIST(str(fmnist_root), train=True, transform=transforms.ToTensor())
    x = torch.stack([data[i][0] for i in range(512)])
    y = torch.tensor([data[i][1] for i in range(512)])
    return DataLoader(TensorDataset(x, y), batch_size=64)  # the same 8 batches every epoch


def fit(module, loader, tmp_path, ckpt_path=None, **callback_kwargs):
    callback = FreezeOutCallback("cubic", t_0=0.5, **callback_kwargs)
    checkpoints = L.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_epochs=1, save_top_k=-1)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[callback, checkpoints])
    trainer.fit(module, loader, ckpt_path=ckpt_path)
    return callback


def test_rates_and_a_frozen_prefix_that_stays_bitwise_unchanged(loader, tmp_path, one_thread):
    module = Classifier()
    callback = fit(module, loader, tmp_path)
    controller = callback.controller
    assert controller.frozen_at == [2, 7, None]  # cubic, t_0 = 0.5: ceil(0.125 * 16), ceil(0.42 * 16)
    times = layer_times(3, 0.5, "cubic")
    assert sorted(module.rates) == list(range(STEPS))
    for j, rates in module.rates.items():
        frozen = [at is not None and j >= at for at in controller.frozen_at]
        expected = [0.0 if frozen[i] else learning_rate(j, t, STEPS, 0.1, True) for i, t in enumerate(times)]
        assert rates == pytest.approx(expected, abs=1e-12), j
    final = module.net.state_dict()
    names = {0: ("0.", "1."), 1: ("4.",)}  # the stem (conv, norm) and the block, by parameter name
    for i, prefixes in names.items():
        start = module.weights[controller.frozen_at[i]]  # the weights it froze with
        keys = [k for k in final if k.startswith(prefixes)]
        assert keys and all(torch.equal(start[k], final[k]) for k in keys)
        assert all(not p.requires_grad and p.grad is None for p in controller.groups[i].parameters())
    assert not torch.equal(module.weights[7]["8.weight"], final["8.weight"])  # the head trained on
    # the frozen norm stays in eval mode, across Lightning's model.train() at each epoch start
    assert [module.norm_training[j] for j in range(STEPS)] == [True] * 2 + [False] * (STEPS - 2)


def test_resume_from_a_checkpoint_ends_where_the_whole_run_does(loader, tmp_path, one_thread):
    whole = Classifier()
    fit(whole, loader, tmp_path / "whole")
    first_epoch = next((tmp_path / "whole").glob("epoch=0-*.ckpt"))
    resumed = Classifier()
    callback = fit(resumed, loader, tmp_path / "resumed", ckpt_path=str(first_epoch))
    assert callback.controller.frozen_at == [2, 7, None] and callback.controller.num_frozen == 2
    assert sorted(resumed.rates) == list(range(8, STEPS))
    assert all(torch.equal(a, b) for a, b in zip(whole.net.state_dict().values(), resumed.net.state_dict().values()))


def test_a_learning_rate_scheduler_is_refused(loader, tmp_path):
    with pytest.raises(ValueError, match="lr_scheduler"):
        fit(Classifier(scheduler=True), loader, tmp_path)
