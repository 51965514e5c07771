"""One run on two processes (gloo, CPU): torchrun end to end through run.py, as a user launches it,
and the pieces in process: shards, the rendezvous from submitit, the DDP wrapper's byte count, the
refusals. Tiny DenseNet-BC (L=10 k=4, 7 groups) on 512 Fashion-MNIST images, batch 32, 3 epochs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import REPO, TINY
from freezeout import distributed
from freezeout.config import register_configs
from freezeout.metrics import RunSummary, read_metrics

register_configs()
#: Cubic with t_0 = 0.5: groups freeze from iteration 6 on, 6 of 7 frozen by the end (48 steps).
CUBIC = [*TINY, "strategy=cubic", "t_0=0.5"]
VOLATILE = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb"}


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            str(REPO / "run.py"), *args]


def child_env(**extra: str) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    return env


def torchrun(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=child_env(**(env or {})))


def check_ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def states(debug: Path, rank: int, epoch: int) -> dict:
    return torch.load(debug / f"rank{rank}-epoch{epoch}.pt", weights_only=True)


def model_of(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


def same(a: dict, b: dict, keys=None) -> bool:
    return all(torch.equal(a[k], b[k]) for k in (keys if keys is not None else a))


def group_keys(fmnist_root) -> tuple[list[list[str]], list[int]]:
    """The state_dict keys (parameters and buffers) and the parameter bytes of each layer group of
    the CUBIC model."""
    from freezeout.trainer import build_run_model

    model = build_run_model(compose_cfg(*CUBIC, f"data.root={fmnist_root}"), torch.device("cpu"))
    names = {id(t): n for n, t in [*model.named_parameters(), *model.named_buffers()]}
    return [[names[id(t)] for m in g.modules() for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]]
            for g in model.layer_groups()], [sum(p.numel() * p.element_size() for p in g.parameters())
                                             for g in model.layer_groups()]


# --- in process -------------------------------------------------------------------------------

def test_the_rendezvous_of_a_submitit_job_is_the_same_on_every_task():
    def task(rank, local):
        return SimpleNamespace(global_rank=rank, local_rank=local, num_tasks=8, raw_job_id="4242",
                               hostnames=["gpu-a01", "gpu-a02"])

    envs = [distributed.submitit_rendezvous(task(r, r % 4)) for r in range(8)]
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"], e["WORLD_SIZE"]) for e in envs} == {("gpu-a01", "24242", "8")}
    assert [e["RANK"] for e in envs] == [str(r) for r in range(8)]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "2", "3"] * 2
    other = distributed.submitit_rendezvous(SimpleNamespace(**{**vars(task(0, 0)), "raw_job_id": "4243"}))
    assert other["MASTER_PORT"] != envs[0]["MASTER_PORT"]  # another job on the same node


def test_grad_sync_all_reduces_exactly_the_trainable_groups(tmp_path, fmnist_root, one_thread):
    """In a real gloo process group (of one process): DDP rebuilt per stage registers only the
    unfrozen groups, and the hook counts exactly their gradient bytes."""
    import torch.distributed as dist

    from freezeout.ddp import GradSync, _buffers
    from freezeout.engine import TrainStep, run_iterations
    from freezeout.optim import optimizer_factory
    from freezeout.predict import held_controller
    from freezeout.trainer import build_run_model

    cfg = compose_cfg(*CUBIC, f"data.root={fmnist_root}")
    _, group_bytes = group_keys(fmnist_root)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = build_run_model(cfg, torch.device("cpu"))
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        for k in (0, 3, 6):
            controller = held_controller(model.layer_groups(), optimizer_factory(cfg.optimizer), k)
            step = TrainStep(model, controller.optimizer)
            step.sync = GradSync(model, torch.device("cpu"))  # what TrainStep builds with several processes
            run_iterations(step, controller, iter([(x, y)] * 2), 0, 2, log_every=1)
            assert step.sync.bytes_per_step == {k: sum(group_bytes[k:])}
            ddp = step.sync.ddp
            frozen = {id(t) for g in model.layer_groups()[:k] for t in [*g.parameters(), *_buffers(g)]}
            names = {f"model.{n}" for n, t in [*model.named_parameters(), *model.named_buffers()] if id(t) in frozen}
            assert set(ddp.parameters_to_ignore) == names  # out of the all-reduce, broadcasts, init sync
            assert {id(b) for b in ddp.modules_buffers} == {id(b) for g in model.layer_groups()[k:] for b in _buffers(g)}
    finally:
        dist.destroy_process_group()
