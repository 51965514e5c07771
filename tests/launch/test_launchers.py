"""Launchers (conf/hydra/launcher/): one tiny sweep through Hydra's basic launcher, joblib
(``hydra/launcher=parallel``) and submitit on this machine (``hydra/launcher=local``) writes the same
runs into one sweep dir, is analysed and paired the same way, and re-launches the same way (done
runs skipped, failures recorded); the SLURM config composes and renders to the sbatch script the
overrides ask for; and the placement functions (hydra_plugins/freezeout_launch/placement.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import TINY, compose_hydra, run_cli
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import OmegaConf

from freezeout.config import register_configs
from hydra_plugins.freezeout_launch import placement
from hydra_plugins.freezeout_launch.placement import (
    apply_job_placement,
    claim_gpu,
    cpu_threads_share,
    default_n_jobs,
    effective_n_jobs,
    job_device,
    job_threads,
    launcher_kind,
    release_gpu,
)

register_configs()
placement.register_resolvers()

#: Two one-epoch runs, a FreezeOut run and its baseline. t_0 is named so that a re-launch with
#: t_0=0.8,1.5 finds the FreezeOut run's directory again (the baseline drops t_0 either way).
SWEEP = [*(o for o in TINY if not o.startswith("epochs=")), "epochs=1", "strategy=cubic,none", "t_0=0.8"]
LAUNCH_TIMEOUT = 900  # seconds; a tiny sweep takes well under a minute, but the cores are shared


def sweep_args(data_root: Path, *extra: str) -> list[str]:
    return ["-m", *SWEEP, f"data.root={data_root}", *extra]


def check_ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def the_sweep_dir(cwd: Path) -> Path:
    """The one sweep dir a launch from ``cwd`` wrote (default: multirun/<FREEZEOUT_LAUNCH_ID>)."""
    dirs = [p.parent for p in (cwd / "multirun").glob("*/*/multirun.yaml")]
    assert len(dirs) == 1, f"expected one sweep dir under {cwd / 'multirun'}, found {dirs}"
    return dirs[0]


def run_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.glob("run_*") if p.is_dir())


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def analysed(sweep: Path, out: Path) -> list[tuple]:
    """What the analysis makes of a sweep, launcher-independent: one row per run, sorted."""
    from freezeout.analysis import analyze

    runs = analyze(sweep, out)["runs"]
    assert len(runs) == 2
    return sorted((r["dir"], r["status"], r["strategy"], r["seed"], r["epochs_done"],
                   r["baseline_dir"] if isinstance(r["baseline_dir"], str) else None,
                   r["measured_speedup"] == r["measured_speedup"],  # a number (paired), not NaN
                   round(float(r["predicted_speedup_flops"]), 6), float(r["final_val_err"]))
                  for _, r in runs.iterrows())


def assert_same_analysis(got: list[tuple], expected: list[tuple]) -> None:
    assert [g[:-1] for g in got] == [e[:-1] for e in expected]
    # The same computation; only the CPU thread count differs (1 per job in parallel), which moves
    # float roundings. One epoch of 16 steps leaves the tiny model near chance (loss ~ ln 10), where
    # that moves up to 15 of the 500 validation images: the baseline alone, in one process, gave
    # 0.908 on 2 threads and 0.938 on 1.
    assert [g[-1] for g in got] == pytest.approx([e[-1] for e in expected], abs=0.05)


def check_completed_sweep(proc, sweep: Path, launcher: str) -> None:
    """Both runs completed with every per-run file, placed by the launcher, and analysed at the
    end of the launch (the analysis callback ran, on this sweep dir)."""
    dirs = run_dirs(sweep)
    assert [summary(d)["strategy"] for d in dirs] == ["cubic", "none"]
    for d in dirs:
        assert summary(d)["status"] == "completed", summary(d).get("error")
        for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.jsonl", "run.log"):
            assert (d / name).is_file(), f"{d / name} missing"
        assert f"CPU threads ({launcher} launcher)" in (d / "run.log").read_text()
        assert "1 threads" in summary(d)["device"]  # 2 cores, 2 jobs at once: one thread each
    assert "All 2 runs completed." in proc.stdout  # AnalysisCallback.on_multirun_end
    assert (sweep / "analysis" / "runs.csv").is_file()


@pytest.fixture(scope="module")
def basic_sweep(fmnist_root, tmp_path_factory) -> Path:
    """The reference: the same sweep through Hydra's basic launcher (one job at a time)."""
    sweep = tmp_path_factory.mktemp("basic") / "sweep"
    check_ok(run_cli(*sweep_args(fmnist_root, f"hydra.sweep.dir={sweep}"), timeout=LAUNCH_TIMEOUT))
    return sweep


