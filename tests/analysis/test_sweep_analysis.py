"""A small real sweep through ``run.py -m``, analysed as a user would with ``freezeout analyze``."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import REPO, TINY


@pytest.mark.slow
def test_analysis_of_a_real_sweep_uses_the_runs_own_timings(tmp_path, fmnist_root):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    launch = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "-m", *TINY, "epochs=2", f"data.root={fmnist_root}",
         "strategy=cubic,none", "t_0=0.5", "seed=0,1", "predict_time=true", "predict_time_share=1", f"hydra.sweep.dir={sweep}",
         "~hydra.callbacks.analysis"],  # analysed below by the command a user types
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert launch.returncode == 0, launch.stderr[-3000:]

    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "freezeout.analysis", str(sweep), "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("runs.csv", "summary.csv", "summary.md", *(f"{p}.{ext}" for p in
                 ("envelope", "predicted_vs_measured", "val_curves") for ext in ("png", "svg"))):
        assert (out / name).stat().st_size > 0, name
    assert "| cubic |" in (out / "summary.md").read_text() and "| cubic |" in proc.stdout

    dirs = {}  # (strategy, seed) -> run directory name, read from each run's own summary
    summaries = {}
    for path in sweep.glob("run_*/summary.json"):
        s = json.loads(path.read_text())
        dirs[s["strategy"], s["seed"]] = path.parent.name
        summaries[path.parent.name] = s
    assert len(summaries) == 4 and all(s["status"] == "completed" for s in summaries.values())
    runs = pd.read_csv(out / "runs.csv").set_index("dir")
    for seed in (0, 1):
        fo, base = summaries[dirs["cubic", seed]], summaries[dirs["none", seed]]
        row = runs.loc[dirs["cubic", seed]]
        assert row["baseline_dir"] == dirs["none", seed]
        assert row["measured_speedup"] == pytest.approx(1 - fo["train_seconds"] / base["train_seconds"])
        assert row["relative_error"] == pytest.approx(
            (fo["final_val_err"] - base["final_val_err"]) / base["final_val_err"])
        assert row["predicted_speedup_time"] == pytest.approx(fo["predicted_speedup"]["time"])
    summary = pd.read_csv(out / "summary.csv")
    cubic = summary[summary["strategy"] == "cubic"].iloc[0]
    assert cubic["measured_speedup_n"] == 2
    assert cubic["measured_speedup_mean"] == pytest.approx(
        runs[runs["strategy"] == "cubic"]["measured_speedup"].mean())


@pytest.mark.slow
def test_two_sweeps_started_together_get_their_own_directories(tmp_path, fmnist_root):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    cmd = [sys.executable, str(REPO / "run.py"), "-m", *TINY, "epochs=1", "data.subset=64", "data.val_size=64",
           f"data.root={fmnist_root}", "strategy=none"]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()[-2000:]
    sweeps = sorted({s.parent for s in tmp_path.glob("multirun/*/*/run_*/summary.json")})
    assert len(sweeps) == 2  # one directory per launch, even within the same second
