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
from helpers import REPO, TINY, compose_cfg
from hydra import compose, initialize_config_dir

from freezeout.config import register_configs
from freezeout.distributed import process_group as distributed
from freezeout.distributed import ranks as runranks
from freezeout.errors import ConfigError
from freezeout.rundir.records import RunSummary, read_metrics

register_configs()
#: Cubic with t_0 = 0.5: groups freeze from iteration 6 on, 6 of 7 frozen by the end (48 steps).
CUBIC = [*TINY, "strategy=cubic", "t_0=0.5"]
VOLATILE = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}




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
    from freezeout.models.factory import build_run_model

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


def test_a_slurm_task_finds_its_rendezvous_in_slurms_environment(monkeypatch):
    """Through submitit's own JobEnvironment, as in a slurm_ddp job: task 5 of 8 on 2 nodes."""
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    for key, value in {"SLURM_JOB_ID": "777123", "SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
                       "SLURM_JOB_NODELIST": "gpu-a[07-08]", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1"}.items():
        monkeypatch.setenv(key, value)
    assert distributed.launch_env() == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu-a07",
                                         "MASTER_PORT": str(20000 + 777123 % 20000)}
    monkeypatch.setenv("SLURM_NTASKS", "1")  # a one-task job (hydra/launcher=slurm) trains alone
    assert distributed.launch_env() is None


def test_slurm_ddp_submits_one_job_of_nodes_times_tasks_processes(tmp_path, monkeypatch):
    """conf/hydra/launcher/slurm_ddp.yaml through the plugin's own launch(), up to the sbatch call."""
    from hydra.utils import instantiate
    from submitit.core import utils as submitit_utils
    from submitit.slurm.slurm import SlurmExecutor

    from hydra_plugins.freezeout_launch import placement

    class Submitted(Exception):
        pass

    def no_sbatch(self, *args, **kwargs):
        raise Submitted(self.command)

    placement.register_resolvers()
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun" is there
    monkeypatch.setattr(submitit_utils.CommandFunction, "__call__", no_sbatch)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True, overrides=[
            "hydra/launcher=slurm_ddp", "hydra.launcher.partition=gpu", "hydra.launcher.nodes=3",
            "hydra.launcher.tasks_per_node=2", f"hydra.sweep.dir={tmp_path}"])
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=print, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["strategy=cubic"], ["strategy=none"]], initial_job_idx=0)
    sbatch = next((tmp_path / ".submitit").glob(".submission_file_*.sh")).read_text()
    for line in ("--nodes=3", "--ntasks-per-node=2", "--gpus-per-node=2", "--cpus-per-task=8", "--partition=gpu",
                 "--array=0-1%2"):
        assert f"#SBATCH {line}\n" in sbatch, f"{line} not in\n{sbatch}"
    assert "export SLURM_KILL_BAD_EXIT=1\n" in sbatch and "srun " in sbatch


def test_grad_sync_all_reduces_exactly_the_trainable_groups(tmp_path, fmnist_root, one_thread):
    """In a real gloo process group (of one process): DDP rebuilt per stage registers only the
    unfrozen groups, and the hook counts exactly their gradient bytes."""
    import torch.distributed as dist

    from freezeout.distributed.gradsync import GradSync, _buffers
    from freezeout.freezing.optim import optimizer_factory
    from freezeout.models.factory import build_run_model
    from freezeout.speedup.timemodel import held_controller
    from freezeout.training.step import TrainStep, run_iterations

    cfg = compose_cfg(*CUBIC, f"data.root={fmnist_root}")
    _, group_bytes = group_keys(fmnist_root)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = build_run_model(cfg, torch.device("cpu"))
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        for k in (0, 3, 6):
            controller = held_controller(model.layer_groups(), optimizer_factory(cfg.optimizer), k)
            step = TrainStep(model, controller.optimizer)
            step.sync = GradSync(model)  # what TrainStep builds with several processes
            run_iterations(step, controller, iter([(x, y)] * 2), 0, 2, log_every=1)
            assert step.sync.bytes_per_step == {k: sum(group_bytes[k:])}
            ddp = step.sync.ddp
            frozen = {id(t) for g in model.layer_groups()[:k] for t in [*g.parameters(), *_buffers(g)]}
            names = {f"model.{n}" for n, t in [*model.named_parameters(), *model.named_buffers()] if id(t) in frozen}
            assert set(ddp.parameters_to_ignore) == names  # out of the all-reduce, broadcasts, init sync
            assert {id(b) for b in ddp.modules_buffers} == {id(b) for g in model.layer_groups()[k:] for b in _buffers(g)}
    finally:
        dist.destroy_process_group()


