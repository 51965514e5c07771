"""``hydra/launcher=turns``: comparison groups (hydra_plugins/freezeout_launch/groups.py) and a
real tiny sweep in a subprocess whose runs take turns, each writing its own files and the load it
shared with its baseline, a failing job recorded while the others of its round train on."""
from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import TINY, run_cli

from hydra_plugins.freezeout_launch.groups import comparison_groups, comparison_order, group_key

JOBS = [
    ["seed=0", "strategy=none"], ["seed=1", "strategy=none"],
    ["seed=0", "strategy=cubic", "t_0=0.5"], ["seed=1", "strategy=cubic", "t_0=0.5"],
    ["seed=0", "strategy=layer_freezing", "strategy.freeze_start=0.3"],
    ["seed=1", "strategy=layer_freezing", "strategy.freeze_start=0.3"],
]


def test_a_group_is_one_seed_of_one_setting_baseline_first():
    # The sweeper sends every baseline first; the groups put each with its methods, seed by seed.
    groups = comparison_groups(list(enumerate(JOBS)))
    assert [[n for n, _ in g] for g in groups] == [[0, 2, 4], [1, 3, 5]]
    assert comparison_order(JOBS) == [JOBS[i] for i in (0, 2, 4, 1, 3, 5)]
    # The method's keys, with Hydra's prefixes, do not split a group; anything else does.
    assert group_key(["seed=0", "+cache_frozen=true", "strategy.interval=5", "scale_lr=false"]) == ("seed=0",)
    assert group_key(["seed=0", "lr=0.1"]) != group_key(["seed=0", "lr=0.2"])
    # Seeds in numeric order (10 after 2); a group without a baseline keeps its order.
    jobs = [["seed=10", "strategy=cubic"], ["seed=2", "strategy=linear"], ["seed=2", "strategy=cubic"]]
    assert [[n for n, _ in g] for g in comparison_groups(list(enumerate(jobs)))] == [[1, 2], [0]]


def test_max_turns_cuts_a_group_into_rounds_baseline_first():
    jobs = [["strategy=cubic", "t_0=0.5"], ["strategy=cubic", "t_0=0.8"], ["strategy=none"]]
    assert [[n for n, _ in g] for g in comparison_groups(list(enumerate(jobs)), max_turns=2)] == [[2, 0], [1]]


def _loss_rows(run_dir: Path) -> list[tuple[float, int]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        return [(float(r["wall_time"]), int(r["step"])) for r in csv.DictReader(f) if r["name"] == "train/loss"]


def test_a_sweep_trains_each_group_taking_turns(fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = [o for o in TINY if not o.startswith(("epochs=", "data.subset=", "data.val_size="))]
    proc = run_cli("-m", *args, "epochs=1", "data.subset=256", "data.val_size=200", "log_every=2",
                   "logger=csv", "checkpoint=false", f"data.root={fmnist_root}", "hydra/launcher=turns",
                   "strategy=none,cubic", "t_0=0.5,1.5", f"hydra.sweep.dir={sweep}", timeout=600)
    # t_0=1.5 is invalid: that job fails and is recorded; the sweep says so and exits 1.
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Launching 3 jobs in 1 rounds of runs taking turns (" in out and "data.subset=256" in out
    # The round's line names what differs between its jobs; what all share is said once, above.
    (round_line,) = [line for line in out.splitlines() if "round 0:" in line]
    assert "data.subset=256" not in round_line and "strategy=cubic t_0=0.5" in round_line, round_line
    dirs = {d.name.split("strategy=")[1]: d for d in sweep.glob("run_*")}
    base, cubic, bad = dirs["none"], dirs["cubic,t_0=0.5"], dirs["cubic,t_0=1.5"]
    summaries = {k: json.loads((d / "summary.json").read_text()) for k, d in
                 (("base", base), ("cubic", cubic), ("bad", bad))}
    assert summaries["base"]["status"] == summaries["cubic"]["status"] == "completed"
    assert summaries["bad"]["status"] == "failed" and "t_0=1.5" in summaries["bad"]["error"]
    # The two runs took turns: each logs iteration j before either logs iteration j + 2.
    rows = [_loss_rows(base), _loss_rows(cubic)]
    assert [j for _, j in rows[0]] == [j for _, j in rows[1]] == [2, 4, 6, 8]
    for k in range(3):
        assert max(r[k][0] for r in rows) <= min(r[k + 1][0] for r in rows)
    # Each run's own log: its lines alone, named by its job.
    for d in (base, cubic):
        text = (d / "run.log").read_text()
        assert f"run directory: {d}" in text and text.count("run directory:") == 1
    # One round, one load: the comparison is judged equal.
    loads = [summaries[k]["load"] for k in ("base", "cubic")]
    assert loads[0]["turns_group"] == loads[1]["turns_group"] and loads[0]["turns"] == 3
    assert all(x["wall_seconds"] > 0 and x["cpu_seconds"] > 0 for x in loads)
    import pandas as pd

    runs = pd.read_csv(sweep / "analysis" / "runs.csv").set_index("strategy")
    assert runs.loc["cubic"].query("status == 'completed'")["load_unequal"].tolist() == [False]
    assert "1 run(s) of the sweep did not complete" in proc.stdout


def test_a_turn_of_no_iterations_is_refused_in_one_line_before_any_run(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli("-m", *TINY, "hydra/launcher=turns", "hydra.launcher.turn_every=0", "strategy=none,cubic",
                   f"hydra.sweep.dir={sweep}", timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and errors == ["error: hydra.launcher.turn_every=0: need an integer >= 1 "
                                               "(iterations a run trains in a turn)"], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not list(sweep.glob("run_*"))
