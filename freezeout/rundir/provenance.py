"""What makes a run reproducible beyond its config: library versions and the git revision."""
from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: The checkout this package runs from, when it is one (its git revision is recorded).
REPO_ROOT = Path(__file__).resolve().parents[2]


def library_versions() -> dict[str, str | None]:
    """Versions of Python, the libraries a run depends on, and CUDA/cuDNN when present."""
    import torch

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "hydra-core", "omegaconf", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else None
    return versions


@functools.lru_cache(maxsize=None)
def git_revision() -> str | None:
    """``HEAD``'s commit of the project's checkout, suffixed ``-dirty`` with uncommitted changes.

    Read once per process, at the first run: the code a process runs is the code it loaded then,
    whatever happens to the working tree during a long sweep.
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        rev = git("rev-parse", "HEAD")
        return rev + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_name(device: torch.device) -> str:
    """A human-readable name of the device a run trained on."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
