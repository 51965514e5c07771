"""The analysis package on hand-built run directories with known numbers."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from freezeout.analysis import analyze, measured_speedup, pair_key, relative_error
from freezeout.analysis.callback import AnalysisCallback
from freezeout.analysis.plots import pareto_front

REPO = Path(__file__).resolve().parents[2]


def make_config(strategy="none", t_0=0.8, seed=0, lr=0.1, scale_lr=True, const_time=False,
                strategy_params=None, **extra) -> dict:
    cfg = {
        "model": {"name": "densenet", "depth": 40, "growth_rate": 12},
        "strategy": {"name": strategy, **(strategy_params or {})},
        "data": {"name": "cifar10", "root": "/data", "subset": None, "val_size": 5000,
                 "augment": True, "download": False},
        "t_0": t_0, "scale_lr": scale_lr, "const_time": const_time, "epochs": 2,
        "batch_size": 64, "lr": lr, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4,
        "seed": seed, "device": "cpu", "eval_test": False, "predict_time": False,
        "precision": "fp32", "channels_last": False, "compile": False, "log_every": 10,
        "checkpoint": True, "progress": False, "debug": False,
    }
    cfg.update(extra)
    return cfg


def make_run(root: Path, name: str, *, strategy="none", t_0=0.8, seed=0, seconds=100.0,
             err=0.2, status="completed", error=None, summary=True, flops=None, time=None,
             curve=True, device_name="cpu", summary_extra=None, **cfg_kw) -> Path:
    """A run directory as the trainer writes it: .hydra/, metrics.jsonl, summary.json
    (``summary_extra`` overrides or adds summary fields)."""
    cfg = make_config(strategy, t_0, seed, **cfg_kw)
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"strategy={strategy}"]))
    if curve:
        with open(d / "metrics.jsonl", "w") as f:
            for epoch in (1, 2):
                f.write(json.dumps({"epoch": epoch, "iteration": 10 * epoch, "train_loss": 1.0,
                                    "val_loss": 1.0, "val_err": err + (2 - epoch) * 0.1,
                                    "frozen_groups": 0, "train_seconds": seconds * epoch / 2,
                                    "epoch_seconds": seconds / 2, "eval_seconds": 1.0,
                                    "lr": 0.1, "peak_memory_mb": None}) + "\n")
    if summary:
        s = {"status": status, "error": error, "strategy": strategy, "t_0": t_0,
             "scale_lr": cfg["scale_lr"], "const_time": cfg["const_time"], "seed": seed,
             "model": dict(cfg["model"]), "data": dict(cfg["data"]), "epochs": 2,
             "batch_size": 64, "lr": cfg["lr"], "iterations": 20, "iterations_done": 20,
             "iterations_per_epoch": 10, "num_groups": 5,
             "predicted_speedup": {"flops": flops, "paper": None, "time": time},
             "train_seconds": seconds, "eval_seconds": 2.0,
             "final_val_err": err if status == "completed" else None,
             "best_val_err": err if status == "completed" else None, "test_err": None,
             "num_params": 1000, "device": device_name, "versions": {}, "git_revision": "abc",
             "config": cfg, **(summary_extra or {})}
        (d / "summary.json").write_text(json.dumps(s))
    return d


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two seeds of baseline + cubic, one linear, and every kind of problem run."""
    root = tmp_path_factory.mktemp("sweep")
    make_run(root, "0", seed=0, seconds=100.0, err=0.20)
    make_run(root, "1", strategy="cubic", seed=0, seconds=75.0, err=0.21, flops=0.3, time=0.28)
    make_run(root, "2", seed=1, seconds=200.0, err=0.25)
    make_run(root, "3", strategy="cubic", seed=1, seconds=140.0, err=0.25, flops=0.3, time=0.26)
    make_run(root, "4", strategy="linear", t_0=0.5, seed=0, seconds=60.0, err=0.22, flops=0.4)
    make_run(root, "5", strategy="squared", seed=0, status="failed",
             error="RuntimeError: CUDA out of memory", err=0.3)
    make_run(root, "6", strategy="cubic", t_0=0.5, seed=0, status="diverged",
             error="loss is nan at iteration 7")
    make_run(root, "7", strategy="linear", seed=0, summary=False)  # killed: no summary.json
    make_run(root, "8", strategy="cubic", seed=0, lr=0.05, seconds=50.0, err=0.3)  # other lr
    make_run(root, "9", seed=2, status="failed", error="boom")  # a baseline that failed ...
    make_run(root, "10", strategy="cubic", seed=2, seconds=70.0, err=0.2)  # ... and its run
    return root


@pytest.fixture(scope="module")
def result(sweep) -> dict:
    return analyze(sweep)


def by_dir(df: pd.DataFrame) -> dict:
    return {row["dir"]: row for row in df.to_dict("records")}


