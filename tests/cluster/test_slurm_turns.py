"""``hydra/launcher=slurm_turns`` on the local cluster: each comparison group of a sweep (a
baseline and its method, one seed) is one SLURM job, one task of one array, its runs taking turns
inside it; every run records its job and node, and the analysis comes out as for any sweep."""
from __future__ import annotations

import pytest
from slurm_helpers import SLURM, TINY_ARGS, finish, launch, run_dirs, summary

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_each_comparison_group_is_one_job_whose_runs_take_turns(slurm_cluster, fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    turns = [o.replace("hydra/launcher=slurm", "hydra/launcher=slurm_turns") for o in SLURM]
    out = finish(launch("-m", *TINY_ARGS, "epochs=2", f"data.root={fmnist_root}", *turns, "strategy=none,cubic",
                        "t_0=0.8", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path))
    assert "All 4 runs completed." in out, out[-4000:]
    assert "4 jobs in 2 SLURM jobs, one per comparison group" in out
    runs = {(summary(d)["strategy"], summary(d)["seed"]): summary(d) for d in run_dirs(sweep)}
    assert sorted(runs) == [("cubic", 0), ("cubic", 1), ("none", 0), ("none", 1)]
    jobs = {}
    for seed in (0, 1):
        method, base = runs[("cubic", seed)]["load"], runs[("none", seed)]["load"]
        # one SLURM job and one node for a run and its baseline, which took turns in it
        assert method["slurm_job"] == base["slurm_job"] and method["slurm_node"] == base["slurm_node"]
        assert method["turns"] == base["turns"] == 2 and method["turns_group"] == base["turns_group"]
        jobs[seed] = method["slurm_job"]
    array = {j.split("_")[0] for j in jobs.values()}
    assert len(array) == 1 and sorted(j.split("_")[1] for j in jobs.values()) == ["0", "1"]  # 2 tasks of one array
    assert all(r["status"] == "completed" for r in runs.values())
    assert (sweep / "analysis" / "summary.md").is_file()
