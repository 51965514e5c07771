"""Shared fixtures: real Fashion-MNIST (the system copy, unpacked once per session), one torch
thread, and the one config-compose fixture for tiny real runs. Shared functions and constants are
in helpers.py (tests import them from there, never from this file)."""
from __future__ import annotations

import pytest
from helpers import TINY, compose_cfg

from freezeout.rundir.identity import register_run_name_resolver

# Tests that compose Hydra's own node themselves need the run-name resolver, as run.py registers it.
register_run_name_resolver()


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs an NVIDIA GPU; skipped with the reason without one "
                                       "(make gpu-check runs them: pytest -m cuda)")


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
def fmnist_root(tmp_path_factory):
    """A data root holding Fashion-MNIST, unpacked from the system copy (no network needed)."""
    from freezeout.data import _provide_fashion_mnist

    root = tmp_path_factory.mktemp("data")
    _provide_fashion_mnist(root, download=False)
    return root


@pytest.fixture
def tiny_cfg(fmnist_root):
    """``tiny_cfg(*overrides)``: the config of a tiny real run (:data:`helpers.TINY`) on the
    session's Fashion-MNIST, with ``overrides`` on top."""
    def compose(*overrides: str, hydra: bool = False):
        return compose_cfg(*TINY, f"data.root={fmnist_root}", *overrides, hydra=hydra)
    return compose
