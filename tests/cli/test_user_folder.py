"""Every command as a user runs it, in a subprocess, from a project folder that holds what a
project holds: its own ``analysis.py``, ``conf.py``, ``models.py`` and ``data/`` package (names
the harness must not collide with) beside ``mynet.py``. Help, one-line config errors (exit 2),
and ``--resume`` after a real Ctrl-C."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MYNET = '''from torch import nn


def build(num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, num_classes))
'''
#: A user's modules named like parts of the harness: importing any of them leaves a mark.
SHADOWS = {"analysis.py": "analysis", "conf.py": "conf", "models.py": "models", "data/__init__.py": "data"}
COMMANDS = ("train", "plan", "groups", "analyze", "bench", "config")


def freezeout(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m freezeout ARGS`` from ``cwd`` (the launch folder first on sys.path, as for any
    ``python -m``), with nothing of the checkout's environment variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FREEZEOUT_", "PYTHONPATH", "HYDRA_"))}
    base.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "freezeout", *args], cwd=cwd, env=base, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("myproject")
    (root / "mynet.py").write_text(MYNET)
    for name, mark in SHADOWS.items():
        (root / name).parent.mkdir(exist_ok=True)
        (root / name).write_text(f"open({str(root / ('imported_' + mark))!r}, 'w').close()\n"
                                 f"raise SystemExit('the user\\'s {name} was imported')\n")
    return root


def data_args(fmnist_root) -> list[str]:
    return ["data=fashion_mnist", f"data.root={fmnist_root}", "data.val_size=200", "model=custom",
            "model._target_=mynet.build", "batch_size=32", "device=cpu", "progress=false"]


def assert_untouched(folder: Path) -> None:
    assert not list(folder.glob("imported_*")), "the user's modules were imported"


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_its_own_help(folder, name, flag):
    proc = freezeout(name, flag, cwd=folder, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: freezeout {name}"), proc.stdout[:300]
    assert "python -m" not in proc.stdout.split("\n", 1)[0]
    assert_untouched(folder)


def test_train_help_lists_the_groups_sweeps_launchers_and_sweepers_not_the_schema(folder):
    text = freezeout("train", "--help", cwd=folder, timeout=120).stdout
    for needle in ("strategy ", "cubic", "sweeps ", "strategies", "hydra/launcher", "turns", "hydra/sweeper",
                   "frontier", "--resume"):
        assert needle in text, needle
    assert "schema/" not in text and "Powered by Hydra" not in text


@pytest.mark.parametrize("override, needles", [
    ("strategy=cubci", ["strategy=cubci", "autofreeze, cubic, layer_freezing, linear, none, squared"]),
    ("optimizer=adam", ["optimizer=adam", "adamw, sgd"]),
    ("t_0=fast", ["t_0=fast", "needs a number"]),
    ("optimizer.lrr=0.1", ["optimizer.lrr=0.1", "no such key", "lr, momentum", "did you mean optimizer.lr"]),
])
def test_a_config_hydra_cannot_compose_is_one_line_exit_2(folder, override, needles):
    for command in ("train", "groups", "plan", "bench") if override == "strategy=cubci" else ("train",):
        line = one_error_line(freezeout(command, override, cwd=folder, timeout=120))
        for needle in needles:
            assert needle in line, (command, line)
    assert not (folder / "outputs").exists()  # refused before any run directory
    if override == "t_0=fast":
        full = freezeout("train", override, cwd=folder, env={"HYDRA_FULL_ERROR": "1"}, timeout=120)
        assert full.returncode != 0 and "Traceback" in full.stderr


def test_a_sweep_with_a_bad_option_is_one_line_too(folder):
    line = one_error_line(freezeout("train", "-m", "strategy=linear,cubci", cwd=folder, timeout=120))
    assert "strategy=cubci" in line and "allowed:" in line
    line = one_error_line(freezeout("plan", "-m", "strategy=none,cubic", "t_0=fast", cwd=folder, timeout=120))
    assert line == "error: t_0=fast: t_0 needs a number (e.g. 0.5)"


def test_a_missing_function_in_an_existing_module_is_named(folder, fmnist_root):
    line = one_error_line(freezeout("train", *data_args(fmnist_root), "model._target_=mynet.buildd", cwd=folder))
    assert "module 'mynet'" in line and "no 'buildd'" in line and "build" in line.rpartition(":")[2]
    assert_untouched(folder)


def test_train_plan_groups_analyze_from_a_folder_with_analysis_conf_data_models(folder, fmnist_root):
    args = [*data_args(fmnist_root), "data.subset=512", "epochs=1"]
    run = freezeout("train", *args, "hydra.run.dir=outputs/one", cwd=folder)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads((folder / "outputs" / "one" / "summary.json").read_text())["status"] == "completed"
    assert "data: fashion_mnist: 512 training, 200 validation images, 10 classes, 1x28x28, in memory" in run.stderr
    assert run.stderr.count("layer groups (forward order)") == 1, run.stderr  # the groups' header once
    assert "(head: pool, flatten, fc)" in run.stderr
    groups = freezeout("groups", *args, cwd=folder)
    assert groups.returncode == 0 and "layer groups" in groups.stdout, groups.stderr[-2000:]
    plan = freezeout("plan", "-m", *args, "strategy=none,cubic", cwd=folder)
    assert plan.returncode == 0 and "jobs: 2" in plan.stdout, plan.stderr[-2000:]
    analyze = freezeout("analyze", "outputs", cwd=folder)
    assert analyze.returncode == 0, analyze.stderr[-2000:]
    assert_untouched(folder)


def test_resume_goes_on_with_the_interrupted_run_of_the_same_config(folder, fmnist_root, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "mynet.py").write_text(MYNET)
    args = [*data_args(fmnist_root), "data.subset=2000", "epochs=40", "log_every=5"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FREEZEOUT_", "PYTHONPATH", "HYDRA_"))}
    proc = subprocess.Popen([sys.executable, "-m", "freezeout", "train", *args], cwd=project, text=True,
                            env={**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _epochs(project):  # mid-way: after an epoch or two
            time.sleep(0.2)
        assert _epochs(project), "no epoch was recorded"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "--resume" in err.strip().splitlines()[-1]
    (run_dir,) = [p.parent for p in (project / "outputs").rglob("summary.json")]
    before = _epochs(project)
    assert 0 < len(before) < 40 and json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"

    other = freezeout("train", *args, "seed=1", "--resume", cwd=project)  # another config: nothing to resume
    assert "no unfinished run of this config" in one_error_line(other)
    resumed = freezeout("train", *args, "--resume", cwd=project)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir.relative_to(project)}" in resumed.stderr
    assert [p.parent for p in (project / "outputs").rglob("summary.json")] == [run_dir]  # the same folder
    assert [r["epoch"] for r in _records(run_dir)] == list(range(1, 41))  # every epoch once
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    again = freezeout("train", *args, "--resume", cwd=project)  # finished: nothing left to resume
    assert "no unfinished run" in one_error_line(again)


def test_a_rerun_without_resume_names_the_interrupted_run(tmp_path, fmnist_root):
    project = tmp_path / "proj"
    run_dir = project / "outputs" / "2026-01-01" / "00-00-00-1"
    run_dir.mkdir(parents=True)
    (project / "mynet.py").write_text(MYNET)
    args = [*data_args(fmnist_root), "data.subset=256", "epochs=1"]
    from helpers import compose_cfg
    from omegaconf import OmegaConf

    from freezeout.rundir.records import RunSummary

    os.environ.pop("FREEZEOUT_LAUNCH_ID", None)
    cfg = compose_cfg(*args)
    RunSummary(status="interrupted", config=OmegaConf.to_container(cfg, resolve=True)).write(run_dir / "summary.json")
    (run_dir / "checkpoint.pt").write_bytes(b"")
    proc = freezeout("train", *args, "hydra.run.dir=outputs/new", cwd=project)  # a directory given: no note
    assert proc.returncode == 0 and "note:" not in proc.stderr, proc.stderr[-2000:]
    proc = freezeout("train", *args, cwd=project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    note = next(line for line in proc.stderr.splitlines() if line.startswith("note:"))
    assert str(run_dir.relative_to(project)) in note and "--resume" in note


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _epochs(project: Path) -> list[int]:
    found = list((project / "outputs").rglob("metrics.jsonl")) if (project / "outputs").exists() else []
    return [r["epoch"] for r in _records(found[0].parent)] if found else []


def test_input_shape_without_the_batch_dimension_is_one_line(folder):
    script = ("import torch, freezeout, mynet\n"
              "freezeout.FreezeController(mynet.build(3, 1), lambda g: torch.optim.SGD(g, lr=0.1), 100,"
              " input_shape=(1, 28, 28))\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=300)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and "ModelBuildError" in last, proc.stderr[-2000:]
    assert "(1, 28, 28)" in last and "batch dimension: (1, C, H, W)" in last
