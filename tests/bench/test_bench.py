"""The benchmark (``python -m freezeout.bench``) end to end on a tiny model: the structure of its
JSON and the figures that are counts, never its timings (other jobs share this machine's cores)."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from helpers import REPO

from freezeout import bench

TINY_BENCH = ["model.depth=10", "model.growth_rate=4", "data.subset=128", "epochs=3", "batch_size=16",
              "device=cpu", "bench.repeats=1", "bench.threads=1", "bench.chunks=2", "bench.chunk_steps=2"]


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def result(fmnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:  # bench.threads=1 sets torch's thread count for the whole process: give it back
        returned = bench.main([*TINY_BENCH, f"data.root={fmnist_root}", f"bench.out={out}"])
    finally:
        torch.set_num_threads(threads)
    return returned, json.loads(out.read_text())


def test_writes_the_json_it_returns(result):
    returned, written = result
    assert set(written) == set(returned) == {
        "settings", "environment", "model", "run", "realisation", "overhead", "frozen_prefix", "memory",
        "targets", "wall_seconds"}


def test_settings_come_from_the_run_config_and_bench_options(result):
    _, r = result
    assert r["settings"]["repeats"] == 1 and r["settings"]["t0"] == [0.5, 0.8] and r["settings"]["threads_used"] == 1
    assert r["run"]["train_images"] == 128 and r["run"]["batch_size"] == 16 and r["run"]["epochs"] == 3
    assert r["model"]["name"] == "densenet" and r["model"]["num_groups"] == 7  # L=10 k=4
    assert r["environment"]["device"].startswith("cpu") and "git_revision" in r["environment"]


def test_realisation_runs_take_turns_and_carry_their_own_predictions(result):
    _, r = result
    runs = r["realisation"]["runs"]
    # B F F (F cached) a round: augmentation is off on Fashion-MNIST, so the cache applies
    assert [x["label"] for x in runs] == ["baseline", "t_0=0.5", "t_0=0.8", "t_0=0.5 cached"]
    assert all(x["iterations"] == 24 and _positive(x["train_seconds"]) for x in runs)
    assert runs[0]["frozen_groups"] == 0 and runs[1]["frozen_groups"] > 0
    assert runs[3]["frozen_groups"] == runs[1]["frozen_groups"]  # the cache changes speed, not the schedule
    assert runs[3]["final_val_err"] == pytest.approx(runs[1]["final_val_err"], abs=2e-3)  # nor what it learns
    assert runs[0]["predicted"]["time"] == 0.0  # the baseline measured its time model too (all start warm)
    assert [row["label"] for row in r["realisation"]["by_t0"]] == ["t_0=0.5", "t_0=0.8", "t_0=0.5 cached"]
    for row in r["realisation"]["by_t0"]:
        assert 0 < row["predicted_flops"] < 1 and row["predicted_time"] < 1  # measured by the run itself
        fo = next(x for x in runs if x["label"] == row["label"])
        assert row["predicted_time"] == fo["predicted"]["time"]
        assert row["measured_speedup"] == pytest.approx(1 - fo["train_seconds"] / runs[0]["train_seconds"])
        assert isinstance(row["pass"], bool) and math.isfinite(row["realisation_time"])
    cache = r["realisation"]["cache"]
    assert cache["speed_ratio"] == pytest.approx(runs[1]["train_seconds"] / runs[3]["train_seconds"])
    assert cache["target"] == 1.3 and isinstance(cache["pass"], bool)


def test_step_time_ratios_are_finite_and_positive(result):
    _, r = result
    for section in ("overhead", "frozen_prefix"):
        assert _positive(r[section]["ratio"]) and isinstance(r[section]["pass"], bool)
    assert r["frozen_prefix"]["frozen_groups"] == r["model"]["num_groups"] - 1


def test_memory_falls_as_groups_freeze(result):
    _, r = result
    configs = r["memory"]["configs"]
    assert [c["frozen_groups"] for c in configs] == [0, 3, 6]
    # Bytes saved by autograd are exact, not timings: freezing the prefix must shrink them, and a
    # frozen group keeps neither gradients nor optimizer state.
    acts = [c["saved_activations_mb"] for c in configs]
    assert acts[0] > acts[1] > acts[2] > 0
    grads = [c["grads_mb"] for c in configs]
    assert grads[0] > grads[1] > grads[2] > 0 and configs[0]["grads_mb"] == pytest.approx(configs[0]["params_mb"])
    assert [c["optimizer_state_mb"] for c in configs] == pytest.approx(grads)  # SGD: one momentum buffer each
    assert r["memory"]["falls"] is True and configs[0]["cuda_peak_mb"] is None


def test_every_target_carries_a_verdict(result):
    _, r = result
    assert set(r["targets"]) == {"realisation t_0=0.5", "realisation t_0=0.8", "realisation t_0=0.5 cached",
                                 "cache speed ratio", "overhead", "frozen_prefix", "memory_falls"}
    assert all(isinstance(t["pass"], bool) for t in r["targets"].values())


@pytest.mark.parametrize("args, needle", [
    (["bench.t0=[1.5]"], "bench.t0"), (["bench.repeats=0"], "bench.repeats=0"), (["bench.strategy=none"], "none"),
    (["bench.repeats=many"], "repeats"), (["t_0=fast"], "t_0"),
])
def test_cli_rejects_bad_settings_in_one_line(args, needle):
    proc = subprocess.run([sys.executable, "-m", "freezeout.bench", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0 and needle in proc.stderr and "Traceback" not in proc.stderr


def test_help_says_what_it_does_and_every_option():
    proc = subprocess.run([sys.executable, "-m", "freezeout.bench", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0
    for needle in ("realisation", "overhead", "frozen prefix", "memory", *(f"bench.{f}" for f in (
            "strategy", "t0", "repeats", "chunks", "chunk_steps", "threads", "world_size", "cache", "out"))):
        assert needle in proc.stdout


def test_the_default_run_takes_library_models_whole():
    from freezeout.bench.settings import compose_run

    cfg = compose_run(["model=torchvision", "model.name=resnet18"])  # no DenseNet key reaches it
    assert (cfg.model.name, cfg.data.subset, cfg.epochs, cfg.batch_size) == ("resnet18", 4096, 3, 64)