def test_formulas():
    assert measured_speedup(75.0, 100.0) == pytest.approx(0.25)
    assert relative_error(0.21, 0.20) == pytest.approx(0.05)
    assert math.isnan(measured_speedup(75.0, 0.0)) and math.isnan(relative_error(0.2, math.nan))


def test_pareto_front():
    points = [(20, 2.5), (27.5, 2.5 + 1e-12), (40, 10), (30, 20), (10, 0)]
    assert pareto_front(points) == [(10, 0), (27.5, 2.5), (40, 10)]


def test_pair_key_ignores_freezeout_and_non_semantic_keys():
    base = make_config("none", seed=0)
    fo = make_config("cubic", t_0=0.5, seed=0, scale_lr=False, const_time=True, log_every=1,
                     progress=True, debug=True, predict_time=True, checkpoint=False)
    fo["data"]["root"] = "/elsewhere"
    assert pair_key(base) == pair_key(fo)
    assert pair_key(base) != pair_key(make_config("cubic", seed=1))
    assert pair_key(base) != pair_key(make_config("cubic", lr=0.05))
    assert pair_key(base) != pair_key(make_config("cubic", extra_key=3))  # unknown keys count


def test_pairs_speedup_and_relative_error(result):
    runs = by_dir(result["runs"])
    assert len(runs) == 11
    assert runs["1"]["baseline_dir"] == "0"
    assert runs["1"]["measured_speedup"] == pytest.approx(0.25)
    assert runs["1"]["relative_error"] == pytest.approx(0.05)
    assert runs["3"]["baseline_dir"] == "2"
    assert runs["3"]["measured_speedup"] == pytest.approx(0.30)
    assert runs["3"]["relative_error"] == pytest.approx(0.0)
    assert runs["4"]["measured_speedup"] == pytest.approx(0.40)
    assert runs["4"]["relative_error"] == pytest.approx(0.10)
    assert math.isnan(runs["0"]["measured_speedup"])  # baselines get no speedup


def test_aggregates_over_seeds(result):
    summary = result["summary"]
    cubic = summary[(summary["strategy"] == "cubic") & (summary["t_0"] == 0.8)
                    & summary["setting"].str.contains("lr=0.1")]
    row = cubic.iloc[0]
    assert row["measured_speedup_mean"] == pytest.approx(0.275)
    assert row["measured_speedup_std"] == pytest.approx(math.sqrt(2 * 0.025 ** 2))
    assert row["measured_speedup_n"] == 2
    assert row["relative_error_mean"] == pytest.approx(0.025)
    assert row["relative_error_std"] == pytest.approx(math.sqrt(2 * 0.025 ** 2))
    assert row["relative_error_n"] == 2
    assert row["predicted_speedup_flops"] == pytest.approx(0.3)
    assert row["predicted_speedup_time"] == pytest.approx(0.27)
    assert row["final_val_err_mean"] == pytest.approx(0.22)  # all 3 completed
    assert row["baseline_val_err_mean"] == pytest.approx(0.225)
    assert row["n_runs"] == 3 and row["n_completed"] == 3  # seed 2 completed, but unpaired
    linear = summary[(summary["strategy"] == "linear") & (summary["t_0"] == 0.5)].iloc[0]
    assert linear["measured_speedup_n"] == 1 and math.isnan(linear["measured_speedup_std"])


def test_problem_runs_are_reported(result):
    runs = by_dir(result["runs"])
    assert runs["5"]["status"] == "failed" and "out of memory" in runs["5"]["error"]
    assert runs["6"]["status"] == "diverged" and "nan" in runs["6"]["error"]
    assert runs["7"]["status"] == "incomplete" and runs["7"]["epochs_done"] == 2
    assert set(result["not_completed"]["dir"]) == {"5", "6", "7", "9"}
    assert "no baseline" in runs["8"]["unpaired"]  # lr differs: not paired with "0"
    assert math.isnan(runs["8"]["measured_speedup"])
    assert "baseline not completed: 9 (failed)" in runs["10"]["unpaired"]
    report = result["report"]
    for text in ("Runs found: 11, completed: 7", "5: failed", "CUDA out of memory", "6: diverged",
                 "7: incomplete", "8: no baseline", "10: baseline not completed",
                 "| strategy |", "Files written to"):
        assert text in report, text
    assert result["status_line"].startswith("4 of 11 runs did not complete: ")
    # and in runs.csv, with the reason
    csv = by_dir(pd.read_csv(result["out"] / "runs.csv", dtype={"dir": str}))
    assert csv["7"]["status"] == "incomplete" and "unpaired" in csv["8"]
    assert "no baseline" in csv["8"]["unpaired"]
    assert csv["1"]["measured_speedup"] == pytest.approx(0.25)


