"""What the cluster tests share: the tiny sweep, launching ``run.py -m`` on the local SLURM
cluster (in the foreground or in the background), finding a run's SLURM job from its log, and
requeueing a job so that it starts again at once."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import REPO

#: A tiny real run: DenseNet-BC L=10 k=4 on 256 Fashion-MNIST images, 8 iterations an epoch.
TINY_ARGS = [
    "data=fashion_mnist", "data.subset=256", "data.val_size=200", "model=densenet", "model.depth=10",
    "model.growth_rate=4", "batch_size=32", "device=cpu", "progress=false",
]
#: The SLURM launcher on this machine's CPU: one core and 1 GB a job (the node has 2 cores).
SLURM = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=1", "hydra.launcher.timeout_min=10"]
#: Records that depend on the clock, not on the computation.
VOLATILE = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}
TIMEOUT = 600  # seconds for a launch; a tiny sweep takes well under a minute on an idle machine


def child_env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    return env


def launch(*args: str, cwd: Path, threads: int | None = None) -> subprocess.Popen:
    """``python run.py ARGS`` in the background, in a session of its own (stopped as a group);
    ``threads``: torch's threads in it (OMP_NUM_THREADS), where processes share the 2 cores."""
    env = {**child_env(), **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    return subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> str:
    """Wait for a launch; its output. Stops it (its whole session) if it overruns."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise
    return out


def stop(proc: subprocess.Popen) -> None:
    """Kill a background launch and everything it started in its session, by its pid."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def wait_until(condition, what: str, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT):
    """Poll ``condition()`` every 50 ms until it returns something true; that value."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the launch ended before {what}: {proc.communicate()[0][-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def epochs_done(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def run_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.glob("run_*") if p.is_dir())


def the_run(sweep: Path, *parts: str) -> Path | None:
    """The one run directory of ``sweep`` whose name holds every one of ``parts``, or None."""
    found = [d for d in run_dirs(sweep) if all(p in d.name.split(",") for p in parts)]
    return found[0] if len(found) == 1 else None


def job_of(sweep: Path, run_dir: Path) -> str | None:
    """The SLURM job (``ARRAYID_INDEX``) whose log names ``run_dir``, from the job logs submitit
    writes into ``<sweep dir>/.submitit/<array job id>_<index>_<task>_log.{out,err}``."""
    for log in sorted((sweep / ".submitit").glob("*_log.err")):
        try:
            text = log.read_text()
        except OSError:
            continue
        if f"run directory: {run_dir}" in text:
            return "_".join(log.name.split("_")[:-2])
    return None


def job_state(job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%t"], capture_output=True, text=True)
    return out.stdout.strip()


def requeue_now(job: str, how: str = "requeue") -> None:
    """Requeue JOB, then set its start time to now: SLURM holds a requeued job about two minutes
    (its BeginTime) before it may start again. ``how``: ``requeue`` (``scontrol requeue``, as a
    preemption) or ``USR2`` (``scancel --signal=USR2``: the signal SLURM sends ``signal_delay_s``
    before ``timeout_min``, on which submitit requeues the job itself)."""
    if how == "requeue":
        subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True, text=True)
    else:
        subprocess.run(["scancel", f"--signal={how}", job], check=True, capture_output=True, text=True)
    wait_until(lambda: job_state(job) == "PD", f"job {job} back in the queue", timeout=60)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, capture_output=True,
                   text=True)
