"""Summaries read through RunSummary, peer strategies as methods: on hand-built run directories
with known numbers (helpers from test_analysis)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis import analyze
from test_analysis import by_dir, make_run

A100 = "cuda:0 (NVIDIA A100)"


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
    assert lf_row["strategy"] == "layer_freezing" and lf_row["measured_speedup_n"] == 2
    assert lf_row["measured_speedup_mean"] == pytest.approx(0.2)
    assert lf_row["relative_error_mean"] == pytest.approx(0.1)
    assert lf_row["predicted_speedup_flops"] == pytest.approx(0.25)
    assert math.isnan(lf_row["t_0"]) and pd.isna(lf_row["scale_lr"])
    assert json.loads(lf_row["strategy_params"]) == {"freeze_level": 1, "freeze_start": 0.5}
    late = summary.loc["layer_freezing (freeze_start=0.7, freeze_level=1)"]
    assert late["measured_speedup_n"] == 1 and late["measured_speedup_mean"] == pytest.approx(0.1)
    af_row = summary.loc["autofreeze (interval=50, percentile=50, max_per_check=1)"]
    assert af_row["measured_speedup_mean"] == pytest.approx(0.3)
    cached = summary.loc["autofreeze (interval=50, percentile=50, max_per_check=1, cache_frozen)"]
    assert cached["measured_speedup_mean"] == pytest.approx(0.4) and cached["cache_frozen"]
    assert list(result["summary"]["strategy"]) == ["none", "layer_freezing", "layer_freezing",
                                                   "autofreeze", "autofreeze"]
    runs = by_dir(result["runs"])
    assert runs["lf1"]["baseline_dir"] == "none1" and runs["afc"]["baseline_dir"] == "none0"
    assert "| layer_freezing | layer_freezing (freeze_start=0.5, freeze_level=1) |" in result["markdown"]
