"""Small device facts shared by the trainer, the time model and the benchmark."""
from __future__ import annotations

import resource

import torch


def configure_backends(device: torch.device) -> None:
    """The backend settings every run on ``device`` trains with (the trainer, the time model and
    the sweep plan alike): on CUDA, cuDNN picks its fastest kernels (bitwise resume is a promise
    made on the CPU only)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timing includes it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for fp32: autocast off)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB. Linux's ``VmHWM`` belongs to the process's own
    address space; ``ru_maxrss`` would carry over the peak of the process that started it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory in MiB: the CUDA allocator's peak (since the last reset) on a GPU, or the
    process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return peak_rss_mb()
