"""Checkpoints and the GPUs visible when they are written and read: a run keeps its own GPU's
random state only; a checkpoint written with 8 GPU states (a node, a joblib sweep) resumes where
none or one is visible; saving a CPU run's state never starts CUDA."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import pytest
import torch
from helpers import REPO, TINY, TINY_CUDA, compose_cfg, needs_cuda, stopped_run

from freezeout.config import register_configs
from freezeout.rundir.checkpoint import restore_rng_state, rng_state
from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train

register_configs()
#: What torch.cuda.get_rng_state answers (a Philox seed and offset: 16 bytes), for 8 GPUs.
EIGHT_GPUS = [torch.arange(16, dtype=torch.uint8) + i for i in range(8)]




def test_a_cpu_run_saves_no_gpu_state_and_restores_one_written_with_eight_gpus():
    generator = torch.Generator().manual_seed(3)
    state = rng_state(generator)
    assert set(state) == {"torch", "data"}  # no "cuda": a CPU run's states are its own
    expected = (torch.rand(3, generator=generator), torch.rand(3))
    restore_rng_state({**state, "cuda": EIGHT_GPUS}, generator)  # no GPU visible: they are not this run's
    assert all(torch.equal(a, b) for a, b in zip(expected, (torch.rand(3, generator=generator), torch.rand(3))))


def test_a_run_stopped_with_eight_gpu_states_in_its_checkpoint_resumes_exactly(fmnist_root, tmp_path, one_thread):
    """Stopped mid-epoch, its checkpoint given the 8 GPU states a run on a node would have saved,
    the run resumes (no GPU visible here) to the records of the run never stopped."""
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5", "epochs=2", "log_every=1")
    straight = train(cfg, tmp_path / "straight")
    path = stopped_run(cfg, tmp_path / "stopped", at=20)
    checkpoint = torch.load(path, weights_only=False)
    assert checkpoint["partial_epoch"] is not None and "cuda" not in checkpoint["rng"]
    checkpoint["rng"]["cuda"] = EIGHT_GPUS
    torch.save(checkpoint, path)
    resumed = train(cfg, tmp_path / "stopped")
    assert resumed.status == "completed" and resumed.final_val_err == straight.final_val_err

    def lines(run):
        return [{k: v for k, v in json.loads(x).items() if "seconds" not in k and k != "peak_memory_mb"}
                for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    assert lines("stopped") == lines("straight")


# --- on a GPU (pytest -m cuda; make gpu-check) ---------------------------------------------------

@pytest.mark.cuda
@needs_cuda
def test_saving_a_cpu_runs_state_on_a_gpu_machine_does_not_start_cuda():
    code = ("import torch; from freezeout.rundir.checkpoint import rng_state; "
            "s = rng_state(torch.Generator().manual_seed(0)); "
            "print('cuda' in s, torch.cuda.is_initialized())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.cuda
@needs_cuda
def test_a_gpu_run_saves_its_own_gpus_state_and_takes_its_index_from_eight(caplog):
    device = torch.device("cuda", 0)
    generator = torch.Generator(device=device).manual_seed(5)
    state = rng_state(generator)
    assert torch.is_tensor(state["cuda"])  # one GPU's state, not a list of every visible one
    restore_rng_state({**state, "cuda": EIGHT_GPUS}, generator)
    assert torch.equal(torch.cuda.get_rng_state(device), EIGHT_GPUS[0])
    before = torch.cuda.get_rng_state(device)
    with caplog.at_level(logging.WARNING, logger="freezeout"):
        restore_rng_state({**state, "cuda": []}, generator)  # written where this GPU's index was not visible
    assert torch.equal(torch.cuda.get_rng_state(device), before) and "starts afresh" in caplog.text
    restore_rng_state(state, generator)
    assert torch.equal(torch.cuda.get_rng_state(device), state["cuda"])


@pytest.mark.cuda
@needs_cuda
def test_a_gpu_checkpoint_with_eight_states_resumes_where_one_gpu_is_visible(tmp_path):
    """The run on cuda:0, stopped and given 8 GPU states in its checkpoint, resumes to the end."""
    cfg = compose_cfg(*TINY_CUDA, "strategy=cubic", "epochs=2", "log_every=1")

    def stop_at_20(j: int) -> None:
        if j == 20:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "run", pause=stop_at_20)
    path = tmp_path / "run" / "checkpoint.pt"
    checkpoint = torch.load(path, weights_only=False)
    assert torch.is_tensor(checkpoint["rng"]["cuda"])
    checkpoint["rng"]["cuda"] = [checkpoint["rng"]["cuda"], *EIGHT_GPUS[1:]]
    torch.save(checkpoint, path)
    assert train(cfg, tmp_path / "run").status == "completed"
