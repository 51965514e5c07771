"""Small device facts shared by the trainer, the time model and the benchmark."""
from __future__ import annotations

import resource

import torch


def configure_backends(device: torch.device, precision: str = "fp32") -> None:
    """The backend settings every run on ``device`` trains with (the trainer, the time model and
    the sweep plan alike): on CUDA, cuDNN picks its fastest kernels (bitwise resume is a promise
    made on the CPU only), and fp32 arithmetic is as ``precision`` says (:func:`set_fp32_math`)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        set_fp32_math(device, precision)


def set_fp32_math(device: torch.device, precision: str) -> None:
    """How CUDA does float32 matmuls and convolutions: TF32 with ``precision=tf32``, full IEEE
    float32 otherwise. Left alone, cuDNN convolutions would use TF32 and matmuls not, so "fp32"
    would mean one thing for a CNN and another for a ViT. Set before each step and evaluation
    (cheap), since runs taking turns in one process may differ. No-op on the CPU.

    Set through torch's legacy switches (``set_float32_matmul_precision``,
    ``cudnn.allow_tf32``), which torch mirrors into the new ``fp32_precision`` attributes: after
    them both APIs read. Set through the new attributes alone, the legacy getters raise ("a mix
    of legacy and new APIs"), and inductor reads them. A new-API setting made above the leaves
    (``torch.backends.fp32_precision``, ``cudnn.fp32_precision``) would override the legacy
    switches and keep that mix, so it is reset to ``none`` (defer) first."""
    if device.type != "cuda":
        return
    want = precision == "tf32"
    try:
        if torch.backends.cuda.matmul.allow_tf32 == want and torch.backends.cudnn.allow_tf32 == want:
            return  # already so, and readable both ways
    except RuntimeError:  # a mix of the legacy and new APIs, set elsewhere: set it again
        pass
    for switches in (torch.backends, torch.backends.cudnn):
        if getattr(switches, "fp32_precision", "none") != "none":
            switches.fp32_precision = "none"
    torch.set_float32_matmul_precision("high" if want else "highest")
    torch.backends.cudnn.allow_tf32 = want


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timing includes it (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for fp32 and tf32: autocast off)."""
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


def even_chunks(n: int, most: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the fewest near-equal chunks of ``range(n)`` of at most ``most``."""
    count = max(1, -(-n // max(most, 1)))
    bounds = [n * c // count for c in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