def test_writes_all_files(sweep):
    result = analyze(sweep, sweep / "out")
    names = {p.name for p in result["files"]}
    expected = {"runs.csv", "summary.csv", "summary.md"} | {
        f"{n}.{ext}" for n in ("envelope", "predicted_vs_measured", "val_curves")
        for ext in ("png", "svg")}
    assert names == expected
    for name in expected:
        assert (sweep / "out" / name).stat().st_size > 0, name
    md = (sweep / "out" / "summary.md").read_text()
    assert "27.5% ± 3.5%" in md and "predicted (time)" in md
    # re-running does not pick up its own output, and the default out dir is <sweep>/analysis
    assert len(analyze(sweep)["runs"]) == 11 and (sweep / "analysis" / "runs.csv").exists()


def test_duplicate_baseline_first_by_path(tmp_path):
    make_run(tmp_path, "a", seconds=100.0)
    make_run(tmp_path, "b", seconds=50.0)  # a re-run of the same baseline
    make_run(tmp_path, "c", strategy="cubic", seconds=75.0, err=0.21)
    result = analyze(tmp_path)
    c = by_dir(result["runs"])["c"]
    assert c["baseline_dir"] == "a" and c["measured_speedup"] == pytest.approx(0.25)
    assert c["duplicate_baselines"] == "b" and "also matched: b" in result["report"]


def test_plots_skip_gracefully(tmp_path):
    make_run(tmp_path, "only", strategy="cubic", curve=False)  # one strategy, no pair, no curve
    result = analyze(tmp_path)
    assert not [p for p in result["files"] if p.suffix in (".png", ".svg")]
    assert len(result["skipped"]) == 3 and "skipped" in result["report"]
    assert "no baseline" in result["report"]


def test_robust_to_nulls_and_torn_lines(tmp_path):
    d = make_run(tmp_path, "x", strategy="cubic", status="diverged", error=None)
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "val_e')  # torn last line
    s = json.loads((d / "summary.json").read_text())
    s.update(train_seconds=None, predicted_speedup=None, model="densenet")
    (d / "summary.json").write_text(json.dumps(s))
    (tmp_path / "y" / ".hydra").mkdir(parents=True)  # killed before anything but .hydra/
    (tmp_path / "y" / ".hydra" / "config.yaml").write_text("model: {name: ${oc.env:NOPE_X}}\n")
    make_run(tmp_path, "w", strategy="cubic", status="running")  # killed after it started
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "summary.json").write_text("{not json")
    runs = by_dir(analyze(tmp_path)["runs"])
    assert runs["x"]["epochs_done"] == 2 and "torn" in runs["x"]["note"]
    assert runs["y"]["status"] == "incomplete" and runs["z"]["status"] == "incomplete"
    assert "unreadable" in runs["z"]["error"]
    assert runs["w"]["status"] == "running" and "killed" in runs["w"]["error"]


def test_callback(sweep, tmp_path, capsys):
    cfg = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    AnalysisCallback().on_multirun_end(cfg)
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("4 of 11 runs did not complete: 5 (failed")
    assert (sweep / "analysis" / "summary.md").exists()
    missing = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "nope")}}})
    AnalysisCallback().on_multirun_end(missing)
    assert "could not analyse" in capsys.readouterr().err  # printed, not raised
    AnalysisCallback().on_multirun_end(OmegaConf.create({}))  # even a broken config
    AnalysisCallback(enabled=False).on_multirun_end(cfg)
    assert capsys.readouterr().out == ""


def test_does_not_import_torch():
    code = "import sys, freezeout.analysis, freezeout.analysis.callback; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "freezeout.analysis", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli(sweep, tmp_path):
    proc = run_cli(sweep, "--out", tmp_path / "cli-out")
    assert proc.returncode == 0, proc.stderr
    assert "Runs found: 11" in proc.stdout and (tmp_path / "cli-out" / "envelope.svg").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (empty, tmp_path / "missing"):
        proc = run_cli(path)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and "analysis:" in proc.stderr


def test_a_copied_frontier_search_still_draws_its_front(tmp_path):
    """results/study_long/frontier_densenet: a search copied out of its sweep dir, whose
    frontier.csv names its runs by their absolute paths at the time (as searches did before
    naming them relative to the sweep): the runs are found by name in the copy."""
    search = tmp_path / "frontier_densenet"
    shutil.copytree(REPO / "results" / "study_long" / "frontier_densenet", search,
                    ignore=shutil.ignore_patterns("analysis", "*.db"))
    assert "/multirun/" in (search / "frontier.csv").read_text()  # absolute, from elsewhere
    analyze(search, tmp_path / "out")
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "Front found by the frontier search (densenet / fashion_mnist" in text
    assert "- trial 0: speedup 4.6%, relative error -15.1%" in text
