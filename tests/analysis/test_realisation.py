"""The realisation (measured / time-model speedup) and training against the time model stage by
stage, through the analysis of hand-built run directories with known numbers."""
from __future__ import annotations

import json
import math

import pytest
from test_analysis import by_dir, make_run

from freezeout.analysis import analyze
from freezeout.analysis.realisation import realisation, stage_ratios


def test_realisation_and_stage_ratios_by_hand():
    assert realisation(0.25, 0.20) == pytest.approx(1.25)
    assert math.isnan(realisation(0.25, 0.0)) and math.isnan(realisation(math.nan, 0.2))
    assert stage_ratios({"0": 0.11, "2": 0.06, "5": 0.03}, {"0": 0.10, "2": 0.05}) == pytest.approx({0: 1.1, 2: 1.2})
    assert stage_ratios(None, {"0": 0.1}) == {}


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """Three seeds of a baseline (100 s) and cubic; each cubic run's time model and training's
    seconds a step by stage chosen so that every figure below is a hand computation."""
    root = tmp_path_factory.mktemp("realisation")
    cubic = [  # (seconds, time-model speedup, the time model's step seconds, training's)
        (60.0, 0.40, {"0": 0.10, "3": 0.05}, {"0": 0.10, "3": 0.06}),   # 0.40 / 0.40 = 1.00
        (70.0, 0.25, {"0": 0.10, "3": 0.05}, {"0": 0.11, "3": 0.045}),  # 0.30 / 0.25 = 1.20
        (64.0, 0.40, {"0": 0.10, "3": 0.04}, {"0": 0.09, "3": 0.05}),   # 0.36 / 0.40 = 0.90
    ]
    for seed, (seconds, predicted, model, train) in enumerate(cubic):
        make_run(root, f"b{seed}", seed=seed, seconds=100.0, summary_extra={
            "step_seconds": {"0": 0.10}, "train_step_seconds": {"0": 0.08 + 0.01 * seed}})
        make_run(root, f"c{seed}", strategy="cubic", seed=seed, seconds=seconds, time=predicted, flops=0.5,
                 summary_extra={"step_seconds": model, "train_step_seconds": train})
    make_run(root, "c3", strategy="cubic", seed=3, seconds=50.0, time=0.4, flops=0.5)  # no baseline: left out
    return analyze(root)


def test_the_realisation_run_by_run_and_over_seeds(three_seeds):
    runs = by_dir(three_seeds["runs"])
    assert [runs[f"c{s}"]["realisation"] for s in range(3)] == pytest.approx([1.0, 1.2, 0.9])
    assert math.isnan(runs["c3"]["realisation"]) and math.isnan(runs["b0"]["realisation"])
    row = three_seeds["summary"].set_index("strategy").loc["cubic"]
    assert (row["realisation_median"], row["realisation_min"], row["realisation_max"]) == pytest.approx((1.0, 0.9, 1.2))
    assert "| 1.00 [0.90–1.20] |" in three_seeds["markdown"]  # the table's column


def test_the_stage_ratios_name_the_stage_that_missed_most(three_seeds):
    rows = three_seeds["summary"].set_index("strategy")
    # stage 0: 1.0, 1.1, 0.9 -> 1.0; stage 3: 1.2, 0.9, 1.25 -> 1.2
    ratios = json.loads(rows.loc["cubic"]["stage_ratio_median"])  # summary.csv's JSON text
    assert {int(k): v for k, v in ratios.items()} == pytest.approx({0: 1.0, 3: 1.2})
    text = (three_seeds["out"] / "summary.md").read_text()
    assert "- cubic (t₀=0.8, scale_lr on), densenet / cifar10: 0: 1.00, 3: 1.20; furthest from 1: stage 3 (+20%)" in text
    # the baselines' own time models: 0.8, 0.9, 1.0 -> 0.9
    assert "- baseline (none), densenet / cifar10 (its time model: stage 0 alone): 0: 0.90;" in text
