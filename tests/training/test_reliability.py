"""Reliability: bad input rejected before training, kill-and-resume, sweeps that survive failures."""
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

from freezeout.rundir.records import read_metrics

# Each bad input: the override(s) and what the one-line message must contain (key and value).
BAD_INPUTS = {
    "t_0 above 1": (["t_0=1.5"], ["t_0=1.5", "(0, 1]"]),
    "t_0 zero": (["t_0=0"], ["t_0=0", "(0, 1]"]),
    "t_0 not a number": (["t_0=fast"], ["t_0", "fast"]),
    "unknown strategy": (["strategy=quartic"], ["strategy=quartic", "cubic", "linear", "none", "squared"]),
    "unknown model": (["model=resnet"], ["model=resnet", "densenet", "vgg", "wrn"]),
    "unknown data": (["data=imagenet"], ["data=imagenet", "cifar10", "cifar100", "fashion_mnist"]),
    "densenet depth": (["model.depth=75"], ["model.depth=75", "(depth - 4) % 6 == 0"]),
    "wrn depth": (["model=wrn", "model.depth=27"], ["model.depth=27", "(depth - 4) % 6 == 0"]),
    "epochs zero": (["epochs=0"], ["epochs=0", ">= 1"]),
    "batch_size zero": (["batch_size=0"], ["batch_size=0", ">= 1"]),
    "subset zero": (["data.subset=0"], ["data.subset=0", "[1, "]),
    "subset too large": (["data.subset=60000"], ["data.subset=60000", "[1, 59500]"]),
    "cuda without a GPU": (["device=cuda"], ["device=cuda", "no CUDA GPU"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_clearly_before_training(case, tmp_path, fmnist_root):
    overrides, needles = BAD_INPUTS[case]
    if case == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    run_dir = tmp_path / "run"
    other_model = any(o.startswith("model=") for o in overrides)
    base = [a for a in TINY if not (other_model and a.startswith("model"))]
    proc = run_cli(*base, "data.val_size=500", f"data.root={fmnist_root}", *overrides,
                   f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    if (run_dir / "run.log").exists():  # the run began: its log holds the error line too
        assert needles[0] in (run_dir / "run.log").read_text()
    # Nothing beyond Hydra's own files: no metrics, summary or checkpoint.
    left = {p.name for p in run_dir.iterdir()} if run_dir.exists() else set()
    assert left <= {".hydra", "run.log"}


@pytest.mark.slow
def test_cifar_missing_without_network_says_what_to_do(tmp_path):
    proc = run_cli("data=cifar100", f"data.root={tmp_path / 'empty'}", "model.depth=10", "device=cpu",
                   f"hydra.run.dir={tmp_path / 'run'}",
                   env={"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"})
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "cifar100 is not in data.root" in proc.stderr and "downloading it failed" in proc.stderr
    assert "data=fashion_mnist" in proc.stderr


def _comparable(records):
    """Metrics without the wall-clock fields, which differ between any two runs."""
    drop = {"train_seconds", "epoch_seconds", "eval_seconds", "peak_memory_mb", "data_wait_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(tmp_path, fmnist_root):
    args = [*TINY, f"data.root={fmnist_root}", "epochs=4", "data.subset=1024", "strategy=cubic", "t_0=0.5"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run_cli(*args, f"hydra.run.dir={straight}").returncode == 0

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), *args, f"hydra.run.dir={killed}"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [r["epoch"] for r in read_metrics(killed / "metrics.jsonl")]
    assert done and done[-1] < 4, "the kill came too late to test a resume"
    assert json.loads((killed / "summary.json").read_text())["status"] == "running"

    resumed = run_cli(*args, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming" in resumed.stderr
    a, b = read_metrics(straight / "metrics.jsonl"), read_metrics(killed / "metrics.jsonl")
    assert [r["epoch"] for r in b] == [1, 2, 3, 4]  # each epoch exactly once
    assert _comparable(a) == _comparable(b)  # bitwise: same losses and errors
    wa = torch.load(straight / "checkpoint.pt", weights_only=False)["model"]
    wb = torch.load(killed / "checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((killed / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_completed_run_is_not_trained_again_and_a_different_config_is_refused(tmp_path, fmnist_root):
    args = [*TINY, f"data.root={fmnist_root}", "epochs=1", f"hydra.run.dir={tmp_path}"]
    assert run_cli(*args).returncode == 0
    before = (tmp_path / "summary.json").read_text()
    again = run_cli(*args)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert (tmp_path / "summary.json").read_text() == before
    other = run_cli(*args, "optimizer.lr=0.05")
    assert other.returncode != 0 and "different config" in other.stderr and "lr" in other.stderr
    assert (tmp_path / "summary.json").read_text() == before


@pytest.mark.slow
def test_sweep_survives_a_failing_job_and_relaunch_completes_nothing_twice(tmp_path, fmnist_root):
    args = ["-m", *TINY, "epochs=1", f"data.root={fmnist_root}", "strategy=cubic,none", "t_0=0.5,1.5",
            f"hydra.sweep.dir={tmp_path}"]
    first = run_cli(*args)
    # the others finish, then the sweep says, last, which run failed, and exits non-zero
    assert first.returncode == 1, first.stderr[-3000:]
    assert "error: 1 run(s) of the sweep did not complete: run_" in first.stdout.strip().splitlines()[-1]
    summaries = {p.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("run_*/summary.json")}
    assert len(summaries) == 3  # cubic x 2 t_0 values, and the baseline once
    failed = [name for name, s in summaries.items() if s["status"] == "failed"]
    assert len(failed) == 1 and "t_0=1.5" in failed[0] and "t_0=1.5" in summaries[failed[0]]["error"]
    assert sum(s["status"] == "completed" for s in summaries.values()) == 2
    assert "1 of 3 runs did not complete" in first.stdout + first.stderr

    stamps = {n: (tmp_path / n / "metrics.jsonl").read_text() for n, s in summaries.items()
              if s["status"] == "completed"}
    second = run_cli(*args)
    assert second.returncode == 1  # the bad job fails again
    assert (second.stdout + second.stderr).count("nothing to do") == 2
    for name, text in stamps.items():
        assert (tmp_path / name / "metrics.jsonl").read_text() == text  # not trained twice


@pytest.mark.slow
def test_divergence_stops_the_run_with_status_diverged(tmp_path, fmnist_root):
    proc = run_cli(*TINY, f"data.root={fmnist_root}", "strategy=none", "optimizer.lr=1e30", "log_every=1",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-2000:]  # scripts can see it
    assert "error: the run diverged: training loss became" in proc.stderr and "Traceback" not in proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "loss became" in summary["error"]
    # the iterations it really did (diverged inside the first epoch, at its first loss read-back)
    assert 0 < summary["iterations_done"] < summary["iterations"]
