"""A sweep whose model cannot learn at its learning rate: every run is flagged at chance in its log
and summary.json, and the analysis gives no region verdict against such a baseline (real runs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO

from freezeout.analysis import analyze
from freezeout.analysis.loadgap import NOT_IN_TURNS
from freezeout.rundir.sanity import OK

RUN = ["data=fashion_mnist", "data.subset=256", "data.val_size=200", "model=densenet", "model.depth=10",
       "model.growth_rate=4", "epochs=2", "batch_size=32", "device=cpu", "progress=false"]


def _env() -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    return env


@pytest.fixture(scope="module")
def at_chance(tmp_path_factory, fmnist_root):
    """Baseline and cubic on two seeds at lr 1e-6 (nothing moves), with the default launcher."""
    sweep = tmp_path_factory.mktemp("chance") / "sweep"
    launch = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "-m", *RUN, f"data.root={fmnist_root}", "strategy=none,cubic",
         "t_0=0.5", "seed=0,1", "optimizer.lr=1e-6", f"hydra.sweep.dir={sweep}", "~hydra.callbacks.analysis"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert launch.returncode == 0, launch.stderr[-3000:]
    return sweep, launch.stdout + launch.stderr


@pytest.mark.slow
def test_a_run_at_chance_is_flagged_in_its_log_and_summary(at_chance):
    sweep, output = at_chance
    runs = sorted(sweep.glob("run_*"))
    assert len(runs) == 4
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["num_classes"] == 10
        assert summary["sanity"].startswith("at chance: ") and "optimizer.lr" in summary["sanity"]
        log = (run / "run.log").read_text().splitlines()
        flagged = [line for line in log if "at chance: " in line]
        assert len(flagged) == 1 and summary["sanity"] in flagged[0]  # one warning line, the same reason
        # the time model was off: the record says so, and the last line names the prediction it gives
        assert summary["time_model"]["skipped"] == "predict_time=false"
        assert "(predicted speedup" in log[-1] and "flops; no time model" in log[-1]
    assert output.count("at chance: ") == 4


@pytest.mark.slow
def test_no_region_verdict_against_a_baseline_at_chance(at_chance, tmp_path):
    sweep, _ = at_chance
    result = analyze(sweep, tmp_path / "report")
    runs = result["runs"].set_index("strategy")
    assert runs["sanity"].str.startswith("at chance: ").all()  # every run, FreezeOut's too
    cubic = runs.loc["cubic"]
    assert cubic["baseline_sanity"].str.startswith("at chance: ").all()
    summary = result["summary"].set_index("strategy")
    # two seeds give intervals, so a verdict would exist: it is withheld, and why is said
    assert pd.notna(summary.loc["cubic", "measured_speedup_lo"])
    assert pd.isna(summary.loc["cubic", "paper_region"]) or summary.loc["cubic", "paper_region"] == ""
    assert summary.loc["cubic", "region_note"].startswith("no verdict: ")
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "no verdict: baseline at chance" in md
    for verdict in ("| inside |", "| beyond |", "| outside |", "| undecided |"):
        assert verdict not in md
    assert "never learned" in result["report"] and "never learned" in md
    # the plateau check: flat because it never learned, not "enough"
    flat = [line for line in md.splitlines() if "final best for the last" in line]
    assert len(flat) == 1 and "not trained" in flat[0] and "enough" not in flat[0]
    # the default launcher ran them one after another: the speedups are flagged as not timed fairly
    assert list(cubic["load_unequal"]) == [True, True]
    assert all(NOT_IN_TURNS in note for note in cubic["load_note"])
    assert NOT_IN_TURNS in md


@pytest.mark.slow
def test_a_run_that_learns_is_not_flagged(tmp_path, fmnist_root):
    run_dir = tmp_path / "run"
    launch = subprocess.run(
        [sys.executable, str(REPO / "run.py"), *RUN, "data.subset=512", "epochs=3", f"data.root={fmnist_root}",
         "strategy=none", f"hydra.run.dir={run_dir}"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert launch.returncode == 0, launch.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["sanity"] == OK, summary["sanity"]
    assert summary["final_val_err"] < 0.85
    assert "at chance" not in (run_dir / "run.log").read_text()
