"""One run on two SLURM tasks (``hydra/launcher=slurm_ddp nodes=1 tasks_per_node=2``, gloo on the
CPU) on the local cluster: the records of a torchrun run of the same config on 2 processes."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from slurm_helpers import SLURM, TINY_ARGS, VOLATILE, child_env, finish, launch, records, run_dirs, summary

from helpers import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_ddp_on_two_tasks_trains_as_torchrun_does(slurm_cluster, fmnist_root, tmp_path):
    args = [*TINY_ARGS, "epochs=2", f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5"]
    # torchrun beside the SLURM job: 2 processes of one thread each, as slurm_ddp's cpus_per_task=1
    ref = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            f"--master_port={free_port()}", str(REPO / "run.py"), *args,
                            f"hydra.run.dir={tmp_path / 'torchrun'}"],
                           cwd=tmp_path, env={**child_env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    sweep = tmp_path / "sweep"
    ddp = [o.replace("hydra/launcher=slurm", "hydra/launcher=slurm_ddp") for o in SLURM]
    out = finish(launch("-m", *args, *ddp, "hydra.launcher.nodes=1", "hydra.launcher.tasks_per_node=2",
                        f"hydra.sweep.dir={sweep}", cwd=tmp_path))
    ref_out = ref.communicate(timeout=600)[0]
    assert ref.returncode == 0, ref_out[-3000:]
    assert "All 1 runs completed." in out, out[-4000:]
    (run,) = run_dirs(sweep)
    a, b = summary(run), summary(tmp_path / "torchrun")
    assert a["world_size"] == b["world_size"] == 2 and a["iterations_done"] == b["iterations_done"] == 16
    assert a["load"]["slurm_job"] and not b["load"]["slurm_job"]
    # both tasks logged from their own SLURM task: rank 0 and rank 1 of one job
    logs = sorted(p.name for p in (sweep / ".submitit").glob("*_log.out"))
    assert len(logs) == 2 and {n.split("_")[1] for n in logs} == {"0", "1"}
    strip = [{k: v for k, v in r.items() if k not in VOLATILE} for r in records(run)]
    assert strip == [{k: v for k, v in r.items() if k not in VOLATILE} for r in records(tmp_path / "torchrun")]
    wa = torch.load(run / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "torchrun" / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(t, wb[k]) for k, t in wa.items())
