"""Run safety through run.py, as a user meets it: one process per run directory, a clean stop on
SIGINT that resumes exactly, the run directory named first; and the time model's cost cap."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO, TINY, run_cli

from freezeout.rundir.lock import hold_run_lock, lock_holder
from freezeout.rundir.records import read_metrics
from freezeout.speedup.timemodel import FULL_TIMING, time_model_budget

DROP = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}


def comparable(run_dir):
    return [{k: v for k, v in r.items() if k not in DROP} for r in read_metrics(run_dir / "metrics.jsonl")]


def env():
    e = {**os.environ, "PYTHONUNBUFFERED": "1"}
    e.pop("FREEZEOUT_LAUNCH_ID", None)
    return e


def test_time_model_budget_scales_with_the_run():
    assert time_model_budget(10, 10_000, 0.1) == FULL_TIMING  # 100 steps a stage: plenty
    assert time_model_budget(10, 500, 0.1) == {"warmup": 1, "chunks": 1, "steps": 4}  # 5 a stage
    assert time_model_budget(10, 200, 0.1) is None  # 2 a stage: skipped
    assert time_model_budget(1, 10, 1.0) == {"warmup": 1, "chunks": 1, "steps": 9}
    # Stages taking turns warm up once: the rest of the budget buys rounds, a short run's rounds of one step.
    assert time_model_budget(10, 10_000, 0.1, "turns") == {"warmup": 2, "chunks": 12, "steps": 4}  # 100 a stage
    assert time_model_budget(10, 2_000, 0.1, "turns") == {"warmup": 2, "chunks": 4, "steps": 4}  # 20 a stage
    assert time_model_budget(10, 720, 0.1, "turns") == {"warmup": 1, "chunks": 6, "steps": 1}  # 7 a stage
    assert time_model_budget(10, 200, 0.1, "turns") is None


def test_a_locked_run_directory_is_left_alone(tmp_path, fmnist_root):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with hold_run_lock(run_dir):  # this test process plays the other launch
        assert lock_holder(run_dir) == f"pid {os.getpid()} on {os.uname().nodename}"
        proc = run_cli(*TINY, f"data.root={fmnist_root}", "epochs=1", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert f"{run_dir} is being trained by another process (pid {os.getpid()}" in proc.stderr
    assert not (run_dir / "summary.json").exists() and not (run_dir / "metrics.jsonl").exists()
    assert lock_holder(run_dir) is None  # released with the block (and by the kernel on any exit)


@pytest.mark.slow
def test_two_launches_of_one_sweep_train_each_run_once(tmp_path, fmnist_root):
    sweep = tmp_path / "sweep"
    args = [sys.executable, str(REPO / "run.py"), "-m", *TINY, "epochs=2", "data.subset=1024",
            f"data.root={fmnist_root}", "strategy=cubic,none", "t_0=0.5", "seed=0,1", f"hydra.sweep.dir={sweep}",
            "~hydra.callbacks.analysis"]
    launches = [subprocess.Popen(args, cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in launches]
    runs = sorted(sweep.glob("run_*"))
    assert len(runs) == 4
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed", summary["error"]
        assert [r["epoch"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2]  # each epoch once
        assert (run / "run.log").read_text().count("epoch 1/2") == 1  # trained by one launch only
    text = "\n".join(outputs)
    skipped = text.count("is being trained by another process") + text.count("nothing to do")
    assert skipped == 4  # each launch found the other's runs busy or done
    assert all(p.returncode == 0 for p in launches), text[-3000:]


@pytest.mark.slow
def test_sigint_stops_cleanly_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path, fmnist_root):
    # log_every=1: a stop request is honoured at the next step (an epoch here can take 0.2 s on a quiet
    # machine, less than the default's 50 steps between checks); it changes no number a run computes.
    args = [*TINY, f"data.root={fmnist_root}", "epochs=3", "data.subset=2048", "strategy=cubic", "t_0=0.5",
            "log_every=1"]
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert run_cli(*args, f"hydra.run.dir={straight}").returncode == 0

    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), *args, f"hydra.run.dir={stopped}"], cwd=REPO,
                            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (stopped / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # epoch 1 is saved: the stop lands in epoch 2
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "interrupted by SIGINT at iteration" in err and f"to resume, run the same command with hydra.run.dir=" \
        f"{stopped}" in err
    summary = json.loads((stopped / "summary.json").read_text())
    done = summary["iterations_done"]  # 64 iterations an epoch; the signal lands in epoch 2 (3 on a busy machine)
    assert summary["status"] == "interrupted" and 64 <= done < 192, done
    assert [r["epoch"] for r in read_metrics(stopped / "metrics.jsonl")] == list(range(1, done // 64 + 1))

    resumed = run_cli(*args, f"hydra.run.dir={stopped}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {stopped} from epoch {done // 64} (iteration {done})" in resumed.stderr
    assert comparable(straight) == comparable(stopped)  # each epoch once, the very same numbers
    wa = torch.load(straight / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(stopped / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    first = next(x for x in resumed.stderr.splitlines() if "] " in x)
    assert "run directory:" in first  # every run names its directory first
