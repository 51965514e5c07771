"""The installed package, not the checkout: a wheel built from a copy of the source, installed
(not editable) into a fresh venv, and every documented command run from a folder outside the
repository: a custom model from that folder, a copied and edited config, plan, groups, analyze,
bench. The venv sees this environment's torch and other dependencies through a .pth file (no
download), never the checkout: the tests check where freezeout and its configs come from."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "freezeout", "analysis", "hydra_plugins", "conf", "sweeps",
           "examples")
MYNET = '''from torch import nn


def build(num_classes, in_channels):
    return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, num_classes))
'''


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(the wheel, the source copy it was built from)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    return next((tmp / "dist").glob("freezeout-*.whl")), src


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; the dependencies are this environment's."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=120)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # Every site-packages folder of this environment: one may reach another through a .pth file,
    # which Python reads only in a site folder (not in one a .pth file adds).
    found = dict.fromkeys([sysconfig.get_paths()["purelib"], *(p for p in sys.path if p.endswith("site-packages"))])
    Path(purelib, "dependencies.pth").write_text("\n".join(found) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index",
                    str(wheel[0])], check=True, capture_output=True, timeout=300)
    return root


def command(venv: Path, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``ARGS`` run as a user of the venv would, from ``cwd``: its bin/ first on PATH, nothing of
    this checkout in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FREEZEOUT_", "PYTHONPATH"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def project(venv, fmnist_root, tmp_path_factory) -> Path:
    """A user's folder outside the repository, holding mynet.py, where one run has trained."""
    folder = tmp_path_factory.mktemp("project")
    (folder / "mynet.py").write_text(MYNET)
    proc = command(venv, "freezeout", "train", "data=fashion_mnist", f"data.root={fmnist_root}", "model=custom",
                   "model._target_=mynet.build", "epochs=1", "data.subset=512", "device=cpu", "progress=false",
                   cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder


def test_the_wheel_ships_every_module_and_config(wheel):
    whl, src = wheel
    names = set(zipfile.ZipFile(whl).namelist())
    modules = {p.relative_to(src).as_posix() for pkg in ("freezeout", "hydra_plugins")
               for p in (src / pkg).rglob("*.py")}
    modules |= {f"freezeout/{p.relative_to(src).as_posix()}" for p in (src / "analysis").rglob("*.py")}
    configs = {f"freezeout/{p.relative_to(src).as_posix()}" for d in ("conf", "sweeps") for p in (src / d).rglob("*.yaml")}
    assert modules and modules <= names
    assert len(configs) > 30 and configs <= names
    assert "freezeout/conf/config.yaml" in names and "freezeout/sweeps/strategies.yaml" in names
    shipped = {n.partition("/")[2] for n in names if n.startswith("freezeout/examples/")}
    examples = {p.relative_to(src).as_posix() for p in (src / "examples").glob("*.py")}
    assert "examples/plain_pytorch.py" in examples and examples <= shipped  # shipped, to copy
    entry_points = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "freezeout = freezeout.cli:main" in entry_points
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"freezeout", "hydra_plugins"}, top_level  # nothing of ours to shadow a user's module


def test_the_installed_copy_runs_a_model_from_the_launch_directory(venv, project):
    site = command(venv, "python", "-c", "import freezeout, hydra_plugins.freezeout_launch as h; "
                   "print(freezeout.__file__); print(*h.__path__)", cwd=project).stdout.split()
    assert all(path.startswith(str(venv)) for path in site), site  # not the checkout
    run = next(project.glob("outputs/*/*"))
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    hydra_yaml = (run / ".hydra" / "hydra.yaml").read_text()
    assert f"path: {venv}" in hydra_yaml and str(REPO) not in hydra_yaml  # configs from the package
    version = command(venv, "python", "-m", "freezeout", "--version", cwd=project)
    assert version.returncode == 0 and version.stdout.strip() == "freezeout 0.1.0"


def test_help_lists_the_commands_and_the_shipped_groups(venv, project):
    proc = command(venv, "freezeout", "--help", cwd=project)
    assert proc.returncode == 0
    for needle in ("train", "plan", "groups", "analyze", "bench", "config cp", "strategy ", "cubic", "sweeps ",
                   "strategies", str(venv)):
        assert needle in proc.stdout, needle


def test_a_copied_config_edited_and_selected_with_config_dir(venv, project, fmnist_root):
    copied = command(venv, "freezeout", "config", "cp", "model/timm", "myconf/model/mine.yaml", cwd=project)
    assert copied.returncode == 0, copied.stderr
    example = command(venv, "freezeout", "config", "cp", "examples/plain_pytorch", "loop.py", cwd=project)
    assert example.returncode == 0 and "FreezeController" in (project / "loop.py").read_text(), example.stderr
    mine = project / "myconf" / "model" / "mine.yaml"
    mine.write_text(mine.read_text().replace("name: ???", "name: test_resnet  # "))
    proc = command(venv, "freezeout", "train", "--config-dir", "myconf", "model=mine", "data=fashion_mnist",
                   f"data.root={fmnist_root}", "epochs=1", "data.subset=512", "device=cpu", "progress=false",
                   "hydra.run.dir=mine_run", cwd=project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((project / "mine_run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["model"]["name"] == "test_resnet"


def test_plan_groups_analyze_and_bench_from_the_users_folder(venv, project, fmnist_root):
    data = ["data=fashion_mnist", f"data.root={fmnist_root}", "data.subset=512", "device=cpu"]
    custom = ["model=custom", "model._target_=mynet.build"]
    groups = command(venv, "freezeout", "groups", *custom, *data, cwd=project)
    assert groups.returncode == 0 and "layer groups" in groups.stdout, groups.stderr[-2000:]
    plan = command(venv, "freezeout", "plan", "-m", *custom, *data, "epochs=1", "strategy=none,cubic", cwd=project)
    assert plan.returncode == 0 and "jobs: 2" in plan.stdout, plan.stderr[-2000:]
    analyze = command(venv, "freezeout", "analyze", "outputs", cwd=project)
    assert analyze.returncode == 0 and (project / "outputs" / "analysis" / "summary.md").exists(), analyze.stderr
    bench = command(venv, "freezeout", "bench", "bench.repeats=0", cwd=project)  # composes, refuses in one line
    assert bench.returncode != 0 and bench.stderr.strip() == "error: bench.repeats=0; need an integer >= 1"
