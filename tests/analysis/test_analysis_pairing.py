"""Pairing on the recorded environment, seeds counted once, peer strategies as methods: on
hand-built run directories with known numbers (helpers from test_analysis)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from test_analysis import by_dir, make_run

from freezeout.analysis import analyze

A100, H100 = "cuda:0 (NVIDIA A100)", "cuda:0 (NVIDIA H100)"


def test_summary_fields_are_collected(tmp_path):
    make_run(tmp_path, "b", device_name=A100, summary_extra={"precision": "bf16", "world_size": 2})
    make_run(tmp_path, "f", strategy="cubic", seconds=80.0, device_name=A100, summary_extra={
        "precision": "bf16", "world_size": 2, "freeze_iterations": [5, 12, None],
        "const_time_prediction": "time", "iterations": 20, "num_groups": 3})
    make_run(tmp_path, "old", strategy="cubic", precision="fp16")  # no precision in its summary
    runs = by_dir(analyze(tmp_path)["runs"])
    f = runs["f"]
    assert (f["device"], f["precision"], f["world_size"]) == (A100, "bf16", 2)
    assert json.loads(f["freeze_iterations"]) == [5, 12, None]
    assert (f["const_time_prediction"], f["iterations"], f["num_groups"]) == ("time", 20, 3)
    assert f["baseline_dir"] == "b" and f["measured_speedup"] == pytest.approx(0.2)
    assert (runs["old"]["precision"], runs["old"]["world_size"]) == ("fp16", 1)  # config, default
    assert runs["b"]["precision"] == "bf16"


def test_device_mismatch_is_not_paired_and_says_why(tmp_path):
    make_run(tmp_path, "run_x", device_name=A100)
    make_run(tmp_path, "run_y", strategy="cubic", seconds=50.0, device_name=H100)
    result = analyze(tmp_path)
    y = by_dir(result["runs"])["run_y"]
    assert y["baseline_dir"] is None or pd.isna(y["baseline_dir"])
    assert math.isnan(y["measured_speedup"])
    assert y["unpaired"] == ("no baseline on the same device, precision and world size: baseline "
                             f"'run_x' ran on {A100}, this run on {H100}")
    assert "run_y: no baseline on the same device" in result["report"]
    assert f"ran on {A100}, this run on {H100}" in (result["out"] / "summary.md").read_text()
    # the two devices are two settings: a baseline's statistics never mix them
    assert set(result["summary"]["setting"]) == {f"densenet / cifar10 (device={A100})",
                                                 f"densenet / cifar10 (device={H100})"}


def test_the_matching_environment_wins_among_baselines(tmp_path):
    make_run(tmp_path, "a", seconds=100.0, device_name=A100)
    make_run(tmp_path, "b", seconds=200.0, device_name=H100)
    make_run(tmp_path, "c", strategy="cubic", seconds=150.0, device_name=H100)
    c = by_dir(analyze(tmp_path)["runs"])["c"]
    assert c["baseline_dir"] == "b" and c["measured_speedup"] == pytest.approx(0.25)


@pytest.mark.parametrize("field, base, run, text", [
    ("precision", "fp32", "bf16", "ran in fp32, this run in bf16"),
    ("world_size", 1, 4, "ran with world size 1, this run with world size 4"),
])
def test_precision_and_world_size_mismatch_are_not_paired(tmp_path, field, base, run, text):
    make_run(tmp_path, "b", summary_extra={field: base})
    make_run(tmp_path, "f", strategy="cubic", seconds=50.0, summary_extra={field: run})
    f = by_dir(analyze(tmp_path)["runs"])["f"]
    assert math.isnan(f["measured_speedup"])
    assert f["unpaired"].endswith(f"baseline 'b' {text}")


def test_precision_from_the_config_counts_too(tmp_path):
    make_run(tmp_path, "b", precision="fp32")  # summaries without a precision field
    make_run(tmp_path, "f", strategy="cubic", precision="bf16")
    assert "ran in fp32, this run in bf16" in by_dir(analyze(tmp_path)["runs"])["f"]["unpaired"]


def test_no_baseline_for_the_seed_says_which_seeds_have_one(tmp_path):
    make_run(tmp_path, "b", seed=1)
    make_run(tmp_path, "f", strategy="cubic", seed=0)
    assert by_dir(analyze(tmp_path)["runs"])["f"]["unpaired"] == (
        "no baseline (no strategy=none run with the same config and seed); "
        "this config has baselines for seed 1 only")


@pytest.fixture
def repeated(tmp_path):
    """Seed 0 of cubic run four times (a re-launch into other dirs), seed 1 once."""
    make_run(tmp_path, "b0", seed=0, seconds=100.0, err=0.20)
    make_run(tmp_path, "b1", seed=1, seconds=100.0, err=0.20)
    for i, seconds in enumerate((90.0, 10.0, 10.0, 10.0)):  # the repeats would pull the mean up
        make_run(tmp_path, f"r{i}/c0", strategy="cubic", seed=0, seconds=seconds, err=0.22)
    make_run(tmp_path, "r9/c1", strategy="cubic", seed=1, seconds=70.0, err=0.20)
    return analyze(tmp_path)


def test_a_repeated_seed_counts_once_and_is_flagged(repeated):
    row = repeated["summary"].set_index("strategy").loc["cubic"]
    assert row["n_runs"] == 5 and row["n_completed"] == 5 and row["n_seeds"] == 2
    assert row["measured_speedup_n"] == 2
    assert row["measured_speedup_mean"] == pytest.approx(0.2)  # (0.1 + 0.3) / 2: r0/c0 and r9/c1
    assert row["measured_speedup_std"] == pytest.approx(math.sqrt(0.02))
    assert row["relative_error_mean"] == pytest.approx(0.05)
    flag = "seed 0 appears 4 times (r0/c0, r1/c0, r2/c0, r3/c0); statistics use r0/c0"
    assert flag in row["repeated_seeds"] and flag in repeated["report"]
    assert flag in (repeated["out"] / "summary.md").read_text()
    assert "| 2 (of 5 runs; seed 0 ×4) |" in repeated["markdown"]
    runs = by_dir(repeated["runs"])
    assert runs["r2/c0"]["repeat_of"] == "r0/c0" and pd.isna(runs["r0/c0"]["repeat_of"])
    assert runs["r2/c0"]["measured_speedup"] == pytest.approx(0.9)  # still paired, per run


def test_peer_strategy_is_its_own_method_paired_with_the_baseline(tmp_path):
    lf = {"freeze_start": 0.5, "freeze_level": 1.0}
    af = {"interval": 50, "percentile": 50, "max_per_check": 1}
    for seed, base_s in ((0, 100.0), (1, 200.0)):
        make_run(tmp_path, f"none{seed}", seed=seed, seconds=base_s, err=0.20)
        make_run(tmp_path, f"lf{seed}", strategy="layer_freezing", seed=seed, seconds=base_s * 0.8,
                 err=0.22, flops=0.25, strategy_params=lf,
                 summary_extra={"freeze_iterations": [8, None]})
    make_run(tmp_path, "lf_late", strategy="layer_freezing", seconds=90.0, err=0.20,
             strategy_params={**lf, "freeze_start": 0.7})
    make_run(tmp_path, "af", strategy="autofreeze", seconds=70.0, err=0.24, strategy_params=af,
             t_0=0.5, scale_lr=False)  # t_0 and scale_lr mean nothing to a peer
    make_run(tmp_path, "afc", strategy="autofreeze", seconds=60.0, err=0.24, strategy_params=af,
             cache_frozen=True)
    result = analyze(tmp_path)
    summary = result["summary"].set_index("method")
    lf_row = summary.loc["layer_freezing (freeze_start=0.5, freeze_level=1)"]
    assert lf_row["strategy"] == "layer_freezing" and lf_row["n_seeds"] == 2
    assert lf_row["measured_speedup_mean"] == pytest.approx(0.2)
    assert lf_row["relative_error_mean"] == pytest.approx(0.1)
    assert lf_row["predicted_speedup_flops"] == pytest.approx(0.25)
    assert math.isnan(lf_row["t_0"]) and pd.isna(lf_row["scale_lr"])
    assert json.loads(lf_row["strategy_params"]) == {"freeze_level": 1, "freeze_start": 0.5}
    late = summary.loc["layer_freezing (freeze_start=0.7, freeze_level=1)"]
    assert late["n_seeds"] == 1 and late["measured_speedup_mean"] == pytest.approx(0.1)
    af_row = summary.loc["autofreeze (interval=50, percentile=50, max_per_check=1)"]
    assert af_row["measured_speedup_mean"] == pytest.approx(0.3)
    cached = summary.loc["autofreeze (interval=50, percentile=50, max_per_check=1, cache_frozen)"]
    assert cached["measured_speedup_mean"] == pytest.approx(0.4) and cached["cache_frozen"]
    assert list(result["summary"]["strategy"]) == ["none", "layer_freezing", "layer_freezing",
                                                   "autofreeze", "autofreeze"]
    runs = by_dir(result["runs"])
    assert runs["lf1"]["baseline_dir"] == "none1" and runs["afc"]["baseline_dir"] == "none0"
    assert math.isnan(runs["af"]["t_0"]) and pd.isna(runs["af"]["scale_lr"])  # meant nothing
    assert json.loads(runs["lf0"]["freeze_iterations"]) == [8, None]
    assert "| layer_freezing | layer_freezing (freeze_start=0.5, freeze_level=1) |" in result["markdown"]


def test_a_run_killed_before_its_summary_joins_its_setting(tmp_path):
    make_run(tmp_path, "b", device_name=A100)
    make_run(tmp_path, "k", strategy="cubic", summary=False)  # no summary: device unknown
    runs = by_dir(analyze(tmp_path)["runs"])
    assert runs["k"]["setting"] == runs["b"]["setting"] == "densenet / cifar10"
    assert runs["k"]["baseline_dir"] == "b" and math.isnan(runs["k"]["measured_speedup"])
