"""The input-aware time model (freezeout/speedup/inputmodel.py): each stage's step predicted as the
larger of its computation and the loader's time for a batch; the stage from which a run is
input-bound and the most FreezeOut can then save; measured for a real streamed run and kept in
its summary beside the data wait it met."""
from __future__ import annotations

import json
import math

import pytest
from test_data_stream import RUN, compose_cfg, jpegs  # noqa: F401 (the folder fixture)

from freezeout.models.report import GroupRow, format_report
from freezeout.speedup.formulas import time_speedup
from freezeout.speedup.inputmodel import LoaderTiming, describe, input_aware, input_bound
from freezeout.speedup.timemodel import time_model_budget
from freezeout.training.trainer import train

COMPUTE = {0: 0.10, 1: 0.08, 2: 0.05, 3: 0.03}  # seconds a step by frozen groups
TIMES = (0.25, 0.5, 0.75, 1.0)


def test_input_bound_stage_and_the_most_freezing_can_save():
    assert input_bound(COMPUTE, 0.06) == {"input_bound_from": 2, "max_saving": pytest.approx(0.4)}
    assert input_bound(COMPUTE, 0.10) == {"input_bound_from": 0, "max_saving": 0.0}  # the loader bounds it all
    assert input_bound(COMPUTE, 0.01) == {"input_bound_from": None, "max_saving": None}  # compute-bound
    line = describe({**input_bound(COMPUTE, 0.06), "input_aware_speedup": 0.2, "compute_only_speedup": 0.4})
    assert line == "input-bound from stage 2 (2 groups frozen): at most 40% saved (this schedule: 20.0% predicted, " \
                   "40.0% if the input kept up)"


def test_the_groups_table_marks_the_group_whose_freezing_makes_the_run_input_bound():
    rows = [GroupRow(i, f"g{i}", 10, 0.25, t) for i, t in enumerate(TIMES)]
    table = format_report(rows, input_bound_from=2).splitlines()
    assert table[2].startswith("  1  g1") and table[2].endswith("<- input-bound once frozen: freezing later groups "
                                                                  "saves no time")
    assert sum("input-bound" in line for line in table) == 1
    assert "before any group freezes" in format_report(rows, input_bound_from=0)
    assert "input-bound" not in format_report(rows)


def test_an_input_bound_stage_saves_nothing_more():
    aware = input_aware(COMPUTE, 0.06)
    assert aware == {0: 0.10, 1: 0.08, 2: 0.06, 3: 0.06}
    assert input_aware(COMPUTE, 0.06, overlapped=False) == {k: v + 0.06 for k, v in COMPUTE.items()}  # workers=0
    # each epoch's first batch waited for, spread over its steps: every stage alike, so less is saved
    restarted = input_aware(COMPUTE, 0.06, restart=0.02)
    assert restarted == pytest.approx({0: 0.12, 1: 0.10, 2: 0.08, 3: 0.08})
    assert time_speedup(restarted, TIMES) == pytest.approx(1 - (0.12 + 0.10 + 0.08 + 0.08) / 4 / 0.12)
    # stages a quarter of training each: 0.1, 0.08, then the loader's 0.06 twice, against 0.1
    assert time_speedup(aware, TIMES) == pytest.approx(1 - (0.10 + 0.08 + 0.06 + 0.06) / 4 / 0.10)
    assert time_speedup(aware, TIMES) < time_speedup(COMPUTE, TIMES)  # what a compute-only model promises


