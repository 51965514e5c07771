"""Shared fixtures: real Fashion-MNIST (the system copy, unpacked once per session), tiny run
settings, and a helper that runs ``run.py`` in a subprocess as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("FREEZEOUT_ROOT", str(REPO))  # sweeps/ as a config group for compose()

from freezeout.rundir.identity import register_run_name_resolver  # noqa: E402

register_run_name_resolver()  # composing with Hydra's own config names run directories with it, as run.py does

#: A real run small enough for a test: DenseNet-BC L=10 k=4 on 512 Fashion-MNIST images.
TINY = [
    "data=fashion_mnist", "data.subset=512", "data.val_size=500", "model=densenet", "model.depth=10",
    "model.growth_rate=4", "epochs=3", "batch_size=32", "device=cpu", "progress=false",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs an NVIDIA GPU; skipped with the reason without one "
                                       "(make gpu-check runs them: pytest -m cuda)")


#: Skips a CUDA-marked test where no GPU is visible, saying so.
needs_cuda = pytest.mark.skipif("not __import__('torch').cuda.is_available()",
                                reason="no CUDA GPU visible (run on a machine with an NVIDIA GPU: make gpu-check)")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for modules of tiny in-process models: as fast, and it cannot thrash when
    other jobs share the CPU (two OpenMP threads on a busy 2-core machine made a step ~100x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def fmnist_root(tmp_path_factory) -> Path:
    """A data root holding Fashion-MNIST, unpacked from the system copy (no network needed)."""
    from freezeout.data import _provide_fashion_mnist

    root = tmp_path_factory.mktemp("data")
    _provide_fashion_mnist(root, download=False)
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("FREEZEOUT_LAUNCH_ID", None)
    return subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)
