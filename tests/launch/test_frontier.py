"""``hydra/sweeper=frontier``: a 6-trial search end to end on tiny real runs (each trial a rule
and its settings on two seeds, paired with the baseline of each seed), its front, the analysis
drawing it, and a re-launch that continues the SQLite study without training a finished trial
again; the dry run; bad settings in one line; trials a killed launch left running."""
from __future__ import annotations

import json
import math
import shutil
import socket
from pathlib import Path

import pytest
from helpers import run_cli
from hydra.core.override_parser.overrides_parser import OverridesParser

from freezeout.analysis import analyze
from freezeout.errors import ConfigError
from hydra_plugins.freezeout_launch.frontier import FrontierSweeper
from hydra_plugins.freezeout_launch.frontier_space import FrontierError, split_space
from hydra_plugins.freezeout_launch.frontier_shared import (
    WORKER,
    Heartbeat,
    requeue_stale,
    storage_url,
    take_trial,
)
from hydra_plugins.freezeout_launch.frontier_study import counted, open_study

optuna = pytest.importorskip("optuna")  # the 'frontier' extra

SPACE = ["strategy=choice(linear,cubic,layer_freezing)", "t_0=interval(0.5,0.95)",
         "strategy.freeze_start=interval(0.2,0.8)"]


def search_args(root: Path, sweep: Path, *extra: str) -> list[str]:
    """Tiny runs: 256 images, batch 16, 2 epochs (32 iterations), the time model allowed the
    whole run's share so that it measures at this size; two seeds a trial."""
    return ["-m", "data=fashion_mnist", "data.subset=256", "data.val_size=200", "model=densenet", "model.depth=10",
            "model.growth_rate=4", "epochs=2", "batch_size=16", "device=cpu", "progress=false", "checkpoint=false",
            "predict_time_share=1.0", f"data.root={root}", "hydra/sweeper=frontier", "hydra.sweeper.seeds=[0,1]",
            *SPACE, f"hydra.sweep.dir={sweep}", *extra]


ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # two threads on a busy 2-core machine thrash


def summary(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def dominated(p: tuple, points: list[tuple]) -> bool:
    return any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in points)