def test_a_streamed_run_measures_its_loader_and_predicts_with_it(jpegs, tmp_path, one_thread):  # noqa: F811
    cfg = compose_cfg(*RUN, f"data.root={jpegs}", "epochs=10", "predict_time=true", "predict_time_share=1.0",
                      "data.workers=1")
    summary = train(cfg, tmp_path)
    info = summary.input
    assert summary.status == "completed" and info["loader"] == "stream" and info["workers"] == 1
    per_step, compute = info["input_seconds_per_step"], info["compute_step_seconds"]
    assert info["loader_images_per_second"] == pytest.approx(32 / per_step)
    restart = info["epoch_start_seconds"] / (192 // 32)  # each epoch's first batch, spread over its 6 steps
    assert info["epoch_start_seconds"] > 0
    assert summary.step_seconds == pytest.approx({k: max(v, per_step) + restart for k, v in compute.items()})
    assert summary.predicted_speedup["time"] == pytest.approx(info["input_aware_speedup"])
    assert info["input_aware_speedup"] <= info["compute_only_speedup"] + 1e-12
    assert {k: info[k] for k in ("input_bound_from", "max_saving")} == \
        input_bound({int(k): v for k, v in compute.items()}, per_step)
    waits = info["data_wait_by_stage"]  # and what training met, stage by stage
    assert sum(w["steps"] for w in waits.values()) == 60 and all(w["seconds"] > 0 for w in waits.values())
    # the loader was timed once after each round of the stages taking turns
    assert info["loader_windows"] == time_model_budget(len(compute), 60, 1.0, "turns")["chunks"] > 1


def test_the_loader_rate_is_pooled_over_its_windows_by_hand():
    timing = LoaderTiming(None, 0, 32, (0, 1))
    assert timing.result() is None  # nothing timed yet: measure_input times the loader itself
    timing.windows = [(100.0, 0.2), (50.0, 0.4), (math.inf, 0.1)]  # a window whose epoch ran out: no rate
    rate, first_batch = timing.result()
    assert rate == pytest.approx(2 / (1 / 100 + 1 / 50)) and first_batch == 0.2  # 66.7 images/s; the median wait


def test_the_input_benchmark_takes_its_settings_apart():
    from freezeout.bench.input import parse
    from freezeout.errors import ConfigError

    s, overrides = parse(["data.root=/x", "bench.workers=[0,2]", "bench.repeats=2", "epochs=1"])
    assert (s.workers, s.repeats, overrides) == ([0, 2], 2, ["data.root=/x", "epochs=1"])
    with pytest.raises(ConfigError, match="bench.t0=1.0: need a value in"):
        parse(["bench.t0=1.0"])
    with pytest.raises(ConfigError, match="bench.turns='halves'; allowed: epoch, none"):
        parse(["bench.turns=halves"])


def test_the_input_benchmark_trains_a_round_taking_turns_an_epoch_at_a_time(jpegs, tmp_path, one_thread):  # noqa: F811
    from freezeout.bench.input import main

    out = tmp_path / "input.json"
    got = main([f"data.root={jpegs}", *RUN[1:], "epochs=10", "data.subset=null", "bench.workers=[1]",
                "bench.repeats=2", "bench.t0=0.5", "bench.turns=epoch", f"bench.out={out}"])
    assert json.loads(out.read_text())["by_workers"] == got["by_workers"]
    first, second = got["by_workers"][0]["rounds"]
    # 10 epochs of 6 steps; the turns change hands at the end of each epoch, in order and then in
    # reverse, each round starting with the other run
    assert first["turns"][:6] == ["baseline:1", "freezeout:1", "freezeout:2", "baseline:2", "baseline:3", "freezeout:3"]
    assert second["turns"][:4] == ["freezeout:1", "baseline:1", "baseline:2", "freezeout:2"]
    assert len(first["turns"]) == len(second["turns"]) == 20
    for r in (first, second):
        assert r["measured"] == pytest.approx(1 - r["seconds"]["freezeout"] / r["seconds"]["baseline"])
        assert r["input_aware"] <= r["compute_only"] + 1e-12  # tiny images: the loader may bound it all
        # each stage trained through: the time model's step beside training's own, in seconds
        assert r["stages"]["baseline"].keys() == {"0"}
        stages = r["stages"]["freezeout"]
        assert len(stages) > 1 and all(p is not None and p > 0 and t > 0 for p, t in stages.values())
