"""What the tests share: the repository, a tiny real run's settings, configs composed as a run
composes them, and ``run.py`` in a subprocess as a user runs it. Imported as ``helpers`` (the
tests folder is on pytest's path); fixtures live in conftest.py."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("FREEZEOUT_ROOT", str(REPO))  # sweeps/ as a config group for compose()

#: A real run small enough for a test: DenseNet-BC L=10 k=4 on 512 Fashion-MNIST images.
TINY = [
    "data=fashion_mnist", "data.subset=512", "data.val_size=500", "model=densenet", "model.depth=10",
    "model.growth_rate=4", "epochs=3", "batch_size=32", "device=cpu", "progress=false",
]

#: :data:`TINY` on CUDA with torchvision's FakeData (1x28x28, 10 classes) in place of Fashion-MNIST:
#: the CUDA tests need no data set that a fresh GPU machine lacks.
TINY_CUDA = [
    "data=torchvision", "data.name=FakeData", "+data.kwargs.size=1012", "+data.kwargs.image_size=[1,28,28]",
    "+data.kwargs.num_classes=10", "data.download=false", *TINY[1:-2], "device=cuda", "progress=false",
]

#: Skips a CUDA-marked test where no GPU is visible, saying so.
needs_cuda = pytest.mark.skipif("not __import__('torch').cuda.is_available()",
                                reason="no CUDA GPU visible (run on a machine with an NVIDIA GPU: make gpu-check)")


def compose_cfg(*overrides: str, hydra: bool = False):
    """The run config ``run.py`` composes from ``overrides`` (with Hydra's own node: ``hydra=True``)."""
    from hydra import compose, initialize_config_dir

    from freezeout.config import register_configs
    from freezeout.rundir.identity import register_run_name_resolver

    register_configs()
    register_run_name_resolver()  # Hydra's own node names run directories with it, as run.py does
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def compose_hydra(*overrides: str):
    """:func:`compose_cfg` with Hydra's own node (launcher, sweeper, run directories)."""
    return compose_cfg(*overrides, hydra=True)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("FREEZEOUT_LAUNCH_ID", None)
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


def stopped_run(cfg, run_dir: Path, at: int) -> Path:
    """Train ``cfg`` in ``run_dir`` until a SIGINT at iteration ``at`` (a clean stop, as Ctrl-C
    makes one, at a step boundary); return the checkpoint it left."""
    import signal

    from freezeout.training.signals import Interrupted
    from freezeout.training.trainer import train

    def stop_at(j: int) -> None:
        if j == at:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, run_dir, pause=stop_at)
    return Path(run_dir) / "checkpoint.pt"
