"""Pairing and aggregation on hand-built run directories (helpers from test_analysis): killed
baselines that recorded no device, completed baselines that recorded no world size, the first
baseline by path in numeric order, and seeds counted only where they were paired."""
from __future__ import annotations

import json
import math

import pytest
from test_analysis import make_run

from freezeout.analysis.aggregate import add_settings, aggregate, stats
from freezeout.analysis.collect import collect_runs
from freezeout.analysis.pairing import measured_speedup, pair_runs, relative_error

A100, H100 = "cuda:0 (NVIDIA A100)", "cuda:0 (NVIDIA H100)"


def runs_of(root) -> dict[str, dict]:
    return {r["dir"]: r for r in add_settings(pair_runs(collect_runs(root)))}


def rows_of(root) -> dict[str, dict]:
    return {row["method"]: row for row in aggregate(list(runs_of(root).values()))}


def test_a_killed_baseline_that_recorded_no_device_is_the_reason_given(tmp_path):
    make_run(tmp_path, "base", summary=False)  # killed before its summary: no device, no status
    make_run(tmp_path, "run", strategy="cubic", seconds=50.0, device_name=A100)
    run = runs_of(tmp_path)["run"]
    assert run["unpaired"] == "baseline not completed: base (incomplete)"
    assert run["baseline_dir"] is None and math.isnan(run["measured_speedup"])
    make_run(tmp_path, "base2", status="running", device_name=None)  # killed after it: device still unknown
    assert runs_of(tmp_path)["run"]["unpaired"] == "baseline not completed: base (incomplete), base2 (running)"


def test_a_completed_baseline_that_recorded_no_world_size_pairs(tmp_path):
    base = make_run(tmp_path, "base", seconds=100.0)
    assert "world_size" not in json.loads((base / "summary.json").read_text())  # as older runs wrote it
    make_run(tmp_path, "one", strategy="cubic", seconds=60.0, summary_extra={"world_size": 1})
    make_run(tmp_path, "two", strategy="linear", seconds=60.0, summary_extra={"world_size": 2})
    runs = runs_of(tmp_path)
    assert runs["base"]["world_size"] == 1
    assert runs["one"]["baseline_dir"] == "base" and runs["one"]["measured_speedup"] == pytest.approx(0.4)
    assert runs["two"]["unpaired"] == ("no baseline on the same device, precision and world size: baseline "
                                       "'base' ran with world size 1, this run with world size 2")


def test_the_first_baseline_by_path_counts_numbers_as_numbers(tmp_path):
    make_run(tmp_path, "10", seconds=50.0)
    make_run(tmp_path, "9", seconds=100.0)
    make_run(tmp_path, "11", strategy="cubic", seconds=80.0, status="failed", error="boom")
    make_run(tmp_path, "12", strategy="cubic", seconds=80.0)
    runs = runs_of(tmp_path)
    assert runs["12"]["baseline_dir"] == "9" and runs["12"]["duplicate_baselines"] == "10"
    assert runs["12"]["measured_speedup"] == pytest.approx(0.2)
    assert runs["11"]["baseline_dir"] == "9" and math.isnan(runs["11"]["measured_speedup"])  # paired, no speedup
    assert runs["11"]["unpaired"] is None and math.isnan(runs["11"]["relative_error"])


def test_seeds_are_counted_where_they_were_paired(tmp_path):
    for seed in (0, 1):
        make_run(tmp_path, f"none{seed}", seed=seed, seconds=100.0, err=0.2)
    for seed, seconds in ((0, 80.0), (1, 60.0), (2, 10.0)):  # seed 2 has no baseline
        make_run(tmp_path, f"cubic{seed}", strategy="cubic", seed=seed, seconds=seconds, err=0.3)
    make_run(tmp_path, "cubic0-again", strategy="cubic", seed=0, seconds=1.0, err=0.3)  # a repeat
    rows = rows_of(tmp_path)
    cubic = next(row for method, row in rows.items() if method.startswith("cubic"))
    assert (cubic["n_runs"], cubic["n_completed"], cubic["n_seeds"]) == (4, 4, 2)
    assert cubic["measured_speedup_n"] == 2 and cubic["measured_speedup_mean"] == pytest.approx(0.3)
    assert cubic["relative_error_mean"] == pytest.approx(0.5)
    assert cubic["train_seconds_mean"] == pytest.approx(50.0)  # seeds 0, 1, 2 once each
    assert cubic["repeated_seeds"].startswith("seed 0 appears 2 times (cubic0, cubic0-again)")
    baseline = rows["baseline (none)"]
    assert (baseline["n_seeds"], baseline["baseline_val_err_mean"]) == (2, pytest.approx(0.2))


def test_a_killed_run_joins_its_setting_only_when_the_devices_agree(tmp_path):
    make_run(tmp_path, "a", device_name=A100, seed=0)
    make_run(tmp_path, "b", device_name=H100, seed=1)
    make_run(tmp_path, "k", strategy="cubic", summary=False)
    runs = runs_of(tmp_path)
    assert runs["k"]["setting"] not in (runs["a"]["setting"], runs["b"]["setting"])
    assert runs["a"]["setting"] != runs["b"]["setting"]


def test_speedup_and_error_formulas_at_their_edges():
    assert measured_speedup(150.0, 100.0) == pytest.approx(-0.5)  # slower than the baseline
    assert math.isnan(measured_speedup(50.0, 0.0)) and math.isnan(measured_speedup(math.nan, 100.0))
    assert math.isnan(measured_speedup(50.0, math.nan))
    assert relative_error(0.1, 0.2) == pytest.approx(-0.5) and math.isnan(relative_error(0.1, 0.0))
    assert math.isnan(relative_error(math.nan, 0.2))
    mean, std, n = stats([1.0, None, math.nan, 3.0])
    assert (mean, std, n) == (2.0, pytest.approx(math.sqrt(2)), 2)
    assert math.isnan(stats([5.0])[1]) and math.isnan(stats([])[0])
