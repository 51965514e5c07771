"""A frontier search shared by several workers through a PostgreSQL server the tests start
(conftest.postgres_server): workers started together finish exactly ``n_trials`` trials, none
trained twice; a worker killed mid-trial has its trial run again by another; a worker started
later joins and goes on; optuna-dashboard reads the study."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from slurm_helpers import TINY_ARGS, child_env, finish, launch, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
optuna = pytest.importorskip("optuna")


def search(root: Path, sweep: Path, url: str, study: str, n_trials: int) -> list[str]:
    """A tiny search: one seed, 2 epochs of 256 images; the flops speedup (no time model needed)."""
    return ["-m", *TINY_ARGS, "epochs=2", "checkpoint=true", f"data.root={root}", "hydra/sweeper=frontier",
            "hydra.sweeper.seeds=[0]", f"hydra.sweeper.n_trials={n_trials}", "hydra.sweeper.speedup=flops",
            "hydra.sweeper.heartbeat_s=1", f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={study}",
            "strategy=choice(linear,squared,cubic)", "t_0=interval(0.5,0.95)", f"hydra.sweep.dir={sweep}"]


def trained_once(sweep: Path) -> None:
    """Every run of the sweep trained each epoch once, though several workers launched it."""
    for d in sweep.glob("run_*"):
        log = (d / "run.log").read_text()
        assert log.count("epoch 1/2") <= 1 and log.count("epoch 2/2") == 1, f"{d.name}:\n{log[-1500:]}"
        assert json.loads((d / "summary.json").read_text())["status"] == "completed"


def test_two_workers_share_one_study_and_survive_a_killed_one(postgres_server, fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = search(fmnist_root, sweep, postgres_server.url, "shared", 5)
    first, second = launch(*args, cwd=tmp_path, threads=1), launch(*args, cwd=tmp_path, threads=1)
    try:
        # the first worker's first trial training: kill that worker then (SIGKILL, no goodbye)
        def a_trial_of(pid: int):
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="shared", storage=postgres_server.url.replace(
                    "postgresql://", "postgresql+psycopg://"))
            except KeyError:  # not created yet
                return []
            return [t for t in study.get_trials() if t.state.name == "RUNNING" and len(t.params) == 2  # drawn
                    and t.user_attrs.get("worker") == f"{socket.gethostname()}:{pid}"]
        killed = wait_until(lambda: a_trial_of(first.pid), "a trial of the first worker", first, timeout=300)[0]
        first.send_signal(signal.SIGKILL)
        first.communicate()
        # a worker started later joins the same study and goes on
        third = launch(*args, cwd=tmp_path, threads=1)
        out2, out3 = finish(second), finish(third)
        (tmp_path / "worker2.log").write_text(out2)
        (tmp_path / "worker3.log").write_text(out3)
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
                p.communicate()
    assert second.returncode == 0, out2[-3000:]
    assert third.returncode == 0, out3[-3000:]
    study = optuna.load_study(study_name="shared", storage=postgres_server.url.replace(
        "postgresql://", "postgresql+psycopg://"))
    trials = study.get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 5, [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert len({json.dumps(t.params, sort_keys=True) for t in complete}) == 5  # no setting twice
    # the killed trial: failed, and run again with its settings by a live worker
    dead = study.trials[killed.number]
    assert dead.state.name == "FAIL" and dead.params == killed.params
    (rerun,) = [t for t in complete if t.user_attrs.get("resumes") == killed.number]
    assert rerun.params == dead.params
    # the later worker joined the study as it was (it may have found every trial taken by then)
    assert "frontier search: " in out3 and "of 5 trials done" in out3
    # nothing else failed; surplus asks (two workers at the last place) were given back, not run
    others = [t for t in trials if t.state.name not in ("COMPLETE",) and t.number != killed.number]
    assert all(t.state.name == "PRUNED" and t.user_attrs.get("surplus") for t in others)
    trained_once(sweep)
    assert "frontier: 5 completed trials (0 failed)" in out3

    # optuna-dashboard reads the study from the same store (the documented command)
    exe = Path(sys.executable).with_name("optuna-dashboard")
    if not exe.exists():
        pytest.skip("optuna-dashboard is not installed (the 'cluster' extra)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = postgres_server.url.replace("postgresql://", "postgresql+psycopg://")
    dash = subprocess.Popen([str(exe), url, "--port", str(port), "--quiet"], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def studies():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                time.sleep(0.2)
                return None
        listed = wait_until(studies, "optuna-dashboard to answer", timeout=60)
        (shown,) = [s for s in listed["study_summaries"] if s["study_name"] == "shared"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{shown['study_id']}", timeout=10) as r:
            detail = json.loads(r.read())
        assert len([t for t in detail["trials"] if t["state"] == "Complete"]) == 5
        assert any("relative_error" in json.dumps(t["user_attrs"]) for t in detail["trials"])
    finally:
        dash.terminate()
        dash.wait(timeout=30)


def test_an_unreachable_store_is_one_line_before_anything_trains(fmnist_root, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    url = f"postgresql://postgres@127.0.0.1:{port}/frontier"
    proc = launch(*search(fmnist_root, tmp_path / "sweep", url, "s", 1), cwd=tmp_path)
    out = finish(proc, timeout=300)
    assert proc.returncode == 2, out[-2000:]
    errors = [x for x in out.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and f"hydra.sweeper.storage={url}: cannot open the study store" in errors[0], out[-2000:]
    assert not list((tmp_path / "sweep").glob("run_*"))
