"""The benchmark (``python -m freezeout.bench``) end to end on a tiny model: the structure of its
JSON, never its timings (other jobs share this machine's cores)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from freezeout import bench

TINY_BENCH = ["--model", "densenet", "--depth", "10", "--growth-rate", "4", "--data", "fashion_mnist",
              "--subset", "256", "--val-size", "500", "--batch-size", "32", "--epochs", "1", "--repeats", "1",
              "--device", "cpu", "--threads", "1", "--chunks", "2", "--chunk-steps", "2", "--stage-steps", "2"]


def _positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def result(fmnist_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    threads = torch.get_num_threads()
    try:  # --threads 1 sets torch's thread count for the whole process: give it back
        returned = bench.main([*TINY_BENCH, "--data-root", str(fmnist_root), "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    written = json.loads(out.read_text())
    return returned, written


def test_writes_the_json_it_returns(result):
    returned, written = result
    assert set(written) == set(returned) == {
        "settings", "environment", "model", "time_model", "realisation", "throughput", "overhead",
        "frozen_prefix", "memory", "compile", "targets", "wall_seconds"}
    assert written["compile"] is None  # only with --compile


def test_settings_and_provenance(result):
    _, r = result
    s = r["settings"]
    assert (s["model"], s["depth"], s["growth_rate"], s["subset"], s["batch_size"], s["epochs"], s["repeats"]) == (
        "densenet", 10, 4, 256, 32, 1, 1)
    assert s["t0"] == [0.5, 0.8] and s["iterations"] == 8 and s["threads"] == 1
    env = r["environment"]
    assert env["device"].startswith("cpu") and isinstance(env["torch"], str)
    assert "git_revision" in env and isinstance(env["versions"], dict)
    assert r["model"]["num_groups"] == 7 and r["model"]["hparams"]["depth"] == 10


def test_time_model_and_realisation(result):
    _, r = result
    tm = r["time_model"]
    assert tm["stages"][0] == 0 and all(_positive(v) for v in tm["stage_seconds"].values())
    runs = r["realisation"]["runs"]
    assert [x["label"] for x in runs] == ["baseline", "t_0=0.5", "t_0=0.8"]  # alternating: B F F, B F F, ...
    for run in runs:
        assert run["iterations"] == 8 and _positive(run["train_seconds"]) and _positive(run["images_per_second"])
    assert runs[0]["frozen_groups"] == 0 and runs[1]["frozen_groups"] > 0
    rows = r["realisation"]["by_t0"]
    assert [row["t_0"] for row in rows] == [0.5, 0.8]
    for row in rows:
        # a tiny run's measured speedup may come out at any sign: finite is all a test can ask
        for key in ("measured_speedup", "predicted_time", "predicted_flops", "realisation_time",
                    "realisation_flops"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), key
        assert 0 < row["predicted_flops"] < 1
    tp = r["throughput"]
    assert _positive(tp["baseline_images_per_second"]) and _positive(tp["freezeout_images_per_second"])
    assert tp["freezeout_t_0"] == 0.8


def test_step_time_ratios_are_finite_and_positive(result):
    _, r = result
    for section in ("overhead", "frozen_prefix"):
        assert _positive(r[section]["ratio"]) and _positive(r[section]["ratio_of_totals"]), section
        assert isinstance(r[section]["pass"], bool)
    assert _positive(r["overhead"]["harness_step_seconds"]) and _positive(r["overhead"]["bare_step_seconds"])
    assert r["frozen_prefix"]["frozen_groups"] == r["model"]["num_groups"] - 1


def test_memory_configs_are_ordered_by_frozen_count(result):
    _, r = result
    configs = r["memory"]["configs"]
    frozen = [c["frozen_groups"] for c in configs]
    assert frozen == sorted(set(frozen)) == [0, 3, 6]
    for c in configs:
        for key in ("saved_activations_mb", "params_mb", "model_total_mb", "rss_peak_mb"):
            assert _positive(c[key]), key
        assert c["cuda_peak_mb"] is None  # CPU run
    # Bytes saved by autograd are exact, not timings: freezing the prefix must shrink them.
    acts = [c["saved_activations_mb"] for c in configs]
    assert acts[0] > acts[1] > acts[2]
    assert r["memory"]["measure"] == "model_total_mb" and isinstance(r["memory"]["falls"], bool)


def test_targets_carry_pass_fail_booleans(result):
    _, r = result
    assert set(r["targets"]) == {"overhead", "frozen_prefix", "memory_falls"}
    for target in r["targets"].values():
        assert isinstance(target["pass"], bool) and isinstance(target["target"], str)


def test_cli_rejects_bad_settings(capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--t0", "1.5"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--repeats", "0"])
    assert "--t0" in capsys.readouterr().err
