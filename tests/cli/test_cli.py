"""The ``freezeout`` command from a checkout: the help with its groups, ``config cp``, the user's
project (its modules importable, ``./conf`` and ``--config-dir`` beside the shipped configs), and
``run.py`` as an alias that trains a custom model found in the launch directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl

from freezeout.cli import COMMANDS
from freezeout.cli.configs import copy_config, shipped_groups
from freezeout.cli.configs import main as config_main
from freezeout.cli.project import take_config_dir
from hydra_plugins.freezeout_launch.searchpath import CONFIG_DIR_ENV, FreezeOutProjectConfigs

REPO = Path(__file__).resolve().parents[2]
MYNET = "from torch import nn\n\n\ndef build(num_classes, in_channels, width=8):\n" \
        "    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),\n" \
        "                         nn.Flatten(), nn.Linear(width, num_classes))\n"


def freezeout(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FREEZEOUT_LAUNCH_ID", CONFIG_DIR_ENV, "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "freezeout", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: mynet.py, its model config in conf/, a sweep of its own."""
    (tmp_path / "mynet.py").write_text(MYNET)
    copy_config("model/custom", tmp_path / "conf" / "model" / "mynet.yaml")
    model = tmp_path / "conf" / "model" / "mynet.yaml"
    model.write_text(model.read_text().replace("_target_: ???", "_target_: mynet.build  #"))
    (tmp_path / "conf" / "sweeps").mkdir()
    (tmp_path / "conf" / "sweeps" / "widths.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      +model.width: 4,8\n")
    return tmp_path


def test_help_lists_every_command_and_the_groups_with_the_users_own(project):
    proc = freezeout("--help", cwd=project)
    assert proc.returncode == 0
    for name in COMMANDS:
        assert f"\n  {name} " in proc.stdout
    groups = shipped_groups()
    assert {"model", "data", "strategy", "optimizer", "sweeps", "hydra/launcher"} <= set(groups)
    for group, options in groups.items():  # each group on one line with all its options
        assert f"  {group}".ljust(len(group) + 3) in proc.stdout and " ".join(options) in proc.stdout
    mine = proc.stdout.split("your configs", 1)[1]
    assert "mynet" in mine and "widths" in mine
    assert freezeout("--version", cwd=project).stdout.startswith("freezeout ")
    unknown = freezeout("fit", cwd=project)
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1 and "'fit'" in unknown.stderr


def test_config_cp_copies_a_shipped_config_or_sweep_and_refuses_to_overwrite(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert config_main(["cp", "model/timm", "conf/model/mine.yaml"]) == 0
    assert (tmp_path / "conf/model/mine.yaml").read_text() == (REPO / "conf/model/timm.yaml").read_text()
    assert "select it with model=mine (found in ./conf)" in capsys.readouterr().out
    assert config_main(["cp", "sweeps/t0_grid", "conf/sweeps/"]) == 0  # into a folder, made for it
    assert (tmp_path / "conf/sweeps/t0_grid.yaml").read_text() == (REPO / "sweeps/t0_grid.yaml").read_text()
    assert "rename it first" in capsys.readouterr().out  # the shipped t0_grid would be found first
    for args, needle in ((["cp", "model/timm", "conf/model/mine.yaml"], "exists; --force"),
                         (["cp", "model/resnet", "x.yaml"], "no shipped config 'model/resnet'; allowed: config, "),
                         (["cp", "../setup", "x.yaml"], "no shipped config")):
        with pytest.raises(SystemExit) as e:
            config_main(args)
        err = capsys.readouterr().err
        assert e.value.code == 2 and needle in err and err.count("\n") == 1
    assert config_main(["cp", "model/vgg", "conf/model/mine.yaml", "--force"]) == 0


def test_the_users_configs_are_found_in_conf_or_with_config_dir(project):
    job = freezeout("train", "model=mynet", "data=fashion_mnist", "--cfg", "job", cwd=project)
    assert job.returncode == 0 and "_target_: mynet.build" in job.stdout, job.stderr
    sweep = freezeout("train", "model=mynet", "sweeps=widths", "--cfg", "hydra", cwd=project)
    assert "+model.width: 4,8" in sweep.stdout, sweep.stderr
    (project / "conf").rename(project / "myconf")  # no ./conf: only --config-dir finds them
    missing = freezeout("train", "model=mynet", "--cfg", "job", cwd=project)
    assert missing.returncode != 0 and "mynet" in missing.stderr
    job = freezeout("train", "--config-dir", "myconf", "model=mynet", "--cfg", "job", cwd=project)
    assert job.returncode == 0 and "_target_: mynet.build" in job.stdout, job.stderr


def test_groups_reads_the_users_config_dir_too(project):
    (project / "conf").rename(project / "myconf")
    proc = freezeout("groups", "--config-dir=myconf", "model=mynet", "data=fashion_mnist", cwd=project)
    assert proc.returncode == 0 and "mynet.build (custom)" in proc.stdout, proc.stderr[-2000:]
    bad = freezeout("groups", "--config-dir", "nowhere", "model=mynet", cwd=project)
    assert bad.returncode == 2 and bad.stderr == "error: --config-dir 'nowhere' is not a folder\n"


def test_take_config_dir_takes_each_spelling(tmp_path, monkeypatch):
    for args in (["a=1", "--config-dir", str(tmp_path), "b=2"], [f"--config-dir={tmp_path}", "a=1", "b=2"],
                 ["a=1", "b=2", "-cd", str(tmp_path)]):
        monkeypatch.setenv(CONFIG_DIR_ENV, "")  # set by the call, unset again after the test
        assert sorted(take_config_dir(args)) == ["a=1", "b=2"] and os.environ[CONFIG_DIR_ENV] == str(tmp_path)


def test_the_search_path_plugin_leaves_other_hydra_apps_alone(project, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("FREEZEOUT_ROOT", str(REPO))
    monkeypatch.setenv(CONFIG_DIR_ENV, "")

    def searched(main: str) -> list[str]:
        path = ConfigSearchPathImpl()
        path.append("main", main)
        FreezeOutProjectConfigs().manipulate_search_path(path)
        return [e.path for e in path.get_path()]

    assert searched(str(REPO / "conf")) == [str(REPO / "conf"), f"file://{project / 'conf'}"]
    assert searched(str(project / "other_app")) == [str(project / "other_app")]
    monkeypatch.chdir(REPO)  # the checkout's own conf/ is the shipped one: not added twice
    assert searched(f"file://{REPO / 'conf'}") == [f"file://{REPO / 'conf'}"]


def test_run_py_trains_a_custom_model_from_the_launch_directory(tmp_path, fmnist_root):
    """The case that needed PYTHONPATH=. before: run.py from elsewhere, the model in the launch folder."""
    (tmp_path / "mynet.py").write_text(MYNET)
    proc = run_cli("data=fashion_mnist", f"data.root={fmnist_root}", "model=custom", "model._target_=mynet.build",
                   "epochs=1", "data.subset=512", "device=cpu", "progress=false", f"hydra.run.dir={tmp_path / 'run'}",
                   cwd=tmp_path, env={"PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["model"]["_target_"] == "mynet.build"
    assert "job:\n    name: run\n" in (tmp_path / "run" / ".hydra" / "hydra.yaml").read_text()
