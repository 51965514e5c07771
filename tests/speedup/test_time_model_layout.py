"""The time model's layouts: stages taking turns on copies of their own where they fit and no
stage builds on the one before, passes over the stages otherwise; both through real runs."""
from __future__ import annotations

import logging

import pytest
import torch
from helpers import TINY, compose_cfg

from freezeout.models.factory import build_run_model
from freezeout.training.stagetiming import choose_layout, measure_stage_seconds, turns_fit
from freezeout.training.trainer import train


def test_turns_need_every_stages_copy_to_fit_in_a_quarter_of_free_memory(fmnist_root):
    model = build_run_model(compose_cfg(*TINY, f"data.root={fmnist_root}"), torch.device("cpu"))
    assert turns_fit(model, 7, torch.device("cpu"))
    assert not turns_fit(model, 10**9, torch.device("cpu"))  # a billion copies: passes
    assert choose_layout(model, 7, torch.device("cpu"), builds_on_previous=False) == "turns"
    assert choose_layout(model, 7, torch.device("cpu"), builds_on_previous=True) == "passes"  # cache, compile
    assert choose_layout(model, 10**9, torch.device("cpu"), builds_on_previous=False) == "passes"


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="layout='rounds'; allowed: auto, turns, passes"):
        measure_stage_seconds(torch.nn.Linear(1, 1), None, None, [0], None, layout="rounds")


@pytest.mark.parametrize("overrides, layout", [([], "turns"), (["cache_frozen=true"], "passes")])
def test_a_run_measures_in_turns_unless_its_stages_build_on_each_other(fmnist_root, tmp_path, one_thread, caplog,
                                                                       overrides, layout):
    cfg = compose_cfg(*TINY, f"data.root={fmnist_root}", "strategy=cubic", "t_0=0.5", "predict_time=true",
                      "predict_time_share=1.0", "checkpoint=false", *overrides)
    with caplog.at_level(logging.INFO, logger="freezeout"):
        summary = train(cfg, tmp_path)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("time model:")]
    # 48 iterations, 7 stages: 6 steps a stage, one of them warm-up (in turns once a stage, else once a pass)
    rounds = "5 round(s) of 1 step(s)" if layout == "turns" else "1 round(s) of 5 step(s)"
    assert len(said) == 1 and f"({layout}: {rounds} a stage)" in said[0], said
    assert summary.status == "completed" and all(v > 0 for v in summary.step_seconds.values())
