"""Bad input ends in one line: a truncated image stops the load (in memory) or the run (streamed)
naming the file and how many images were read before it, or with data.skip_bad_images=true is
skipped and counted; a loader worker that dies ends the run with one line, its checkpoint intact,
and the same command resumes it."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import REPO
from test_data_stream import RUN, compose_cfg, jpegs  # noqa: F401 (the folder fixture)

from freezeout.data import load_data, streamed
from freezeout.data.common import options
from freezeout.data.folder import split_items
from freezeout.errors import ConfigError
from freezeout.rundir.records import RunSummary, read_metrics
from freezeout.training.checks import validate
from freezeout.training.trainer import train

CPU = torch.device("cpu")


@pytest.fixture
def broken(jpegs, tmp_path) -> tuple[Path, Path]:  # noqa: F811
    """A copy of the folder with one training JPEG cut short."""
    root = tmp_path / "broken"
    shutil.copytree(jpegs, root, ignore=shutil.ignore_patterns("shards"))
    bad = sorted((root / "train" / "coat").iterdir())[3]
    bad.write_bytes(bad.read_bytes()[:200])
    return root, bad


def test_in_memory_a_bad_image_stops_the_load_or_is_skipped(broken, caplog):
    root, bad = broken
    opts = {"source": "image_folder", "name": "jpegs", "root": str(root), "loader": "memory"}
    with pytest.raises(ConfigError) as e:
        load_data(opts, CPU)
    message = str(e.value)
    assert str(bad) in message and "images were read before it" in message and "skip_bad_images" in message
    assert "\n" not in message
    data = load_data({**opts, "skip_bad_images": True}, CPU)
    assert len(data.train_x) == 191 and data.bad_images == [str(bad)]
    assert "skipped 1 unreadable image(s)" in caplog.text


def test_streamed_a_bad_image_stops_the_run_or_is_skipped(broken, tmp_path, monkeypatch, one_thread):
    root, bad = broken
    with pytest.raises(ConfigError, match=re.escape(bad.name)):  # met by the normalisation statistics' pass
        train(compose_cfg(*RUN, f"data.root={root}"), tmp_path / "early")
    first = split_items(options({"source": "image_folder", "name": "j", "root": str(root)}), 192, False)[0][0][0]
    assert first != bad
    monkeypatch.setattr(streamed, "STATS_SAMPLE", 1)  # statistics of the first image alone: met in training
    with pytest.raises(ConfigError) as e:
        train(compose_cfg(*RUN, f"data.root={root}"), tmp_path / "stops")
    assert str(bad) in str(e.value) and "images were read before it" in str(e.value) and "\n" not in str(e.value)
    stopped = RunSummary.read(tmp_path / "stops" / "summary.json")
    assert stopped.status == "failed" and str(bad) in stopped.error
    summary = train(compose_cfg(*RUN, f"data.root={root}", "data.skip_bad_images=true"), tmp_path / "skips")
    assert summary.status == "completed" and summary.input["bad_images"] == 1  # met each epoch, counted once
    assert [r["bad_images"] for r in read_metrics(tmp_path / "skips" / "metrics.jsonl")] == [1, 1]


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_a_dying_worker_ends_the_run_in_one_line_and_it_resumes(jpegs, tmp_path):  # noqa: F811
    epochs = 5
    args = [*RUN, f"data.root={jpegs}", f"epochs={epochs}", f"hydra.run.dir={tmp_path / 'run'}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint, metrics = tmp_path / "run" / "checkpoint.pt", tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    # Held still while its worker is killed, so that the death lands mid-training however fast an
    # epoch is (0.1 s on a quiet machine): the last epoch's record is not written yet.
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert metrics.read_text().count("\n") < epochs, "the run ended before its worker could be killed"
        workers = children(proc.pid)  # the training loader's worker (it lives across epochs)
        assert workers, "no loader worker to kill"
        os.kill(workers[0], signal.SIGKILL)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, err[-3000:]
    assert "a data loader worker died" in errors[0] and "run the same command to resume" in errors[0]
    assert "Traceback" not in err
    saved = torch.load(checkpoint, weights_only=False)  # intact: the last epoch's, loadable
    assert saved["loop"]["epoch"] >= 1
    assert RunSummary.read(tmp_path / "run" / "summary.json").status == "failed"
    again = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["epoch"] for r in read_metrics(metrics)] == list(range(1, epochs + 1))


def test_closing_the_stream_stops_its_workers_and_a_later_epoch_starts_new_ones(jpegs):  # noqa: F811
    """Training closes its stream at the end, so a worker that ends after the last step is no
    failure of the run; a closed stream still serves an epoch (with new workers)."""
    opts = {"source": "image_folder", "name": "jpegs", "root": str(jpegs), "loader": "stream", "workers": 1}
    stream = load_data(opts, CPU).stream

    def epoch(e: int) -> int:
        return sum(len(y) for _, y in stream.batches(stream.order(0, e), 0, e, 32))

    before = set(children(os.getpid()))  # other tests' processes
    assert epoch(1) == 192
    workers = set(children(os.getpid())) - before
    assert workers, "the workers live across epochs"
    stream.close()
    assert not workers & set(children(os.getpid()))
    stream.close()  # twice is harmless
    assert epoch(2) == 192
    stream.close()


def test_turns_by_epoch_follow_the_run_s_own_epochs_when_images_are_skipped(broken, tmp_path, one_thread):
    root, _ = broken  # 191 readable training images in memory: 5 full batches of 32, where 192 make 6
    cfg = compose_cfg(*RUN, f"data.root={root}", "data.loader=memory", "data.skip_bad_images=true", "epochs=3",
                      "checkpoint=false")
    assert validate(cfg).iterations_per_epoch == 6  # what the config's checks count, before any image is read
    pauses: list[int] = []
    summary = train(cfg, tmp_path / "run", pause=pauses.append, pause_every="epoch")
    per_epoch = summary.iterations // 3
    assert summary.status == "completed" and per_epoch == 5
    assert pauses == [5, 10, 15]
