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


# --- PostgreSQL -----------------------------------------------------------------------------------

def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [p.parent for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)]
    need = ("initdb", "pg_ctl", "createdb")
    return next((c for c in candidates if all((c / n).is_file() for n in need)), None)


@dataclass(frozen=True)
class PostgresServer:
    url: str  # postgresql://postgres@127.0.0.1:PORT/frontier
    pid: int


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server of the session's own: initdb and pg_ctl in a temporary folder (as the
    ``postgres`` user when run as root, since the server refuses root), trust authentication on
    127.0.0.1 and a free port, one database ``frontier``; stopped (its postmaster pid checked) at
    the end."""
    import pwd
    import socket
    import tempfile

    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL's initdb, pg_ctl and createdb are not installed (apt-get install postgresql; .ci/run does)")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' user to run the server as")
        user = "postgres"
    # Under /tmp itself: pytest's temporary folders are private to root, the server's user must enter.
    folder = Path(tempfile.mkdtemp(prefix="freezeout-pg-"))
    if user:
        shutil.chown(folder, user, user)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def run(*args: str) -> None:
        proc = subprocess.run([str(bindir / args[0]), *args[1:]], user=user, capture_output=True, text=True,
                              timeout=120, cwd=folder)
        assert proc.returncode == 0, f"{args[0]}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"

    data, pid = folder / "data", None
    try:
        run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        pid = int((data / "postmaster.pid").read_text().split()[0])
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "frontier")
        yield PostgresServer(f"postgresql://postgres@127.0.0.1:{port}/frontier", pid)
    finally:
        if pid is not None:
            subprocess.run([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], user=user,
                           capture_output=True, timeout=60, cwd=folder)
            if pid_alive(pid):  # pg_ctl could not stop it: by its pid
                os.kill(pid, 9)
        shutil.rmtree(folder, ignore_errors=True)
        assert pid is None or not pid_alive(pid), f"PostgreSQL still running: pid {pid}"