def test_settings_a_distributed_run_cannot_take_are_refused(fmnist_root, monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    cpu = torch.device("cpu")
    cases = [("batch_size=50", "batch_size=50 is not divisible by the 4 processes"),
             ("sync_bn=true", "sync_bn=true needs CUDA devices")]
    for override, message in cases:
        cfg = compose_cfg(*TINY, "batch_size=32", f"data.root={fmnist_root}", override)
        with pytest.raises(ConfigError, match=message) as e:
            runranks.check_config(cfg, cpu)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"e\.g\. batch_size=52$"):  # the nearest multiple
        runranks.check_config(compose_cfg(*TINY, "batch_size=50"), cpu)


# --- end to end through torchrun ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ddp_run(fmnist_root, tmp_path_factory):
    """The CUBIC run on 2 processes, launched as a user would (no hydra.run.dir: the default
    outputs/<launch id>), every process saving its weights at each epoch end (test hook)."""
    cwd, debug = tmp_path_factory.mktemp("ddp"), tmp_path_factory.mktemp("ddp-states")
    proc = torchrun(*CUBIC, f"data.root={fmnist_root}", cwd=cwd, env={runranks.DEBUG_STATES_ENV: str(debug)})
    check_ok(proc)
    return SimpleNamespace(cwd=cwd, debug=debug, proc=proc)


