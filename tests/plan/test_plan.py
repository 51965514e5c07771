"""The sweep plan (python -m freezeout.plan): the jobs the sweeper launches after its
de-duplication, their run directories as Hydra names them, their status there, and the predicted
training time of the rest, measured here once or read from a step times file."""
from __future__ import annotations

import json

import pytest
from helpers import TINY, run_cli

from freezeout.plan.steptimes import remaining_seconds
from freezeout.plan.sweep import _compose, expand_jobs, main, plan
from freezeout.rundir.records import RunSummary
from freezeout.speedup.formulas import freezing_stages, time_speedup

pytestmark = pytest.mark.usefixtures("one_thread")
SWEEP = ["strategy=cubic,none", "t_0=0.5,0.8", "seed=0,1"]
JOBS = [("strategy=none", "seed=0"), ("strategy=cubic", "t_0=0.5", "seed=0"),  # comparison group after group
        ("strategy=cubic", "t_0=0.8", "seed=0"), ("strategy=none", "seed=1"),  # (a baseline first, by seed)
        ("strategy=cubic", "t_0=0.5", "seed=1"), ("strategy=cubic", "t_0=0.8", "seed=1")]


def sweep_args(root, sweep_dir, *extra: str) -> list[str]:
    return [*SWEEP, *TINY, f"data.root={root}", f"hydra.sweep.dir={sweep_dir}", *extra]


def dirname(job) -> str:
    """Hydra's override_dirname of a job: its overrides but the non-semantic ones, sorted."""
    return "run_" + ",".join(sorted([*(o for o in TINY if not o.startswith("progress=")), *job]))


@pytest.fixture(scope="module")
def measured(tmp_path_factory, fmnist_root, one_thread):
    """A plan that measures its step times here, once, and saves them."""
    d = tmp_path_factory.mktemp("plan")
    rows = plan(sweep_args(fmnist_root, d / "sweep"), save_step_times=str(d / "steps.json"))
    return d / "steps.json", rows


def step_times(path) -> dict:
    (entry,) = json.loads(path.read_text())["entries"]  # one model, data and step: one measurement
    return {k: {int(s): v for s, v in entry[k].items()} for k in ("stage_seconds", "event_seconds")}


def test_plan_lists_the_jobs_after_deduplication_with_their_directories(measured, fmnist_root, tmp_path, capsys):
    path, rows = measured
    assert [r["name"] for r in rows] == [dirname(job) for job in JOBS]
    assert all(r["status"] == "new" and r["start"] == 0 and r["iterations"] == 48 for r in rows)
    times = step_times(path)  # measured once, for every stage the cubic jobs train through
    assert set(times["stage_seconds"]) == set(freezing_stages(rows[2]["times"])) | set(freezing_stages(rows[4]["times"]))
    for r in rows:
        assert r["seconds"] == pytest.approx(remaining_seconds(times["stage_seconds"], times["event_seconds"],
                                                               r["times"], 48))
    capsys.readouterr()
    again = plan(sweep_args(fmnist_root, tmp_path / "sweep"), step_times=str(path))  # the file round-trips
    assert [r["seconds"] for r in again] == pytest.approx([r["seconds"] for r in rows], rel=1e-12)
    out = capsys.readouterr().out.splitlines()
    assert "skipped duplicate: strategy=none t_0=0.8 seed=0 (the same run as #0)" in out
    assert "skipped duplicate: strategy=none t_0=0.8 seed=1 (the same run as #3)" in out
    assert out[-1].startswith("jobs: 6, done: 0, to run: 6; predicted training time ")