@pytest.fixture(scope="module")
def basic_analysis(basic_sweep, tmp_path_factory) -> list[tuple]:
    return analysed(basic_sweep, tmp_path_factory.mktemp("basic-analysis"))


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.slow
def test_parallel_launcher_sweep_and_relaunch(fmnist_root, basic_analysis, tmp_path):
    # No hydra.sweep.dir: the default multirun/${oc.env:FREEZEOUT_LAUNCH_ID} must be one dir for
    # all jobs, though each job resolves it in its own worker process.
    proc = run_cli(*sweep_args(fmnist_root, "hydra/launcher=parallel", "hydra.launcher.n_jobs=2"),
                   cwd=tmp_path, timeout=LAUNCH_TIMEOUT)
    check_ok(proc)
    assert "Joblib.Parallel(n_jobs=2,backend=loky" in proc.stdout + proc.stderr
    sweep = the_sweep_dir(tmp_path)
    check_completed_sweep(proc, sweep, "joblib")
    assert not any(sweep.glob(".placement/*"))  # no GPU here: nothing to lock
    assert_same_analysis(analysed(sweep, tmp_path / "analysis"), basic_analysis)

    # Re-launch into the same dir with one more job that is invalid: the completed runs are
    # skipped untouched, the invalid one is recorded as failed, and the sweep says so and exits 1.
    cubic, none = run_dirs(sweep)
    before = {d: ((d / "metrics.jsonl").read_text(), (d / "summary.json").read_text()) for d in (cubic, none)}
    proc = run_cli(*sweep_args(fmnist_root, "hydra/launcher=parallel", "t_0=0.8,1.5",
                               f"hydra.sweep.dir={sweep}"), cwd=tmp_path, timeout=LAUNCH_TIMEOUT)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    for d in (cubic, none):
        assert ((d / "metrics.jsonl").read_text(), (d / "summary.json").read_text()) == before[d]
        assert "already holds a completed run: nothing to do" in (d / "run.log").read_text()
    bad = [d for d in run_dirs(sweep) if "t_0=1.5" in d.name]
    assert len(bad) == 1 and summary(bad[0])["status"] == "failed"
    assert "t_0=1.5" in summary(bad[0])["error"]
    assert "1 of 3 runs did not complete" in proc.stdout
    assert len(list((tmp_path / "multirun").glob("*/*/multirun.yaml"))) == 1  # no second sweep dir


@pytest.mark.slow
def test_submitit_local_launcher_sweep(fmnist_root, basic_analysis, tmp_path):
    # Run from outside the repository, as from a scratch directory on a cluster: the submitit job
    # processes must still import this checkout's packages and the sweeper plugin.
    proc = run_cli(*sweep_args(fmnist_root, "hydra/launcher=local"), cwd=tmp_path, timeout=LAUNCH_TIMEOUT)
    check_ok(proc)
    sweep = the_sweep_dir(tmp_path)
    check_completed_sweep(proc, sweep, "submitit_local")
    logs = list(sweep.glob(".submitit/*_log.out"))
    assert len(logs) == 2  # submitit's folder (job logs, pickles) lies inside the sweep dir
    assert not list(sweep.rglob("%j"))  # and no folder literally named %j
    # without a terminal: no progress bar, and every harness line names its job
    job_logs = "".join(p.read_text() for p in sweep.glob(".submitit/*_log.*"))
    lines = [x for x in (proc.stdout + proc.stderr + job_logs).splitlines() if "epoch 1/1" in x]
    assert lines and all("[job " in x for x in lines) and "\r" not in proc.stderr
    assert_same_analysis(analysed(sweep, tmp_path / "analysis"), basic_analysis)


# --- configs ----------------------------------------------------------------------------------



SLURM_OVERRIDES = [
    "hydra/launcher=slurm", "hydra.launcher.partition=gpu", "hydra.launcher.account=proj42",
    "hydra.launcher.gpus_per_node=2", "hydra.launcher.cpus_per_task=4", "hydra.launcher.mem_gb=24",
    "hydra.launcher.timeout_min=600", "hydra.launcher.array_parallelism=2",
    "hydra.launcher.max_num_timeout=5", "hydra.launcher.constraint=a100",
    "hydra.launcher.setup=[module load cuda]",
]


