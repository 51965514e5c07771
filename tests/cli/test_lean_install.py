"""The core install: with the optional extras' packages (trackers, timm, scipy, Lightning, Optuna)
made unimportable, the controller, a training run and the analysis work, and each extra that is
asked for fails before training with one line naming it. And ``pip install CHECKOUT`` leaves the
checkout's ``git status`` clean."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
#: The extras' top-level packages (pyproject.toml's optional-dependencies).
EXTRAS = ("tensorboard", "mlflow", "timm", "scipy", "lightning", "pytorch_lightning", "optuna")
BLOCKER = f'''import sys

BLOCKED = {EXTRAS!r}


class _NotInstalled:
    """Every process of the test sees a core-only install: the extras cannot be imported."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''
MYNET = "from torch import nn\n\n\ndef build(num_classes, in_channels):\n    return nn.Sequential(" \
        "nn.Conv2d(in_channels, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))\n"


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> tuple[Path, dict]:
    """(a user's folder, the environment of a core-only install: sitecustomize blocks the extras)."""
    root = tmp_path_factory.mktemp("core")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(BLOCKER)
    (root / "mynet.py").write_text(MYNET)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FREEZEOUT_", "PYTHONPATH", "HYDRA_"))}
    env.update(PYTHONPATH=str(root / "site"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return root, env


def python(core, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    root, env = core
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_blocker_blocks(core):
    proc = python(core, "-c", "import mlflow")
    assert proc.returncode == 1 and "No module named 'mlflow'" in proc.stderr


def test_the_core_trains_and_analyses_without_the_extras(core, fmnist_root):
    root, _ = core
    controller = python(core, "-c", "import torch, freezeout, mynet\n"
                        "c = freezeout.FreezeController(mynet.build(3, 1), lambda g: torch.optim.SGD(g, lr=0.1), 10,"
                        " input_shape=(1, 1, 28, 28))\nprint(c.predicted_speedup())")
    assert controller.returncode == 0, controller.stderr[-2000:]
    args = ["-m", "freezeout", "train", "data=fashion_mnist", f"data.root={fmnist_root}", "data.subset=256",
            "data.val_size=100", "model=custom", "model._target_=mynet.build", "epochs=1", "device=cpu",
            "progress=false"]
    for strategy in ("none", "cubic"):
        run = python(core, *args, f"strategy={strategy}", f"hydra.run.dir=outputs/{strategy}")
        assert run.returncode == 0, run.stderr[-3000:]
    analyze = python(core, "-m", "freezeout", "analyze", "outputs")
    assert analyze.returncode == 0 and (root / "outputs" / "analysis" / "summary.md").exists(), analyze.stderr[-3000:]


@pytest.mark.parametrize("override, extra", [("logger=mlflow", "mlflow"), ("logger=tensorboard", "tensorboard"),
                                             ("model=timm", "timm")])
def test_an_extra_asked_for_but_missing_is_one_line_naming_it(core, fmnist_root, override, extra):
    args = ["-m", "freezeout", "train", "data=fashion_mnist", f"data.root={fmnist_root}", "data.subset=256",
            "epochs=1", "device=cpu", "progress=false", "hydra.run.dir=outputs/refused", override]
    if override == "model=timm":
        args.append("model.name=resnet18")
    proc = python(core, *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and lines[-1].startswith("error: "), proc.stderr[-2000:]
    assert f"pip install 'freezeout[{extra}]'" in lines[-1]
    assert not any("epoch 1" in line for line in lines)  # refused before training
    lightning = python(core, "-c", "import freezeout.integrations.lightning")
    assert "pip install 'freezeout[lightning]'" in lightning.stderr.strip().splitlines()[-1]


def test_pip_install_of_a_checkout_leaves_it_clean(tmp_path):
    src = tmp_path / "checkout"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"]):
        subprocess.run(["git", *git], cwd=src, check=True, capture_output=True)
    target = tmp_path / "installed"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (target / "freezeout" / "conf" / "config.yaml").exists()
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=src, capture_output=True, text=True)
    assert status.stdout == "", status.stdout
