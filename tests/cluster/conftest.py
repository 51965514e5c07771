"""The local SLURM cluster of the tests marked ``cluster``: brought up once per session by
``tests/cluster/slurm.sh`` (munged, slurmctld, slurmd for this machine, in a temporary folder),
``SLURM_CONF`` set for the tests and the processes they start, and stopped at the end by the pids
the script wrote, also when tests fail. Skips, saying why, where SLURM is not installed or the
tests do not run as root."""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slurm.sh")
NEEDS = ("slurmctld", "slurmd", "munged", "sbatch", "scontrol")


@dataclass(frozen=True)
class SlurmCluster:
    dir: Path
    conf: Path

    def env(self) -> dict:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def cmd(self, *args: str) -> str:
        """A SLURM client command on this cluster (scontrol, squeue, ...); its stdout."""
        return subprocess.run(list(args), env=self.env(), check=True, capture_output=True, text=True,
                              timeout=60).stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that its parent (not us) has not reaped yet counts as stopped
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def missing_slurm() -> str | None:
    """Why the local cluster cannot start here, or None."""
    missing = [exe for exe in NEEDS if shutil.which(exe) is None]
    if missing:
        return f"{', '.join(missing)} not installed (apt-get install slurm-wlm munge; .ci/run does)"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs as root (slurmd starts jobs as their user)"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """The running one-node cluster; ``SLURM_CONF`` points at it for the whole session."""
    reason = missing_slurm()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    up = subprocess.run(["bash", str(SCRIPT), "up", str(folder)], capture_output=True, text=True, timeout=120)
    pids = [int(p) for p in (folder / "pids").read_text().split()] if (folder / "pids").is_file() else []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        old = os.environ.get("SLURM_CONF")
        os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
        try:
            yield SlurmCluster(folder, folder / "slurm.conf")
        finally:
            if old is None:
                os.environ.pop("SLURM_CONF", None)
            else:
                os.environ["SLURM_CONF"] = old
    finally:
        subprocess.run(["bash", str(SCRIPT), "down", str(folder)], capture_output=True, timeout=120)
        left = [p for p in pids if pid_alive(p)]
        assert not left, f"SLURM daemons still running after slurm.sh down: pids {left}"