@pytest.mark.slow
def test_a_search_finds_a_front_and_a_relaunch_continues_it(fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(*search_args(fmnist_root, sweep, "hydra.sweeper.n_trials=6"), timeout=600, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="frontier", storage=f"sqlite:///{sweep / 'frontier.db'}")
    trials = study.get_trials()
    assert [t.number for t in trials] == list(range(6)) and all(t.state.name == "COMPLETE" for t in trials)
    bases = {summary(d)["seed"]: summary(d) for d in sweep.glob("run_*strategy=none")}
    assert sorted(bases) == [0, 1]
    for t in trials:
        # Each rule draws the settings it reads: t_0 for FreezeOut's schedules, freeze_start for
        # layer_freezing.
        drawn = "strategy.freeze_start" if t.params["strategy"] == "layer_freezing" else "t_0"
        assert set(t.params) == {"strategy", drawn}
        # The objectives, by hand from the runs' own records: means over the two seeds.
        runs = [summary(sweep / d) for d in t.user_attrs["run_dirs"]]
        assert [r["seed"] for r in runs] == [0, 1] and all(r["strategy"] == t.params["strategy"] for r in runs)
        speedup = sum(r["predicted_speedup"]["time"] for r in runs) / 2
        rel = sum((r["final_val_err"] - bases[r["seed"]]["final_val_err"]) / bases[r["seed"]]["final_val_err"]
                  for r in runs) / 2
        assert t.values == pytest.approx([speedup, rel])
    # The front: exactly the trials no other trial beats on both objectives.
    rows = (sweep / "frontier.csv").read_text().splitlines()[1:]
    assert len(rows) == 6
    points = [tuple(t.values) for t in trials]
    front = {t.number for t, p in zip(trials, points) if not dominated(p, points)}
    assert {t.number for t in study.best_trials} == front
    assert "frontier: 6 completed trials (0 failed)" in proc.stdout
    assert "Front found by the frontier search" in (sweep / "analysis" / "summary.md").read_text()
    # The trials name their runs relative to the sweep, so a copy of it (as into results/) still
    # draws its front.
    assert all(not Path(d).is_absolute() for t in trials for d in t.user_attrs["run_dirs"])
    copy = tmp_path / "results" / "search"
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("analysis"))
    analyze(copy, copy / "analysis")
    assert "Front found by the frontier search" in (copy / "analysis" / "summary.md").read_text()

    # Re-launch with a budget of 8: two new trials; nothing of the first six trains again.
    before = {p: p.read_bytes() for p in sweep.glob("run_*/summary.json")}
    proc = run_cli(*search_args(fmnist_root, sweep, "hydra.sweeper.n_trials=8"), timeout=600, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "frontier search: 6 of 8 trials done, 2 to run" in proc.stdout + proc.stderr
    assert all(p.read_bytes() == data for p, data in before.items())
    trials = optuna.load_study(study_name="frontier", storage=f"sqlite:///{sweep / 'frontier.db'}").get_trials()
    assert [t.number for t in trials] == list(range(8)) and all(t.state.name == "COMPLETE" for t in trials)
    old = [t.params for t in trials[:6]]
    assert all(t.params not in old for t in trials[6:])  # the sampler draws afresh, not its first draws again
    assert len(list(sweep.glob("run_*/summary.json"))) - len(before) == 4  # 2 trials x 2 seeds


def test_dry_run_plans_and_trains_nothing(fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(*search_args(fmnist_root, sweep, "hydra.sweeper.n_trials=5", "hydra.sweeper.dry_run=true"),
                   timeout=600, env=ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "trials to run: 5, 2 seeds each: 10 runs of 32 iterations" in out
    assert out.count("strategy=none") == 2 and "predicted training time at most" in out
    assert not sweep.exists() or not list(sweep.rglob("summary.json")) and not (sweep / "frontier.db").exists()


@pytest.mark.parametrize("extra, message", [
    ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0: give at least 1 trial"),
    ("hydra.sweeper.storage=sqlite:////proc/no/such/dir/f.db", "cannot open the study store"),
])
def test_bad_settings_end_in_one_line(fmnist_root, tmp_path, extra, message):
    proc = run_cli(*search_args(fmnist_root, tmp_path / "sweep", extra), timeout=300)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.slow
def test_a_search_whose_every_trial_failed_ends_non_zero_naming_the_fix(fmnist_root, tmp_path):
    """Runs of 32 iterations with the default predict_time_share=0.1: every run's time model is
    skipped, so no trial has a time speedup. The search says so in one error line naming the
    setting that fixes it, and exits 1 (it used to print "no trial within the budget" and exit 0)."""
    args = [a for a in search_args(fmnist_root, tmp_path / "sweep", "hydra.sweeper.n_trials=1")
            if not a.startswith(("predict_time_share=", "hydra.sweeper.seeds="))]
    proc = run_cli(*args, "hydra.sweeper.seeds=[0]", timeout=600, env=ONE_THREAD)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "all 1 trials of the frontier search failed" in errors[0]
    assert "recorded no time speedup" in errors[0] and "predict_time_share (now 0.1)" in errors[0]
    assert "hydra.sweeper.speedup=flops" in errors[0]
    assert "frontier: 0 completed trials (1 failed)" in proc.stdout


def test_postgresql_urls_take_the_installed_driver():
    try:
        import psycopg  # noqa: F401
        dialect = "postgresql+psycopg"
    except ImportError:
        pytest.importorskip("psycopg2")
        dialect = "postgresql+psycopg2"
    assert storage_url("postgresql://u:pw@db:5432/s") == f"{dialect}://u:pw@db:5432/s"
    assert storage_url("postgres://u@db/s") == f"{dialect}://u@db/s"
    assert storage_url("postgresql+psycopg2://u@db/s") == "postgresql+psycopg2://u@db/s"  # named: kept
    assert storage_url("sqlite:///x.db") == "sqlite:///x.db"


def parse(*overrides: str):
    return OverridesParser.create().parse_overrides(list(overrides))


def test_bad_spaces_and_settings():
    # ConfigError, the base of FrontierError: Hydra re-imports plugin modules when it scans them, so
    # after another test's launch the FrontierError imported here may not be the class raised.
    assert issubclass(FrontierError, ConfigError)
    with pytest.raises(ConfigError, match="search space is empty"):
        split_space(parse("strategy=cubic", "lr=0.1"))
    with pytest.raises(ConfigError, match="strategy=none in the frontier search space"):
        split_space(parse("strategy=choice(none,cubic)"))
    with pytest.raises(ConfigError, match="seed is set by hydra.sweeper.seeds"):
        split_space(parse("t_0=interval(0.5,0.9)", "seed=3"))
    with pytest.raises(ConfigError, match="start must lie below the end"):
        split_space(parse("t_0=interval(0.9,0.5)"))
    space, fixed = split_space(parse("t_0=interval(0.5,0.9)", "strategy=cubic", "+lr=0.1"))
    assert list(space) == ["t_0"] and fixed == ["strategy=cubic", "+lr=0.1"]
    for kwargs, text in (({"seeds": []}, "seeds"), ({"sampler": "grid"}, "sampler=grid"),
                         ({"speedup": "paper"}, "speedup=paper")):
        with pytest.raises(ConfigError, match=text):
            FrontierSweeper(**{"seeds": [0], **kwargs}).check()


def test_trials_left_running_are_run_again_with_their_settings(tmp_path):
    """A trial whose worker died: at once when it was a process of this machine, after its
    heartbeat went stale (twice heartbeat_s) for a worker elsewhere; failed, queued again with its
    settings, and not counted against the budget."""
    import subprocess
    import time

    storage = f"sqlite:///{tmp_path / 'f.db'}"
    study = open_study(storage, "s", "random", 0, heartbeat_s=1)
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that has exited
    killed = take_trial(study, n_trials=3)
    t_0 = killed.suggest_float("t_0", 0.5, 0.9)
    killed.set_user_attr(WORKER, f"{socket.gethostname()}:{gone.pid}")
    elsewhere = take_trial(study, n_trials=3)
    elsewhere.suggest_float("t_0", 0.5, 0.9)
    elsewhere.set_user_attr(WORKER, "another-host:1")  # its heartbeat was recorded when it was taken
    alive = take_trial(study, n_trials=3)  # this process: alive, beating below
    assert take_trial(study, n_trials=3) is None  # the budget of 3 is taken

    study = open_study(storage, "s", "random", 0, heartbeat_s=1)  # the next worker
    assert requeue_stale(study) == 1 and counted(study) == 0  # the dead local process's trial, at once
    again = take_trial(study, n_trials=3)
    assert again.number == 3 and again.suggest_float("t_0", 0.5, 0.9) == t_0 and again.user_attrs["resumes"] == 0
    with Heartbeat(study, [alive, again], 1):
        time.sleep(3.5)  # beyond the grace of 2 s for the silent trial elsewhere, not for the beating ones:
        # SQLite keeps heartbeats in whole seconds, so 3 s must pass for "older than 2 s" to hold surely
        assert requeue_stale(study) == 1
    running = {t.number for t in study.get_trials() if t.state.name == "RUNNING"}
    assert running == {alive.number, again.number}
    waiting = [t for t in study.get_trials() if t.state.name == "WAITING"]
    assert [t.user_attrs["resumes"] for t in waiting] == [elsewhere.number]
    assert counted(study) == 0 and not math.isnan(t_0)


def test_the_longer_study_composes_into_groups_and_a_search_space():
    from hydra import compose, initialize_config_dir

    from freezeout.config import register_configs
    from hydra_plugins.freezeout_launch import placement
    from hydra_plugins.freezeout_launch.groups import comparison_groups
    from hydra_plugins.freezeout_launch.sweeper import FreezeOutSweeper

    register_configs()
    placement.register_resolvers()
    repo = Path(__file__).resolve().parents[2]
    with initialize_config_dir(config_dir=str(repo / "conf"), version_base="1.3"):
        study = compose(config_name="config", overrides=["sweeps=study_long"], return_hydra_config=True)
        search = compose(config_name="config", overrides=["hydra/sweeper=frontier", "sweeps=study_long_frontier",
                                                          "experiment=study_densenet"], return_hydra_config=True)
    assert study.epochs == search.epochs == 40 and study.data.subset == 3840
    params = [f"{k}={v}" for k, v in study.hydra.sweeper.params.items()]
    jobs = FreezeOutSweeper.split_arguments(parse(*params), None)[0]
    groups = comparison_groups(list(enumerate(jobs)))
    # 2 architectures x 3 seeds; each: the baseline, linear and cubic scaled and unscaled, layer_freezing
    assert len(groups) == 6 and all(len(g) == 6 and "strategy=none" in g[0][1] for g in groups)
    assert len({o for _, job in groups[0] for o in job if o.startswith(("seed=", "experiment="))}) == 2
    assert sum("strategy=linear" in j and "scale_lr=False" in j and "t_0=0.8" in j for _, j in sum(groups, [])) == 6
    assert sum("strategy=cubic" in j and "scale_lr=True" in j and "t_0=0.8" in j for _, j in sum(groups, [])) == 6
    sweeper = search.hydra.sweeper
    assert (sweeper.n_trials, list(sweeper.seeds), sweeper.budget) == (12, [0], 0.03)
    space, fixed = split_space(parse(*(f"{k}={v}" for k, v in sweeper.params.items() if v is not None)))
    assert set(space) == {"strategy", "t_0", "scale_lr", "strategy.freeze_start", "strategy.freeze_level",
                          "strategy.percentile"} and fixed == []
