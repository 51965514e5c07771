"""The sweeper trains each baseline once and first: FreezeOut-only keys are dropped from baseline
jobs, t_0/scale_lr from the peer rules' jobs, and baselines lead the job list."""
from hydra_plugins.freezeout_launch.sweeper import drop_redundant_baselines


def test_baseline_jobs_lose_freezeout_keys_and_duplicates_and_lead_their_comparison_group():
    jobs = [[f"strategy={s}", f"t_0={t}", f"scale_lr={lr}", f"seed={seed}"]
            for s in ("cubic", "none") for t in (0.5, 0.8) for lr in ("true", "false") for seed in (0, 1)]
    out = drop_redundant_baselines(jobs)
    assert len(out) == 8 + 2  # 2 t_0 x 2 scale_lr x 2 seeds of cubic, one baseline per seed
    # seed 0's group (its baseline, then its FreezeOut jobs untouched and in order), then seed 1's
    assert out == [["strategy=none", "seed=0"], *jobs[:8:2], ["strategy=none", "seed=1"], *jobs[1:8:2]]


def test_other_keys_still_make_baselines_distinct():
    jobs = [["strategy=none", "t_0=0.5", "lr=0.1"], ["strategy=none", "t_0=0.8", "lr=0.1"],
            ["strategy=none", "const_time=true", "lr=0.05"], ["strategy.name=none", "t_0=0.5", "lr=0.05"]]
    assert drop_redundant_baselines(jobs) == [["strategy=none", "lr=0.1"], ["strategy=none", "lr=0.05"],
                                              ["strategy.name=none", "lr=0.05"]]


def test_peer_rules_ignore_t_0_and_scale_lr_but_keep_their_own_settings():
    jobs = [[f"strategy={s}", f"t_0={t}", "cache_frozen=true"] for s in ("layer_freezing", "cubic", "none")
            for t in (0.5, 0.8)]
    jobs.append(["strategy=autofreeze", "t_0=0.5", "strategy.interval=10"])
    assert drop_redundant_baselines(jobs) == [
        ["strategy=none"],  # the cache is a FreezeOut setting too: a baseline freezes nothing
        ["strategy=layer_freezing", "cache_frozen=true"],
        ["strategy=cubic", "t_0=0.5", "cache_frozen=true"], ["strategy=cubic", "t_0=0.8", "cache_frozen=true"],
        ["strategy=autofreeze", "strategy.interval=10"]]
