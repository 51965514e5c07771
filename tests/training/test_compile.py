"""compile=true on a quickstart-like run (a tiny DenseNet on Fashion-MNIST, cubic t_0=0.5: groups
freeze, evaluation runs every epoch, the time model's copies train first): dynamo compiles at most
two graphs a layer group (its training form and its frozen form, which evaluation shares), counted
by dynamo itself and recorded in summary.json with their seconds; the compiled run trains as the
eager one does. A recompile limit that is hit is logged; the CPU warns once. The ``eager`` backend
keeps it fast: dynamo's graphs and guards are what is counted, the compiler is not involved."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers import TINY, compose_cfg
from torch import nn
from torch._dynamo.utils import counters

from freezeout.config import register_configs
from freezeout.models.base import GroupedModel
from freezeout.speedup.timemodel import Measured, speedup_with_compile
from freezeout.training import compiling
from freezeout.training.compiling import CompileLog, compile_groups
from freezeout.training.step import TrainStep
from freezeout.training.trainer import train

register_configs()
RUN = [*TINY, "strategy=cubic", "t_0=0.5", "epochs=2", "predict_time=true", "predict_time_share=1.0"]




@pytest.fixture(scope="module")
def runs(fmnist_root, tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("compile")
    torch._dynamo.reset()
    before = counters["stats"]["unique_graphs"]
    compiled = train(compose_cfg(*RUN, f"data.root={fmnist_root}", "compile=true", "compile_backend=eager"),
                     root / "compiled")
    graphs = counters["stats"]["unique_graphs"] - before
    eager = train(compose_cfg(*RUN, f"data.root={fmnist_root}"), root / "eager")
    return compiled, graphs, eager, root


def test_at_most_two_graphs_a_layer_group_in_a_run(runs):
    compiled, graphs, _, _ = runs
    assert compiled.status == "completed" and compiled.frozen_groups == compiled.num_groups - 1
    # The time model's copies, 6 freezing events and 2 evaluations, all in this count:
    assert 0 < graphs <= 2 * compiled.num_groups


def test_the_compilations_are_recorded_with_their_seconds(runs):
    compiled, graphs, _, root = runs
    record = compiled.compile
    assert record == json.loads((root / "compiled" / "summary.json").read_text())["compile"]
    assert record["backend"] == "eager" and record["graphs"] == graphs and record["max_per_group"] == 2
    assert record["by_group"] == {str(i): {"train": 1, "frozen": 1} for i in range(compiled.num_groups)}
    assert record["recompile_limit_hits"] == 0 and record["seconds"] > 0
    by_stage = record["time_model"]["seconds_by_stage"]
    assert set(by_stage) == set(compiled.step_seconds) and by_stage["0"] > 0  # the time model compiled them
    assert record["time_model"]["predicted_speedup_with_compile"] < compiled.predicted_speedup["time"]
    # Each group past the first ran eager while it was the first training group (its input no longer
    # required grad), instead of a third graph.
    assert set(record["eager_calls"]) == {str(i) for i in range(1, compiled.num_groups)}


def test_the_compiled_run_trains_as_the_eager_one(runs):
    compiled, _, eager, root = runs
    assert eager.compile is None and compiled.freeze_iterations == eager.freeze_iterations
    def lines(run):  # every figure but the times and memory
        return [{k: v for k, v in json.loads(x).items() if not k.endswith("_seconds") and k != "peak_memory_mb"}
                for x in (root / run / "metrics.jsonl").read_text().splitlines()]
    for a, b in zip(lines("compiled"), lines("eager"), strict=True):
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6) for k in a)


class _Two(GroupedModel):
    """A model of its own class, so that its forms are compiled afresh whatever ran before."""

    def __init__(self):
        super().__init__()
        self.groups = nn.ModuleList([nn.Conv2d(1, 4, 3, padding=1), nn.Sequential(nn.Flatten(), nn.LazyLinear(3))])


def test_a_recompile_limit_that_is_hit_is_logged(caplog, one_thread):
    model = _Two()
    model(torch.zeros(2, 1, 8, 8))  # the lazy layer takes its shape
    compile_log = CompileLog("eager")
    compile_groups(model, compile_log)
    with torch._dynamo.config.patch(recompile_limit=1), caplog.at_level(logging.WARNING, logger="freezeout"):
        model.groups[0](torch.randn(32, 1, 8, 8))
        model.groups[0](torch.randn(32, 1, 6, 6))  # another image size: a recompile, over the limit of 1
    assert compile_log.record()["recompile_limit_hits"] == 1
    assert "compile: torch._dynamo hit config.recompile_limit (1)" in caplog.text


def test_compile_on_the_cpu_warns_once(caplog, monkeypatch, one_thread):
    monkeypatch.setattr(compiling, "_WARNED_CPU", [False])
    with caplog.at_level(logging.WARNING, logger="freezeout"):
        for _ in range(2):
            model = _Two()
            model(torch.zeros(2, 1, 8, 8))
            TrainStep(model, torch.optim.SGD(model.parameters(), lr=0.1), compile_model=True)
    assert sum("compile=true on the CPU" in r.getMessage() for r in caplog.records) == 1


def test_the_time_model_counts_compile_seconds_against_a_baseline_that_compiles_its_training_forms():
    # Two groups, the first frozen at half the run: 1 s a step, then 0.5 s; 100 steps. Compiling
    # took 10 s at the start (the training forms, which a baseline compiles too) and 5 s at the freeze.
    measured = Measured({0: 1.0, 1: 0.5}, {0: 0.0, 1: 0.0}, {0: 10.0, 1: 5.0})
    assert speedup_with_compile(measured, (0.5, 1.0), 100) == pytest.approx(1 - (75 + 15) / (100 + 10))
    assert speedup_with_compile(Measured({0: 1.0, 1: 0.5}, {0: 0.0, 1: 0.0}), (0.5, 1.0), 100) is None
