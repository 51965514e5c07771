"""The sweeper trains each baseline once: FreezeOut-only keys are dropped from baseline jobs."""
from hydra_plugins.freezeout_launch.sweeper import drop_redundant_baselines


def test_baseline_jobs_lose_freezeout_keys_and_duplicates():
    jobs = [[f"strategy={s}", f"t_0={t}", f"scale_lr={lr}", f"seed={seed}"]
            for s in ("cubic", "none") for t in (0.5, 0.8) for lr in ("true", "false") for seed in (0, 1)]
    out = drop_redundant_baselines(jobs)
    assert len(out) == 8 + 2  # 2 t_0 x 2 scale_lr x 2 seeds of cubic, one baseline per seed
    assert out[-2:] == [["strategy=none", "seed=0"], ["strategy=none", "seed=1"]]
    assert out[:8] == jobs[:8]  # FreezeOut jobs untouched, order kept


def test_other_keys_still_make_baselines_distinct():
    jobs = [["strategy=none", "t_0=0.5", "lr=0.1"], ["strategy=none", "t_0=0.8", "lr=0.1"],
            ["strategy=none", "const_time=true", "lr=0.05"], ["strategy.name=none", "t_0=0.5", "lr=0.05"]]
    assert drop_redundant_baselines(jobs) == [["strategy=none", "lr=0.1"], ["strategy=none", "lr=0.05"],
                                              ["strategy.name=none", "lr=0.05"]]