@pytest.mark.slow
def test_runs_already_in_the_sweep_dir_are_marked_and_left_out(measured, fmnist_root, tmp_path, capsys):
    path, _ = measured
    sweep = tmp_path / "sweep"
    # one real job, launched as a user launches a sweep (its directory is named by Hydra itself)
    done = run_cli("-m", *JOBS[2], *TINY, f"data.root={fmnist_root}", f"hydra.sweep.dir={sweep}", "logger=mlflow",
                   env={"OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert (sweep / "mlruns").is_dir() and not (sweep / dirname(JOBS[2]) / "mlruns").exists()  # a sweep's store
    # and a baseline that failed after its first epoch's checkpoint: it resumes from iteration 16
    failed = sweep / dirname(JOBS[0])
    failed.mkdir()
    RunSummary(status="failed", iterations=48, iterations_done=16).write(failed / "summary.json")
    (failed / "checkpoint.pt").write_bytes(b"")
    rows = plan(sweep_args(fmnist_root, sweep), step_times=str(path))
    assert [r["status"] for r in rows] == ["failed", "new", "completed", "new", "new", "new"]  # (JOBS' order)
    times = step_times(path)
    assert rows[0]["start"] == 16 and rows[0]["seconds"] == pytest.approx(
        remaining_seconds(times["stage_seconds"], times["event_seconds"], rows[0]["times"], 48, 16))
    assert rows[0]["seconds"] == pytest.approx(rows[3]["seconds"] * 32 / 48)  # a baseline's steps all cost the same
    out = capsys.readouterr().out.splitlines()
    total = sum(r["seconds"] for i, r in enumerate(rows) if i != 2)
    assert out[-1] == (f"jobs: 6, done: 1, to run: 5; predicted training time {total / 3600:.2f} h ({total:.0f} s; "
                       f"step times from {path})")
    assert any(line.split()[:3] == ["2", "completed", "48/48"] for line in out)


def test_named_sweeps_expand_as_the_sweeper_expands_them():
    master, loader = _compose(["sweeps=t0_grid"])
    jobs, skipped = expand_jobs(master, loader)
    assert len(jobs) == 8 * 2 + 2 and len(skipped) == 7 * 2  # cubic on 8 t_0 x 2 seeds, one baseline per seed
    assert jobs[0] == ["strategy=none", "seed=0", "sweeps=t0_grid"]  # seed 0's comparison group first, its baseline first
    assert jobs[1] == ["strategy=cubic", "t_0=0.3", "seed=0", "sweeps=t0_grid"]
    assert jobs[9] == ["strategy=none", "seed=1", "sweeps=t0_grid"]
    master, loader = _compose(["sweeps=t0_grid", "seed=5"])  # the command line overrides the sweep's params
    jobs, _ = expand_jobs(master, loader)
    assert len(jobs) == 9 and all("seed=5" in job for job in jobs)


def test_const_time_jobs_are_planned_at_their_longer_length(measured, fmnist_root, tmp_path):
    path, _ = measured
    rows = plan(["sweeps=const_time", *TINY, f"data.root={fmnist_root}", f"hydra.sweep.dir={tmp_path}"],
                step_times=str(path))
    assert len(rows) == 2 * 2 * 2 + 2
    times = step_times(path)
    for r in rows:
        speedup = time_speedup(times["stage_seconds"], r["times"], times["event_seconds"], 48)  # predict_time=true
        assert r["iterations"] == (round(48 / (1 - speedup)) if r["cfg"].const_time else 48)
    assert any(r["iterations"] > 48 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["strategy=quartic"], "error: In 'config': Could not find 'strategy/quartic'"),
    (["t_0=1.5,0.5", *TINY], "error: job #0 (t_0=1.5 "),
    (["--step-times", "{tmp}/missing.json"], "error: cannot read --step-times {tmp}/missing.json: No such file"),
    (["--step-times", "{tmp}/metrics.jsonl"], "error: --step-times {tmp}/metrics.jsonl is not a step times file"),
    (["--step-times", "{steps}", *TINY, "model.depth=16"],
     "error: the step times file has no step time for densenet (compression=0.5 depth=16 growth_rate=4)"),
    (["--bogus"], "error: unrecognized arguments: --bogus (usage: freezeout plan"),
    (["t_0=[0.5"], "error: no viable alternative at input '[0.5'"),
])
def test_bad_input_is_one_line_and_exit_status_2(args, message, measured, fmnist_root, tmp_path, capsys):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    fill = {"tmp": tmp_path, "steps": measured[0]}
    args = [a.format(**fill) for a in args] + [f"data.root={fmnist_root}", f"hydra.sweep.dir={tmp_path}"]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(message.format(**fill)), err


def test_remaining_seconds_integrate_the_schedule_as_the_time_model():
    stage, events, times = {0: 1.0, 1: 0.6, 3: 0.2}, {0: 0.0, 1: 5.0, 3: 7.0}, (0.25, 0.5, 0.5, 1.0)
    full = remaining_seconds(stage, events, times, 100)
    assert full == pytest.approx(100 * stage[0] * (1 - time_speedup(stage, times, events, 100)))
    assert full == pytest.approx(25 * 1.0 + 25 * 0.6 + 50 * 0.2 + 5 + 7)
    assert remaining_seconds(stage, events, times, 100, start=40) == pytest.approx(10 * 0.6 + 50 * 0.2 + 7)
