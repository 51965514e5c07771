"""Sweeps on a real SLURM cluster (tests/cluster/slurm.sh, this machine's one node): a job array
through ``hydra/launcher=slurm`` with its analysis, a job requeued mid-run that resumes to an
uninterrupted run's records and weights, and a relaunch after ``scancel`` of the whole array that
trains only what is missing."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from slurm_helpers import (
    SLURM,
    TINY_ARGS,
    VOLATILE,
    child_env,
    epochs_done,
    finish,
    job_of,
    launch,
    records,
    requeue_now,
    run_dirs,
    stop,
    summary,
    the_run,
    wait_until,
)

from helpers import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def same_records(a: list[dict], b: list[dict]) -> None:
    assert [{k: v for k, v in r.items() if k not in VOLATILE} for r in a] == \
           [{k: v for k, v in r.items() if k not in VOLATILE} for r in b]


def weights(run_dir) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


def test_a_job_array_sweep_with_a_requeued_job(slurm_cluster, fmnist_root, tmp_path):
    """4 runs (cubic and its baseline x 2 seeds) as one job array. After its first epoch the
    cubic seed-0 job is requeued (``scontrol requeue``, as a preemption), and the cubic seed-1 job
    gets the time-limit warning (USR2, which SLURM sends ``signal_delay_s`` before
    ``timeout_min``; submitit requeues the job). Both resume from their checkpoints: every epoch
    once in their metrics; seed 0 ends with the records and weights of the same run trained
    uninterrupted (one thread, as cpus_per_task=1 gives each job). The analysis and the envelope
    come out at the end."""
    sweep = tmp_path / "sweep"
    args = [*TINY_ARGS, "epochs=8", f"data.root={fmnist_root}", "t_0=0.8"]
    # The reference, trained beside the array: the same run in one process, one thread.
    reference = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), *args, "strategy=cubic", "seed=0", f"hydra.run.dir={tmp_path / 'reference'}"],
        cwd=tmp_path, env={**child_env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    proc = launch("-m", *args, *SLURM, "strategy=cubic,none", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    try:
        target = wait_until(lambda: the_run(sweep, "strategy=cubic", "seed=0"), "the cubic seed-0 run", proc)
        wait_until(lambda: epochs_done(target) >= 1, "its first epoch", proc)
        job = wait_until(lambda: job_of(sweep, target), "its job log", proc)
        requeue_now(job)
        timed = wait_until(lambda: the_run(sweep, "strategy=cubic", "seed=1"), "the cubic seed-1 run", proc)
        wait_until(lambda: epochs_done(timed) >= 1, "its first epoch", proc)
        timed_job = wait_until(lambda: job_of(sweep, timed), "its job log", proc)
        requeue_now(timed_job, how="USR2")
        out = finish(proc)
    finally:
        stop(proc)
        ref_out = reference.communicate(timeout=600)[0]
    assert proc.returncode == 0, out[-4000:]
    assert reference.returncode == 0, ref_out[-3000:]

    dirs = run_dirs(sweep)
    assert sorted((summary(d)["strategy"], summary(d)["seed"]) for d in dirs) == \
        [("cubic", 0), ("cubic", 1), ("none", 0), ("none", 1)]
    assert all(summary(d)["status"] == "completed" for d in dirs)
    # one job array: every run's job is <array id>_<index> of the same array, its logs in .submitit/
    jobs = [job_of(sweep, d) for d in dirs]
    assert len({j.split("_")[0] for j in jobs}) == 1 and sorted(j.split("_")[1] for j in jobs) == ["0", "1", "2", "3"]
    for j in jobs:
        assert (sweep / ".submitit" / f"{j}_0_log.out").is_file()
    # the requeued job: interrupted once, resumed once, each epoch recorded once
    log = (target / "run.log").read_text()
    assert log.count("interrupted by SIGTERM") == 1 and log.count("resuming") == 1, log[-2000:]
    assert [r["epoch"] for r in records(target)] == list(range(1, 9))
    # the job warned of its time limit: requeued by submitit, resumed from its last checkpoint
    err = (sweep / ".submitit" / f"{timed_job}_0_log.err").read_text()
    assert "Caught signal SIGUSR2" in err and "Requeued job" in err, err[-2000:]
    assert (timed / "run.log").read_text().count("resuming") == 1
    assert [r["epoch"] for r in records(timed)] == list(range(1, 9))
    same_records(records(target), records(tmp_path / "reference"))
    ref = weights(tmp_path / "reference")
    assert all(torch.equal(t, ref[k]) for k, t in weights(target).items())
    assert summary(target)["final_val_err"] == summary(tmp_path / "reference")["final_val_err"]
    # the job's SLURM identity is in its records (the analysis flags pairs from different jobs/nodes)
    assert summary(target)["load"]["slurm_job"] == job and summary(target)["load"]["slurm_node"]
    # the analysis of the sweep, as with the basic launcher
    assert "All 4 runs completed." in out
    for name in ("summary.md", "runs.csv", "envelope.png"):
        assert (sweep / "analysis" / name).is_file(), name


def test_a_relaunch_after_scancel_trains_only_what_is_missing(slurm_cluster, fmnist_root, tmp_path):
    """3 runs one at a time (array_parallelism=1); the whole array cancelled while the second
    trains, the launching process killed. The same command again: the first run is left as it
    is, the second resumes from its checkpoint, the third trains; each epoch once."""
    sweep = tmp_path / "sweep"
    cmd = ["-m", *TINY_ARGS, "epochs=6", f"data.root={fmnist_root}", *SLURM, "hydra.launcher.array_parallelism=1",
           "strategy=none,cubic,linear", "t_0=0.8", "seed=0", f"hydra.sweep.dir={sweep}"]
    proc = launch(*cmd, cwd=tmp_path)
    try:
        first = wait_until(lambda: the_run(sweep, "strategy=none"), "the baseline's run", proc)
        wait_until(lambda: (first / "summary.json").is_file() and summary(first)["status"] == "completed",
                   "the baseline to complete", proc)
        second = wait_until(lambda: the_run(sweep, "strategy=cubic"), "the second run", proc)
        wait_until(lambda: epochs_done(second) >= 1, "the second run's first epoch", proc)
        array = job_of(sweep, second).split("_")[0]
        subprocess.run(["scancel", array], check=True)
        wait_until(lambda: "interrupted" in (second / "run.log").read_text(), "the second run to stop", proc)
    finally:
        stop(proc)  # without sacct here, submitit would wait for the cancelled jobs' results forever
    assert the_run(sweep, "strategy=linear") is None  # never started
    before = ((first / "metrics.jsonl").read_text(), (first / "summary.json").read_text())

    out = finish(launch(*cmd, cwd=tmp_path))
    assert "All 3 runs completed." in out, out[-4000:]
    assert ((first / "metrics.jsonl").read_text(), (first / "summary.json").read_text()) == before
    assert "already holds a completed run: nothing to do" in (first / "run.log").read_text()
    assert (second / "run.log").read_text().count("resuming") == 1
    third = the_run(sweep, "strategy=linear")
    assert "resuming" not in (third / "run.log").read_text()
    for d in (first, second, third):
        assert summary(d)["status"] == "completed"
        assert [r["epoch"] for r in records(d)] == [1, 2, 3, 4, 5, 6]