def test_slurm_config_composes_with_the_documented_overrides(tmp_path):
    cfg = compose_hydra(*SLURM_OVERRIDES, f"hydra.sweep.dir={tmp_path}")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.account, launcher.gpus_per_node, launcher.cpus_per_task,
            launcher.mem_gb, launcher.timeout_min, launcher.array_parallelism, launcher.max_num_timeout,
            launcher.constraint, list(launcher.setup)) == (
        "gpu", "proj42", 2, 4, 24, 600, 2, 5, "a100", ["module load cuda"])
    assert launcher.submitit_folder == f"{tmp_path}/.submitit"  # inside the sweep dir
    assert cfg.hydra.sweeper._target_.endswith("FreezeOutSweeper")  # the sweeper is unchanged

    defaults = compose_hydra("hydra/launcher=slurm").hydra.launcher  # what a user edits
    assert (defaults.gpus_per_node, defaults.cpus_per_task, defaults.partition) == (1, 8, None)
    assert defaults.max_num_timeout > 0  # timed-out jobs are requeued: runs resume from checkpoints


def test_slurm_launcher_renders_the_sbatch_script(tmp_path, monkeypatch):
    """Through the plugin's own launch(), up to the sbatch call: the overrides reach the script."""
    from submitit.core import utils as submitit_utils
    from submitit.slurm.slurm import SlurmExecutor

    class Submitted(Exception):
        pass

    def no_sbatch(self, *args, **kwargs):
        raise Submitted(self.command)

    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 2))  # "srun" is there
    monkeypatch.setattr(submitit_utils.CommandFunction, "__call__", no_sbatch)
    cfg = compose_hydra(*SLURM_OVERRIDES, f"hydra.sweep.dir={tmp_path}")
    launcher = instantiate(cfg.hydra.launcher)
    launcher.setup(hydra_context=None, task_function=print, config=cfg)
    with pytest.raises(Submitted):
        launcher.launch([["strategy=cubic"], ["strategy=none"], ["strategy=linear"]], initial_job_idx=0)
    scripts = list((tmp_path / ".submitit").glob(".submission_file_*.sh"))
    assert len(scripts) == 1
    sbatch = scripts[0].read_text()
    for line in ("--partition=gpu", "--account=proj42", "--gpus-per-node=2", "--cpus-per-task=4",
                 "--mem=24GB", "--time=600", "--array=0-2%2", "--constraint=a100"):
        assert f"#SBATCH {line}\n" in sbatch, f"{line} not in\n{sbatch}"
    assert "module load cuda" in sbatch and "@120\n" in sbatch  # the signal before the time limit
    assert f"{tmp_path}/.submitit/%A_%a" in sbatch  # job logs inside the sweep dir


def test_parallel_and_local_configs_compose(tmp_path):
    launcher = compose_hydra("hydra/launcher=parallel").hydra.launcher
    assert launcher._target_.endswith("JoblibLauncher") and launcher.backend == "loky"
    assert launcher.n_jobs == default_n_jobs(2)  # resolved: one per GPU, else 2 (at most the cores)
    assert compose_hydra("hydra/launcher=parallel", "hydra.launcher.n_jobs=5").hydra.launcher.n_jobs == 5

    launcher = compose_hydra("hydra/launcher=local", f"hydra.sweep.dir={tmp_path}").hydra.launcher
    assert launcher._target_.endswith("LocalLauncher")
    assert launcher.gpus_per_node == placement.visible_gpus() and launcher.cpus_per_task == 1
    assert launcher.submitit_folder == f"{tmp_path}/.submitit"


# --- placement ----------------------------------------------------------------------------------

@pytest.mark.parametrize("device,job,gpus,expected", [
    ("auto", 5, 4, "cuda:1"), ("cuda", 2, 2, "cuda:0"), ("auto", 3, 8, "cuda:3"),
    ("auto", 3, 1, "auto"), ("cuda", 3, 1, "cuda"), ("auto", 3, 0, "auto"),  # one GPU or none
    ("cpu", 3, 4, "cpu"), ("cuda:2", 3, 4, "cuda:2"),  # explicit devices are kept
])
def test_job_device(device, job, gpus, expected):
    assert job_device(device, job, gpus) == expected


def test_cpu_threads_and_n_jobs():
    assert [cpu_threads_share(16, n) for n in (1, 2, 3, 4, 16, 32)] == [16, 8, 5, 4, 1, 1]
    assert cpu_threads_share(2, 2) == 1 and cpu_threads_share(8, 0) == 8
    assert [effective_n_jobs(n, 8) for n in (-1, -2, -20, None, 0, 3, 12)] == [8, 7, 1, 1, 1, 3, 12]


