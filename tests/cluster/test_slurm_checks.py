"""Bad settings of a SLURM launch end in one ``error:`` line naming them, exit 2, before any job
is submitted (hydra_plugins/freezeout_launch/preflight.py): no SLURM client on PATH, a partition
the cluster does not have, a batch the processes of a slurm_ddp job cannot share."""
from __future__ import annotations

import subprocess

import pytest
from slurm_helpers import SLURM, TINY_ARGS, finish, launch

from helpers import run_cli


def one_error(out: str) -> str:
    errors = [x for x in out.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, out[-3000:]
    return errors[0]


def args(root, sweep, *extra: str) -> list[str]:
    return ["-m", *TINY_ARGS, "epochs=1", f"data.root={root}", *SLURM, "strategy=cubic,none",
            f"hydra.sweep.dir={sweep}", *extra]


def test_no_slurm_on_path(fmnist_root, tmp_path):
    proc = run_cli(*args(fmnist_root, tmp_path / "sweep"), env={"PATH": str(tmp_path / "empty")}, timeout=300)
    assert proc.returncode == 2
    assert "error: hydra/launcher=slurm: sbatch is not on PATH" in one_error(proc.stderr)
    assert not (tmp_path / "sweep").exists()


def test_a_batch_the_slurm_ddp_processes_cannot_share(fmnist_root, tmp_path):
    ddp = [o.replace("hydra/launcher=slurm", "hydra/launcher=slurm_ddp") for o in args(fmnist_root, tmp_path / "s")]
    ddp = [o for o in ddp if not o.startswith("batch_size=")]
    proc = run_cli(*ddp, "hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=2", "batch_size=32,33", timeout=300)
    assert proc.returncode == 2
    assert one_error(proc.stderr) == (
        "error: batch_size=33 is not divisible by the 2 processes of each job (hydra.launcher.nodes=1 x "
        "tasks_per_node=2; each takes batch_size / 2 images of every step); use a multiple of 2, e.g. batch_size=34")
    assert not (tmp_path / "s").exists()


@pytest.mark.cluster
def test_a_partition_the_cluster_does_not_have(slurm_cluster, fmnist_root, tmp_path):
    before = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    proc = launch(*args(fmnist_root, tmp_path / "sweep", "hydra.launcher.partition=nope"), cwd=tmp_path)
    out = finish(proc, timeout=300)
    assert proc.returncode == 2
    assert one_error(out) == "error: hydra.launcher.partition=nope: no such partition on this cluster; it has debug"
    after = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i"], capture_output=True, text=True).stdout
    assert after == before and not (tmp_path / "sweep").exists()  # nothing submitted, nothing written
