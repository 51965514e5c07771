"""FreezeOut in a plain PyTorch training loop, with :class:`freezeout.FreezeController`:

    python examples/plain_pytorch.py [DATA_ROOT]     (Fashion-MNIST there, downloaded if missing)

The controller finds the net's layer groups (stem, block, head) by tracing one input, builds the
optimizer with one parameter group per layer group, and after every optimizer step sets each
group's rate and freezes the groups whose time has come (cubic, t_0 = 0.5: the stem at 12.5% of
training, the block at 42%; the head trains to the end).
"""
from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from freezeout import FreezeController


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10))


def train(loader: DataLoader, epochs: int = 2, after_step=None) -> tuple[nn.Module, FreezeController]:
    net = make_net()
    controller = FreezeController(
        net, lambda groups: torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        total_steps=epochs * len(loader), rule="cubic", t_0=0.5, input_shape=(1, 1, 28, 28))
    for _ in range(epochs):
        net.train()  # frozen groups stay in eval mode (their norm statistics fixed)
        for x, y in loader:
            controller.optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            controller.optimizer.step()
            controller.step()  # the rates of the next step; freezes what is due
            if after_step is not None:
                after_step(net, controller)
    return net, controller


def fashion_mnist(root: str, train: bool, n: int) -> DataLoader:
    data = datasets.FashionMNIST(root, train=train, download=True, transform=transforms.ToTensor())
    return DataLoader(Subset(data, range(n)), batch_size=64, shuffle=train)


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "data"
    net, controller = train(fashion_mnist(root, True, 4096))
    net.eval()
    with torch.no_grad():
        test = fashion_mnist(root, False, 1000)
        err = sum((net(x).argmax(1) != y).sum().item() for x, y in test) / len(test.dataset)
    print(f"{controller}: test error {100 * err:.1f}%, predicted speedup "
          f"{100 * controller.predicted_speedup():.1f}% (FLOPs), groups froze at steps {controller.frozen_at}")