@pytest.mark.slow
def test_two_processes_write_one_run_and_end_with_the_same_weights(ddp_run):
    runs = [p.parent for p in (ddp_run.cwd / "outputs").glob("*/*/summary.json")]
    assert len(runs) == 1 and list((ddp_run.cwd / "outputs").glob("*/*")) == runs  # one directory for both
    run = runs[0]
    assert sorted(p.name for p in run.iterdir()) == [".hydra", ".lock", "checkpoint.pt", "metrics.jsonl", "run.log",
                                                     "summary.json"]  # .lock: rank 0 alone held the run's lock
    assert sorted(p.name for p in (run / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    assert (run / "run.log").read_text().count("epoch 1/3") == 1  # rank 0 alone logs
    summary = RunSummary.read(run / "summary.json")
    assert summary.status == "completed" and summary.world_size == 2 and summary.batch_size == 32
    assert summary.iterations == summary.iterations_done == 48  # 512 images / global batch 32, 3 epochs
    assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3]
    final = [states(ddp_run.debug, r, 3) for r in (0, 1)]
    assert same(final[0], final[1]) and same(final[0], model_of(run))  # parameters and buffers


@pytest.mark.slow
def test_rank_0_evaluates_as_one_process_does(ddp_run, fmnist_root, one_thread):
    from freezeout.data import load_data
    from freezeout.models.factory import build_run_model
    from freezeout.training.step import evaluate

    run = next((ddp_run.cwd / "outputs").glob("*/*/summary.json")).parent
    model = build_run_model(compose_cfg(*CUBIC, f"data.root={fmnist_root}"), torch.device("cpu"))
    model.load_state_dict(model_of(run))
    data = load_data(compose_cfg(*CUBIC, f"data.root={fmnist_root}").data, torch.device("cpu"))
    loss, err = evaluate(model, data.val_x, data.val_y)
    last = read_metrics(run / "metrics.jsonl")[-1]
    assert err == last["val_err"] and loss == pytest.approx(last["val_loss"], rel=1e-6)


@pytest.mark.slow
def test_frozen_groups_leave_the_all_reduce_and_stay_bitwise_fixed_on_every_rank(ddp_run, fmnist_root):
    run = next((ddp_run.cwd / "outputs").glob("*/*/summary.json")).parent
    summary, records = RunSummary.read(run / "summary.json"), read_metrics(run / "metrics.jsonl")
    keys, group_bytes = group_keys(fmnist_root)
    # Every stage the run went through all-reduced exactly its unfrozen parameters' bytes.
    stages = {int(k): v for k, v in summary.allreduce_bytes_per_step.items()}
    assert set(stages) == set(range(7))  # 0 to 6 groups frozen: every stage but the last
    assert stages == {k: sum(group_bytes[k:]) for k in stages}
    assert stages[6] < stages[3] < stages[0] == sum(group_bytes)
    per_epoch = [r["allreduce_bytes_per_step"] for r in records]
    assert per_epoch[0] > per_epoch[1] > per_epoch[2] >= stages[6]
    # A group frozen by the end of epoch e keeps its parameters and buffers bitwise from then on,
    # on both processes.
    for e, r in enumerate(records, start=1):
        frozen = [k for g in keys[:r["frozen_groups"]] for k in g]
        assert frozen
        for later in range(e, 4):
            for rank in (0, 1):
                assert same(states(ddp_run.debug, 0, e), states(ddp_run.debug, rank, later), frozen)


def wait_for(path: Path, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 600
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, f"the run ended before writing {path.name}"
        time.sleep(0.02)


def rank_pids(torchrun_pid: int) -> dict[int, int]:
    """The training processes torchrun started, by rank (read from their environment)."""
    pids = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == torchrun_pid:
                env = dict(v.split("=", 1) for v in (p / "environ").read_text().split("\0") if "=" in v)
                pids[int(env["RANK"])] = int(p.name)
        except (OSError, IndexError, ValueError, KeyError):
            pass
    return pids


def kill_after_first_checkpoint(cmd: list[str], run_dir: Path, cwd: Path) -> None:
    """Start ``cmd`` (torchrun), and SIGKILL both training processes and torchrun itself as soon
    as the first checkpoint is on disk."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(run_dir / "checkpoint.pt", proc)
        ranks = rank_pids(proc.pid)
        assert sorted(ranks) == [0, 1]
        for pid in ranks.values():
            os.kill(pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_both_ranks_killed_after_a_checkpoint_resume_to_the_same_weights(ddp_run, fmnist_root, tmp_path, one_thread):
    run_dir = tmp_path / "killed"
    args = [*CUBIC, f"data.root={fmnist_root}", f"hydra.run.dir={run_dir}"]
    kill_after_first_checkpoint(torchrun_cmd(*args), run_dir, tmp_path)
    done = [r["epoch"] for r in read_metrics(run_dir / "metrics.jsonl")]
    assert 1 <= len(done) < 3 and RunSummary.read(run_dir / "summary.json").status == "running"

    # Not on another number of processes: one line, before anything is written.
    from freezeout.training.trainer import train

    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.name != ".lock"}
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(*args[:-1]), run_dir)
    assert str(e.value) == (f"{run_dir} holds a run trained on 2 process(es); resume it on 2 (this launch has "
                            "1): its data shards, per-process RNG states and BatchNorm statistics depend on the "
                            "number of processes")
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.name != ".lock"} == before

    check_ok(torchrun(*args, cwd=tmp_path))  # the same command resumes
    reference = next((ddp_run.cwd / "outputs").glob("*/*/summary.json")).parent
    assert same(model_of(reference), model_of(run_dir))
    strip = [[{k: v for k, v in r.items() if k not in VOLATILE} for r in read_metrics(d / "metrics.jsonl")]
             for d in (reference, run_dir)]
    assert strip[0] == strip[1]  # each epoch once, the same losses, errors and bytes
    resumed, straight = (RunSummary.read(d / "summary.json") for d in (run_dir, reference))
    assert resumed.status == "completed" and resumed.allreduce_bytes_per_step == straight.allreduce_bytes_per_step


@pytest.mark.slow
def test_without_batchnorm_two_processes_match_one(fmnist_root, tmp_path, one_thread):
    """DenseNet-BC with GroupNorm (no batch statistics), augmentation on: the per-epoch losses of 2
    processes with batch 16 each match one process with batch 32, to float rounding (relative 1e-5:
    the same fp32 sums in another order; seen: ~1e-7). Without scale_lr: with it, cubic t_0=0.5
    starts the first group at 8x the rate, where this tiny net's training is chaotic enough to grow
    1e-7 rounding differences to 1e-4 within the 48 steps."""
    import groupnorm_model

    from freezeout.training.trainer import train

    args = [*CUBIC, f"data.root={fmnist_root}", f"model.name={groupnorm_model.NAME}", "data.augment=true",
            "scale_lr=false"]
    site = groupnorm_model.sitecustomize_dir(tmp_path / "site")
    check_ok(torchrun(*args, f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path,
                      env={"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}))
    one = train(compose_cfg(*args), tmp_path / "one")
    two = RunSummary.read(tmp_path / "two" / "summary.json")
    assert (one.world_size, two.world_size, one.iterations_done, two.iterations_done) == (1, 2, 48, 48)
    a, b = (read_metrics(tmp_path / d / "metrics.jsonl") for d in ("one", "two"))
    for ra, rb in zip(a, b, strict=True):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], rel=1e-5)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], rel=1e-5)
        assert abs(rb["val_err"] - ra["val_err"]) <= 0.002  # at most one of 500 images on a rounding edge
        assert rb["frozen_groups"] == ra["frozen_groups"]


@pytest.mark.slow
def test_a_batch_size_the_processes_cannot_share_is_refused_in_one_line(fmnist_root, tmp_path):
    proc = torchrun(*TINY, f"data.root={fmnist_root}", "batch_size=33", f"hydra.run.dir={tmp_path / 'run'}",
                    cwd=tmp_path)
    assert proc.returncode != 0
    ours = [line.split("] ", 1)[-1] for line in proc.stderr.splitlines() if "error:" in line]
    assert ours == ["error: batch_size=33 is not divisible by the 2 processes of this run (each takes batch_size "
                    "/ 2 images of every step); use a multiple of 2, e.g. batch_size=34"]  # once: from rank 0
    assert not (tmp_path / "run" / "summary.json").exists() and not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_the_benchmark_runs_every_section_on_two_processes(fmnist_root, tmp_path):
    """bench.world_size=2 on a tiny run: its figures that are counts, never its timings."""
    from freezeout import bench

    out, threads = tmp_path / "bench.json", torch.get_num_threads()
    try:
        r = bench.main(["model.depth=10", "model.growth_rate=4", "data.subset=352", "epochs=1", "batch_size=16",
                        "device=cpu", f"data.root={fmnist_root}", "bench.repeats=1", "bench.t0=[0.5]", "bench.chunks=1",
                        "bench.chunk_steps=1", "bench.world_size=2", f"bench.out={out}"])
    finally:
        torch.set_num_threads(threads)
    _, group_bytes = group_keys(fmnist_root)
    assert r["settings"]["world_size"] == 2 and out.exists()
    baseline, cubic, cached = r["realisation"]["runs"]  # the frozen-prefix cache on two processes as well
    assert baseline["frozen_groups"] == 0 and cubic["frozen_groups"] > 0 and cubic["predicted"]["time"] is not None
    assert cached["frozen_groups"] == cubic["frozen_groups"] and r["realisation"]["cache"]["speed_ratio"] > 0
    assert r["overhead"]["allreduce_bytes_per_step"] == sum(group_bytes)
    assert r["frozen_prefix"]["allreduce_bytes_per_step"] == group_bytes[-1]
    assert all(r[k]["a_step_seconds"] > 0 for k in ("overhead", "frozen_prefix"))


@pytest.mark.slow
def test_a_stop_request_to_rank_0_stops_both_at_one_step_and_resumes_exactly(ddp_run, fmnist_root, tmp_path):
    """SIGTERM to rank 0 alone (a scheduler's signal that reaches one process first): both processes
    stop at the same log point (log_every=2) with one mid-epoch checkpoint holding each process's
    running loss, and the same command resumes to the uninterrupted run's weights and records."""
    run_dir = tmp_path / "stopped"
    args = [*CUBIC, f"data.root={fmnist_root}", f"hydra.run.dir={run_dir}", "log_every=2"]
    proc = subprocess.Popen(torchrun_cmd(*args), cwd=tmp_path, env=child_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(run_dir / "summary.json", proc)  # rank 0 writes it just before the first step
        os.kill(rank_pids(proc.pid)[0], signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode != 0 and RunSummary.read(run_dir / "summary.json").status == "interrupted"
    assert sum("interrupted by SIGTERM" in line for line in err.splitlines()) == 1  # said once, by rank 0
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    assert checkpoint["partial_epoch"] is not None and checkpoint["loop"]["iteration"] % 2 == 0
    assert len(checkpoint["ranks"]) == 2 and checkpoint["world_size"] == 2

    check_ok(torchrun(*args, cwd=tmp_path))
    reference = next((ddp_run.cwd / "outputs").glob("*/*/summary.json")).parent
    assert same(model_of(reference), model_of(run_dir))
    strip = [[{k: v for k, v in r.items() if k not in VOLATILE} for r in read_metrics(d / "metrics.jsonl")]
             for d in (reference, run_dir)]
    assert strip[0] == strip[1]  # the stopped epoch's loss too: every process's running sum was kept
