"""Streamed data (data.loader=stream) on a real JPEG folder written from Fashion-MNIST: an epoch's
order and augmentation are functions of (seed, epoch) alone, whatever the workers and the start
batch; processes take disjoint halves (in one process, and with torchrun on two); ``auto`` streams
what does not fit and says so; a run records its data wait; a run stopped mid-epoch resumes to the
uninterrupted run's records; the frozen-prefix cache serves its cached stages from its store."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO, compose_cfg

from freezeout.config import register_configs
from freezeout.data import load_data
from freezeout.data.make_folder import write
from freezeout.errors import ConfigError
from freezeout.rundir.records import read_metrics
from freezeout.training.signals import Interrupted
from freezeout.training.trainer import train

register_configs()
CPU = torch.device("cpu")
#: 192 training images (6 steps of 32), 64 in val/; a tiny DenseNet on 16x16 RGB.
RUN = ["data=image_folder", "data.name=jpegs", "data.loader=stream", "data.workers=1", "model=densenet",
       "model.depth=10", "model.growth_rate=4", "epochs=2", "batch_size=32", "device=cpu", "progress=false"]
VOLATILE = ("_seconds", "_mb")  # wall clock and memory


@pytest.fixture(scope="session")
def jpegs(tmp_path_factory, fmnist_root) -> Path:
    root = tmp_path_factory.mktemp("jpegs")
    write(root, size=16, train=192, val=64, shards=True, shard_size=80, fmnist_root=fmnist_root)
    return root




def comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.endswith(VOLATILE)} for r in read_metrics(run_dir / "metrics.jsonl")]


def epoch(stream, seed: int, e: int, start: int = 0, shard=(0, 1)):
    return [(x, idx) for x, _, idx in stream.batches(stream.order(seed, e), seed, e, 32, start, shard,
                                                     with_index=True)]


def test_order_and_augmentation_are_functions_of_seed_and_epoch(jpegs, one_thread):
    opts = {"source": "image_folder", "name": "jpegs", "root": str(jpegs), "loader": "stream",
            "augment": "pad_crop_flip", "workers": 1}
    one = load_data(opts, CPU).stream
    none = load_data({**opts, "workers": 0}, CPU).stream  # decoded in this process instead
    first = epoch(one, 0, 1)
    assert len(first) == 6 and all(x.shape == (32, 3, 16, 16) and x.dtype == torch.float32 for x, _ in first)
    again = epoch(none, 0, 1)
    assert all(torch.equal(a, b) and torch.equal(i, j) for (a, i), (b, j) in zip(first, again))
    assert not torch.equal(first[0][1], epoch(one, 0, 2)[0][1])  # another epoch: another order
    assert not torch.equal(first[0][1], epoch(one, 1, 1)[0][1])  # another seed too
    assert sorted(torch.cat([i for _, i in first]).tolist()) == list(range(192))  # each image once
    tail = epoch(one, 0, 1, start=4)  # a resumed epoch: the same batches from where it stopped
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(tail, first[4:]))
    halves = [epoch(one, 0, 1, shard=(r, 2)) for r in (0, 1)]  # two processes: disjoint halves
    for (x, i), (x0, i0), (x1, i1) in zip(first, *halves):
        assert torch.equal(torch.cat([i0, i1]), i) and torch.equal(torch.cat([x0, x1]), x)


def test_auto_streams_what_does_not_fit_and_the_run_records_its_wait(jpegs, tmp_path, caplog, one_thread):
    cfg = compose_cfg(*RUN, f"data.root={jpegs}", "data.loader=auto", "data.max_memory_gb=0.0001")
    with caplog.at_level(logging.INFO, logger="freezeout"):
        summary = train(cfg, tmp_path)
    assert "more than data.max_memory_gb=0.0001: streaming them" in caplog.text
    assert summary.status == "completed" and summary.input["loader"] == "stream"
    by_stage = summary.input["data_wait_by_stage"]
    assert sum(s["steps"] for s in by_stage.values()) == 12 and summary.input["data_wait_seconds"] > 0
    assert summary.input["images_read"] >= 2 * 192 + 2 * 64  # training and validation, each epoch
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["bad_images"] for r in records] == [0, 0] and all(r["data_wait_seconds"] > 0 for r in records)


def test_a_streamed_run_stopped_mid_epoch_resumes_to_the_same_records(jpegs, tmp_path, one_thread):
    cfg = compose_cfg(*RUN, f"data.root={jpegs}", "data.augment=pad_crop_flip", "log_every=1", "t_0=0.5")
    straight = train(cfg, tmp_path / "straight")

    def pause(j: int) -> None:
        if j == 9:  # epoch 2, batch 3 of 6
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(Interrupted):
        train(cfg, tmp_path / "stopped", pause=pause)
    checkpoint = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)
    assert checkpoint["loader"] == {"kind": "stream", "iteration": 9, "in_epoch": True}
    shutil.copytree(tmp_path / "stopped", tmp_path / "other")  # as if its data had been in memory:
    checkpoint["loop"]["loader"] = "memory"  # (loader=auto deciding otherwise, the folder having grown)
    torch.save(checkpoint, tmp_path / "other" / "checkpoint.pt")
    with pytest.raises(ConfigError, match="trained with data.loader=memory; this run would use stream"):
        train(cfg, tmp_path / "other")
    resumed = train(cfg, tmp_path / "stopped")
    assert resumed.status == "completed" and resumed.freeze_iterations == straight.freeze_iterations
    assert comparable(tmp_path / "straight") == comparable(tmp_path / "stopped")
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=False)["model"] for d in ("straight", "stopped"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cached_stages_read_the_store_not_the_files(jpegs, tmp_path, one_thread):
    args = [*RUN, f"data.root={jpegs}", "t_0=0.3", "epochs=3"]
    plain = train(compose_cfg(*args), tmp_path / "plain")
    cached = train(compose_cfg(*args, "cache_frozen=true"), tmp_path / "cached")
    assert cached.status == "completed" and cached.frozen_groups > 0
    # the store is filled once (one pass over the training images), then no training file is read
    assert cached.input["images_read"] < plain.input["images_read"]


def test_two_processes_stream_disjoint_halves(jpegs, tmp_path):
    """One torchrun launch (gloo): each process loads its half of every batch of two epochs."""
    script = Path(__file__).with_name("stream_shares.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
                           str(script), str(jpegs), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for e in ("1", "2"):
        single, halves = ranks[0]["single"][e], [ranks[r]["shares"][e] for r in (0, 1)]
        assert len(single) == 6
        for whole, h0, h1 in zip(single, *halves):
            assert len(h0) == len(h1) == 16 and not set(h0) & set(h1) and h0 + h1 == whole
    assert ranks[0]["single"]["1"] != ranks[0]["single"]["2"]


def test_ctrl_c_to_the_process_group_stops_a_streamed_run_cleanly(jpegs, tmp_path):
    """Ctrl-C reaches the loader's workers too: they leave it to the run, which stops at a step
    boundary with a checkpoint; the same command resumes it."""
    args = [*RUN, f"data.root={jpegs}", "epochs=3", "log_every=1", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    # No word from a loader worker (a traceback, a "worker died"): only the data line names them.
    assert "to resume, run the same command" in err
    assert not [line for line in err.splitlines() if "worker" in line and " data: " not in line], err[-3000:]
    again = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(metrics)] == [1, 2, 3]
