"""Checkpoints for resume: model, controller (optimizer included), RNG states and loop position,
written atomically so a kill mid-write leaves the previous checkpoint intact.

torch is imported where it is used, so that reading a run directory (``analysis``) stays cheap.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

from .atomic import atomic_write

CHECKPOINT_FILE = "checkpoint.pt"
log = logging.getLogger("freezeout")


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` into ``path`` atomically (see :func:`~freezeout.rundir.atomic.atomic_write`)."""
    import torch

    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or ``None`` when there is none."""
    import torch

    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """Every random state a run consumes: torch's CPU one, the data generator's and, for a run on
    a GPU, that GPU's (its own only: the other visible GPUs' states are not the run's, and a run
    on the CPU must not initialise CUDA by asking for them)."""
    import torch

    state = {"torch": torch.get_rng_state(), "data": generator.get_state()}
    if generator.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(generator.device)
    return state


#: Bytes of a CUDA generator's state (Philox: a seed and an offset); a CPU generator's (mt19937) is larger.
CUDA_GENERATOR_STATE_BYTES = 16


def checkpoint_device_type(checkpoint: dict[str, Any]) -> str | None:
    """The device type (``cpu`` or ``cuda``) a checkpoint's run trained on, read from its data
    generator's state (its size is the generator's kind); None when it cannot tell."""
    import torch

    state = (checkpoint.get("rng") or {}).get("data")
    if not isinstance(state, torch.Tensor):
        return None
    if state.numel() == CUDA_GENERATOR_STATE_BYTES:
        return "cuda"
    return "cpu" if state.numel() == torch.Generator().get_state().numel() else None


def restore_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of :func:`rng_state`, on whatever GPUs are visible now. A checkpoint written with
    several GPUs' states (older checkpoints saved every visible GPU's, by index) gives the run's
    GPU the state saved for the same index when there is one, else keeps the current state and
    says so (bitwise resume is a promise made on the CPU)."""
    import torch

    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])
    saved = state.get("cuda")
    if saved is None or generator.device.type != "cuda":
        return
    device = generator.device
    if isinstance(saved, (list, tuple)):  # one state per GPU visible when it was written
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(saved):
            log.warning("checkpoint holds CUDA random states for %d GPUs, none for %s: its state starts afresh",
                        len(saved), device)
            return
        saved = saved[index]
    torch.cuda.set_rng_state(saved, device)
