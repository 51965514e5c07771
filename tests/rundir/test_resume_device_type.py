"""Resuming on another device type, and what the processes gather for a checkpoint: a run whose
checkpoint was written on one device type (its data generator's state is that type's) is refused
on another with one line naming both, before anything is trained or rewritten; the states each
process hands rank 0 for the checkpoint are numbers and CPU tensors (nothing that unpickles onto a
GPU), and come back as the run's own."""
from __future__ import annotations


import pytest
import torch
from helpers import TINY, compose_cfg, stopped_run

from freezeout.config import register_configs
from freezeout.distributed import process_group, ranks
from freezeout.errors import ConfigError
from freezeout.rundir.checkpoint import CUDA_GENERATOR_STATE_BYTES, checkpoint_device_type, rng_state
from freezeout.training.trainer import train

register_configs()


def test_a_checkpoint_written_on_a_gpu_is_refused_on_the_cpu_in_one_line(fmnist_root, tmp_path, one_thread):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "epochs=1", "log_every=1")
    path = stopped_run(cfg, tmp_path / "run", at=3)
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint_device_type(checkpoint) == "cpu"
    # what a run on a GPU writes: its data generator is CUDA's (Philox: 16 bytes), and the GPU's state
    checkpoint["rng"]["data"] = torch.arange(CUDA_GENERATOR_STATE_BYTES, dtype=torch.uint8)
    checkpoint["rng"]["cuda"] = torch.arange(CUDA_GENERATOR_STATE_BYTES, dtype=torch.uint8)
    torch.save(checkpoint, path)
    assert checkpoint_device_type(checkpoint) == "cuda"
    written = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(ConfigError) as refused:
        train(cfg, tmp_path / "run")
    message = str(refused.value)
    assert "\n" not in message and "trained on cuda" in message and "resume it on cpu" in message
    assert "device=cuda" in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == written  # nothing lost


def test_what_each_process_hands_rank_0_is_on_the_cpu(monkeypatch):
    gathered = []
    monkeypatch.setattr(process_group, "gather", lambda obj: gathered.append(obj) or [obj, obj])
    monkeypatch.setattr(process_group, "world_size", lambda: 2)
    generator = torch.Generator().manual_seed(1)
    loss_sum = torch.tensor(12.375, dtype=torch.float32) + torch.tensor(1e-3)  # not a round number
    entries = ranks.checkpoint_ranks({"rng": rng_state(generator), "loss_sum": loss_sum})
    assert entries["world_size"] == 2 and len(entries["ranks"]) == 2
    (own,) = gathered

    def tensors(value):
        if isinstance(value, dict):
            return [t for v in value.values() for t in tensors(v)]
        return [value] if isinstance(value, torch.Tensor) else []
    assert isinstance(own["loss_sum"], float)  # a number: no device to unpickle onto
    assert all(t.device.type == "cpu" for t in tensors(own)) and len(tensors(own)) == 2
    monkeypatch.setattr(process_group, "rank", lambda: 1)
    back = ranks.own_states({"ranks": entries["ranks"], "rng": None})
    assert back["loss_sum"].dtype == torch.float32 and torch.equal(back["loss_sum"], loss_sum)  # bitwise
    assert torch.equal(back["rng"]["data"], generator.get_state())
