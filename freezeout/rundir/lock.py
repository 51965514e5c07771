"""One process per run directory: an exclusive ``flock`` on ``<run dir>/.lock`` while a process
trains the run. The kernel drops the lock when the process exits, however it exits (SIGKILL
included), so a stale lock file never blocks anyone. Pure Python: the analysis reads it too.
"""
from __future__ import annotations

import fcntl
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOCK_FILE = ".lock"


class RunLocked(RuntimeError):
    """Another process is training this run directory right now."""


@contextmanager
def hold_run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the ``with`` block; raises :class:`RunLocked` (naming
    the holder) when another process holds it."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunLocked(f"{run_dir} is being trained by another process ({holder}); "
                        "nothing was changed. Wait for it, or stop it and run again to resume") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def lock_holder(run_dir: Path) -> str | None:
    """Who holds the run directory's lock ("pid N on HOST"), or None when no process does."""
    path = run_dir / LOCK_FILE
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown process"
    finally:
        os.close(fd)
