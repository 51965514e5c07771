"""What a run's time model stands on (summary.json's ``time_model``): the load it measured under, or
why it was skipped; the run's last log line naming the prediction it gives; and the analysis
repeating both (no realisation from a time model measured under another load; the skip's reason
instead of a guess). Real tiny runs."""
from __future__ import annotations

import json
import logging
import math
import shutil

import pytest
from helpers import TINY, compose_cfg

from freezeout.analysis import analyze
from freezeout.analysis.loadgap import TOLERANCE
from freezeout.training.trainer import train

SHORT = "predict_time_share=0.01"  # 48 iterations: 0 a stage, too few to measure anything


def _run(root, name, *overrides):
    return train(compose_cfg(*TINY, f"data.root={root}", "checkpoint=false", "predict_time=true", *overrides),
                 name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fmnist_root, one_thread):
    """A baseline and cubic with their time models measured, and cubic whose time model was
    skipped (too short a run for its share); each with its last log line."""
    root = tmp_path_factory.mktemp("tm")
    lines = {}

    class Last(logging.Handler):
        def emit(self, record):
            lines[current] = record.getMessage()

    handler, logger = Last(), logging.getLogger("freezeout")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # the run's last line is an info line
    try:
        for current, overrides in (("base", ["strategy=none", "predict_time_share=1.0"]),
                                   ("cubic", ["strategy=cubic", "t_0=0.5", "predict_time_share=1.0"]),
                                   ("short", ["strategy=cubic", "t_0=0.5", SHORT])):
            _run(fmnist_root, root / current, *overrides)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return root, lines


def _summary(path):
    return json.loads((path / "summary.json").read_text())


def test_the_time_model_records_its_load_or_why_it_was_skipped(runs):
    root, last = runs
    measured, short = _summary(root / "cubic"), _summary(root / "short")
    tm = measured["time_model"]
    assert tm["skipped"] is None and tm["load"]["wall_seconds"] > 0
    assert 0 <= tm["load"]["others_cpu_share"] <= 1 and tm["load"]["machine_cpus"] >= 1
    assert tm["busy"] is None or tm["busy"].startswith("measured while other processes used")
    assert short["time_model"]["load"] is None and short["predicted_speedup"]["time"] is None
    assert short["time_model"]["skipped"] == ("measuring its 7 stages would cost more than predict_time_share=0.01 "
                                              "of the run's 48 iterations (raise predict_time_share, or train longer)")
    # the last log line gives the time model's prediction when there is one, else the FLOPs', labelled
    assert last["cubic"].endswith(f"(predicted speedup {100 * measured['predicted_speedup']['time']:.1f}%, time model)")
    assert last["short"].endswith(f"(predicted speedup {100 * short['predicted_speedup']['flops']:.1f}%, "
                                  "flops; no time model)")


def test_no_realisation_from_a_time_model_measured_under_another_load(runs, tmp_path):
    root, _ = runs
    for name in ("base", "cubic"):
        shutil.copytree(root / name, tmp_path / "sweep" / name)
    result = analyze(tmp_path / "sweep", tmp_path / "out")
    cubic = result["runs"].set_index("dir").loc["cubic"]
    s = _summary(root / "cubic")
    gap = s["time_model"]["load"]["others_cpu_share"] - s["load"]["others_cpu_share"]
    if abs(gap) > TOLERANCE:  # this machine is shared: the real loads may differ already
        assert cubic["realisation_note"].endswith(": no realisation") and math.isnan(cubic["realisation"])
    else:
        assert not isinstance(cubic["realisation_note"], str) or cubic["realisation_note"] == ""
        assert cubic["realisation"] == pytest.approx(cubic["measured_speedup"] / s["predicted_speedup"]["time"])

    # the same real records, the time model's load now unlike training's by half the machine
    path = tmp_path / "sweep" / "cubic" / "summary.json"
    trained = s["load"]["others_cpu_share"]
    s["time_model"]["load"]["others_cpu_share"] = measured = trained + 0.5 if trained < 0.5 else trained - 0.5
    path.write_text(json.dumps(s))
    result = analyze(tmp_path / "sweep", tmp_path / "out2")
    cubic = result["runs"].set_index("dir").loc["cubic"]
    assert math.isnan(cubic["realisation"]) and cubic["stage_ratios"] == "{}"
    assert cubic["realisation_note"] == (f"other work took {100 * measured:.0f}% of the machine while its time model "
                                         f"measured, {100 * trained:.0f}% while it trained: no realisation")
    assert f"cubic: {cubic['realisation_note']}" in result["report"]
    assert f"cubic: {cubic['realisation_note']}" in (tmp_path / "out2" / "summary.md").read_text()
    row = result["summary"].set_index("strategy").loc["cubic"]
    assert row["realisation_n"] == 0


def test_the_analysis_repeats_why_the_time_model_was_skipped(runs, tmp_path):
    root, _ = runs
    for name in ("base", "short"):
        shutil.copytree(root / name, tmp_path / "sweep" / name)
    result = analyze(tmp_path / "sweep", tmp_path / "out")
    reason = _summary(root / "short")["time_model"]["skipped"]
    assert result["runs"].set_index("dir").loc["short", "time_model_skipped"] == reason
    assert f"predicted_vs_measured: no time prediction in any run: {reason} (1 run)" in result["skipped"]
    assert "predict_time off?" not in result["report"]
    assert f"time model skipped in 1 run(s) (short): {reason}" in result["report"]


def test_a_time_model_measured_beside_busy_processes_says_so(fmnist_root, tmp_path, one_thread, caplog):
    """Two processes spinning beside the run (started and stopped here by pid): the time model's
    load shows them, and the run warns that its seconds may be off."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        with caplog.at_level(logging.WARNING, logger="freezeout"):
            summary = _run(fmnist_root, tmp_path / "busy", "strategy=cubic", "t_0=0.5", "epochs=2",
                           "predict_time_share=1.0")
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
    tm = summary.time_model
    assert tm["load"]["others_cpu_share"] > 0.25
    assert tm["busy"] == (f"measured while other processes used {100 * tm['load']['others_cpu_share']:.0f}% of "
                          "the CPUs: seconds may be off")
    assert f"time model {tm['busy']}" in caplog.messages