def test_launcher_kinds_and_their_threads():
    targets = {
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher": "basic",
        "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher": "joblib",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": "submitit_local",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher": "slurm",
        "somewhere.RayLauncher": "other", None: "other",
    }
    assert {t: launcher_kind(t) for t in targets} == targets
    assert job_threads("joblib", {"n_jobs": 4}, 16) == 4
    assert job_threads("joblib", {"n_jobs": -1}, 16) == 1
    assert job_threads("submitit_local", {"cpus_per_task": 2}, 16) == 2
    assert job_threads("slurm", {"cpus_per_task": None}, 6) == 6  # capped at the bound CPUs
    assert job_threads("slurm", {"cpus_per_task": 32}, 6) == 6
    assert job_threads("basic", {}, 16) is None and job_threads("other", {}, 16) is None


def test_claim_gpu_skips_gpus_other_jobs_hold(tmp_path):
    import fcntl

    def hold(index: int) -> int:  # another job of the sweep, holding a GPU (raises if it cannot)
        fd = os.open(tmp_path / f"cuda{index}.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd

    others = [hold(0)]
    try:
        assert claim_gpu(tmp_path, preferred=0, num_gpus=3) == (1, True)  # 0 is taken: the next one
        assert claim_gpu(tmp_path, preferred=2, num_gpus=3) == (1, True)  # a process keeps its GPU
        with pytest.raises(BlockingIOError):
            hold(1)
        release_gpu()
        others += [hold(1), hold(2)]  # released: free for the others
        assert claim_gpu(tmp_path, preferred=4, num_gpus=3) == (1, False)  # all taken: share
    finally:
        release_gpu()
        for fd in others:
            os.close(fd)


def fake_hydra(target: str, mode=RunMode.MULTIRUN, job_num: int = 1, sweep_dir: str = "/nonexistent",
               **launcher) -> SimpleNamespace:
    return SimpleNamespace(mode=mode, job=SimpleNamespace(num=job_num), sweep=SimpleNamespace(dir=sweep_dir),
                           launcher=OmegaConf.create({"_target_": target, **launcher}))


@pytest.fixture
def torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    release_gpu()


def test_apply_job_placement(tmp_path, monkeypatch, torch_threads):
    joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    slurm = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    cfg = OmegaConf.create({"device": "auto"})
    monkeypatch.setattr(placement, "available_cores", lambda: 8)

    # No GPU: joblib jobs get their share of the cores, the device stays.
    monkeypatch.setattr(placement, "visible_gpus", lambda: 0)
    assert apply_job_placement(cfg, fake_hydra(joblib, n_jobs=4)) == "auto"
    assert torch.get_num_threads() == 2

    # Four GPUs: a GPU per job, made torch's current device; cfg itself is not changed.
    chosen = []
    monkeypatch.setattr(placement, "visible_gpus", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert apply_job_placement(cfg, fake_hydra(joblib, job_num=5, sweep_dir=str(tmp_path), n_jobs=4)) == "cuda:1"
    assert chosen == [1] and cfg.device == "auto"
    assert (tmp_path / placement.LOCK_DIR / "cuda1.lock").exists()
    assert apply_job_placement(OmegaConf.create({"device": "cuda:3"}),
                               fake_hydra(joblib, sweep_dir=str(tmp_path), n_jobs=4)) == "cuda:3"

    # SLURM: the job's GPUs are its own (cuda:0...): no device change; threads = its CPUs.
    assert apply_job_placement(cfg, fake_hydra(slurm, cpus_per_task=3)) == "auto"
    assert torch.get_num_threads() == 3 and chosen == [1]

    # Single runs and the basic launcher: nothing at all.
    torch.set_num_threads(5)
    assert apply_job_placement(cfg, fake_hydra(joblib, mode=RunMode.RUN, n_jobs=4)) == "auto"
    assert apply_job_placement(cfg, fake_hydra(basic)) == "auto"
    assert torch.get_num_threads() == 5 and chosen == [1]


def test_resolvers_are_registered():
    assert OmegaConf.create({"n": "${freezeout.n_jobs:3}"}).n == (
        placement.visible_gpus() or min(3, placement.available_cores()))
    assert OmegaConf.create({"g": "${freezeout.gpus:}"}).g == placement.visible_gpus()
