"""The load a run trained under, recorded beside its wall-clock time (``summary.json``'s ``load``).

A speedup measured against a baseline that trained while other work shared the machine is biased
(a baseline slowed by the jobs beside it makes FreezeOut look faster). So every run records:

- ``wall_seconds`` and ``cpu_seconds``: the span measured and this process's CPU time in it
  (all its threads; under the turns launcher each run of a round has a process of its own, so
  the round's other runs count as other work below);
- ``machine_cpus`` and ``machine_busy_seconds``: the CPUs the kernel counts in ``/proc/stat``
  (the whole machine, not this process's affinity) and their busy time in the span, every
  process together; from them ``own_cpu_share`` and ``others_cpu_share``, this process's and
  everybody else's CPU time as a fraction of all the machine's CPU time in the span;
- ``loadavg``: the 1-minute load average per CPU, mean of its value at the start and the end;
- ``jobs_beside``, ``turns``, ``turns_group``: what the launcher says (environment variables
  below): jobs of the same launch training at the same time, runs taking turns in this round
  and the id of that round (runs of one round trained under the same load by construction);
- ``gpu_processes``: on a GPU, other processes holding it (NVML, when ``pynvml`` is installed);
- ``host``, ``slurm_job`` and ``slurm_node``: the machine, and under SLURM the job
  (``ARRAYID_INDEX`` for a task of a job array) and node it trained in; runs of one job shared its
  allocation, runs of different jobs or nodes may not have.

Pure Python, no torch (the analysis reads these records).
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any

JOBS_BESIDE_ENV = "FREEZEOUT_JOBS_BESIDE"  # jobs of this launch training at the same time as this one
TURNS_ENV = "FREEZEOUT_TURNS"  # runs taking turns in this round (hydra/launcher=turns)
TURNS_GROUP_ENV = "FREEZEOUT_TURNS_GROUP"  # the id of that round
PROC_STAT = "/proc/stat"
#: Other work above this share of the machine's CPU time makes a measurement "busy": its seconds may
#: be off (one busy process on a 2-CPU machine is 50%).
BUSY_SHARE = 0.25


def cpu_times(path: str = PROC_STAT) -> tuple[int, float, float] | None:
    """(CPUs, busy seconds, total seconds) of the whole machine since boot, from ``/proc/stat``'s
    per-CPU lines; None where there is no such file (not Linux)."""
    try:
        with open(path) as f:
            lines = [ln.split() for ln in f if ln.startswith("cpu")]
    except OSError:
        return None
    total_line = next((ln for ln in lines if ln[0] == "cpu"), None)
    if total_line is None:
        return None
    ticks = [int(x) for x in total_line[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait: not busy
    hz = os.sysconf("SC_CLK_TCK")
    return sum(1 for ln in lines if ln[0] != "cpu"), (sum(ticks[:8]) - idle) / hz, sum(ticks[:8]) / hz


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else None


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def gpu_processes(device: str | None) -> int | None:
    """Processes other than this one holding ``cuda:N`` (NVML); None off the GPU or without NVML."""
    if not device or not str(device).startswith("cuda"):
        return None
    try:
        import pynvml  # optional: nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        index = int(str(device).split(":")[1].split()[0]) if ":" in str(device) else 0
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible:  # torch's index among the visible devices; NVML counts them all
            index = int(visible.split(",")[index])
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        return sum(1 for p in procs if p.pid != os.getpid())
    except Exception:  # noqa: BLE001 - NVML missing or refusing: the load stays unknown
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


class LoadMeter:
    """Measures the load over a span: ``with LoadMeter(device) as load: ...``, then
    ``load.record()`` (also mid-span: up to now). Costs two reads of ``/proc/stat``."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._start: tuple | None = None
        self._end: tuple | None = None

    def _snapshot(self) -> tuple:
        return (time.perf_counter(), time.process_time(), cpu_times(), _loadavg(), gpu_processes(self.device))

    def __enter__(self) -> "LoadMeter":
        self._start, self._end = self._snapshot(), None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end = self._snapshot()

    def record(self) -> dict[str, Any] | None:
        """The load as ``summary.json`` stores it (see the module doc); None before the span."""
        if self._start is None:
            return None
        (w0, c0, m0, l0, g0), (w1, c1, m1, l1, g1) = self._start, self._end or self._snapshot()
        wall, cpu = w1 - w0, c1 - c0
        out: dict[str, Any] = {"wall_seconds": wall, "cpu_seconds": cpu, "machine_cpus": None,
                               "machine_busy_seconds": None, "own_cpu_share": None, "others_cpu_share": None}
        if m0 is not None and m1 is not None and m1[2] > m0[2]:
            cpus, busy, total = m1[0], m1[1] - m0[1], m1[2] - m0[2]
            out.update(machine_cpus=cpus, machine_busy_seconds=busy, own_cpu_share=min(1.0, cpu / total),
                       others_cpu_share=max(0.0, (busy - cpu) / total))
        loads = [x for x in (l0, l1) if x is not None]
        cpus = out["machine_cpus"] or os.cpu_count() or 1
        out["loadavg"] = sum(loads) / len(loads) / cpus if loads else None
        out.update(jobs_beside=_env_int(JOBS_BESIDE_ENV), turns=_env_int(TURNS_ENV),
                   turns_group=os.environ.get(TURNS_GROUP_ENV) or None)
        gpus = [g for g in (g0, g1) if g is not None]
        out["gpu_processes"] = max(gpus) if gpus else None
        out.update(host=socket.gethostname(), slurm_job=slurm_job(), slurm_node=os.environ.get("SLURMD_NODENAME"))
        return out


def busy_note(record: dict | None) -> str | None:
    """``"measured while other processes used 70% of the CPUs: seconds may be off"`` for a load
    record (:meth:`LoadMeter.record`) whose other work exceeded :data:`BUSY_SHARE`, or whose GPU
    other processes held; None for a quiet (or unrecorded) one."""
    if not isinstance(record, dict):
        return None
    others, clauses = record.get("others_cpu_share"), []
    if isinstance(others, (int, float)) and others > BUSY_SHARE:
        clauses.append(f"other processes used {100 * others:.0f}% of the CPUs")
    gpu = record.get("gpu_processes")
    if isinstance(gpu, int) and gpu > 0:
        clauses.append(f"{gpu} other process(es) held its GPU")
    return f"measured while {' and '.join(clauses)}: seconds may be off" if clauses else None


def slurm_job() -> str | None:
    """The SLURM job this process runs in: ``ARRAYID_INDEX`` for a task of a job array (as squeue
    and scontrol name it), else the job id; None outside SLURM."""
    array, index = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{index}" if array and index else os.environ.get("SLURM_JOB_ID")


def measure_load(device: str | None = None) -> LoadMeter:
    """A :class:`LoadMeter` to use as a context around training: ``with measure_load(dev) as load``."""
    return LoadMeter(device)
