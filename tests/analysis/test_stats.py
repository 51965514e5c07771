"""Statistics over seeds (analysis/stats.py, analysis/loadgap.py): bootstrap intervals checked
against hand computations, the seeds a paired t-test needs against its textbook values, the
paper's-region verdict, and all of it through the analysis of hand-built run directories (table,
envelope bars, the load each comparison ran under)."""
from __future__ import annotations

import math

import pytest
from matplotlib.collections import LineCollection
from test_analysis import make_run

from freezeout.analysis import analyze
from freezeout.analysis.loadgap import NOT_IN_TURNS, compare_load
from freezeout.analysis.plots import draw_envelope
from freezeout.analysis.stats import bootstrap_ci, paired_differences, paired_t_power, region_verdict, seeds_needed


def test_bootstrap_interval_matches_a_hand_computation():
    # Four seeds 0, 0, 0, 1: a resample's mean is K/4 with K ~ Binomial(4, 1/4) (ones drawn).
    # P(K = 0) = 81/256 = 0.316 > 0.025, so the 2.5% percentile is 0; P(K <= 2) = 243/256 = 0.949
    # and P(K <= 3) = 255/256 = 0.996 straddle 0.975, so the 97.5% percentile is 3/4. (A normal
    # interval, mean ± 1.96 * 0.5 / 2, would say -0.24 to 0.74.)
    assert bootstrap_ci([0, 0, 0, 1]) == (0.0, 0.75)
    # Two seeds a, b: resample means a, (a + b) / 2, b with probabilities 1/4, 1/2, 1/4.
    assert bootstrap_ci([0.1, 0.3]) == pytest.approx((0.1, 0.3))
    # Shifting every value shifts the interval; NaNs are dropped; one value gives none.
    assert bootstrap_ci([0.5, 0.5, 0.5, 1.5, math.nan]) == pytest.approx((0.5, 1.25))
    assert all(math.isnan(x) for x in bootstrap_ci([0.2, None]))
    # Seeded: the same numbers every time; another level narrows it.
    values = [0.01, 0.05, -0.02, 0.08, 0.03]
    assert bootstrap_ci(values) == bootstrap_ci(values)
    lo80, hi80 = bootstrap_ci(values, level=0.8)
    lo95, hi95 = bootstrap_ci(values)
    assert lo95 < lo80 < hi80 < hi95


def test_paired_differences_are_taken_seed_by_seed():
    a = {0: 0.10, 1: 0.20, 2: 0.30, 3: math.nan}
    b = {0: 0.05, 2: 0.10, 3: 0.1, 4: 0.2}
    assert paired_differences(a, b) == pytest.approx([0.05, 0.20])


def test_seeds_needed_is_the_paired_t_test_sample_size():
    # Textbook values (two-sided, 5%, power 0.8) for effect size d = delta / sd: d = 1 needs
    # 10 pairs, d = 0.5 needs 34, d = 2 needs 5.
    assert seeds_needed(0.03) == 10
    assert seeds_needed(0.06) == 34
    assert seeds_needed(0.015) == 5
    n = int(seeds_needed(0.06))  # the smallest n with the power: one fewer falls short
    assert paired_t_power(n, 0.06) >= 0.8 > paired_t_power(n - 1, 0.06)
    assert seeds_needed(0.0) == 2 and math.isnan(seeds_needed(math.nan)) and seeds_needed(5.0) == math.inf


@pytest.mark.parametrize("speedup, error, verdict", [
    ((0.05, 0.15), (-0.01, 0.02), "inside"),
    ((0.05, 0.15), (0.01, 0.05), "undecided"),  # the error's interval crosses 3%
    ((0.15, 0.25), (0.00, 0.02), "undecided"),  # the speedup's crosses 20%
    ((0.05, 0.15), (0.04, 0.09), "outside"),
    ((0.25, 0.35), (0.00, 0.02), "beyond"),  # faster than the region claims, within 3%
    ((0.25, 0.35), (0.01, 0.05), "undecided"),
    ((-0.10, -0.02), (-0.02, 0.01), "outside"),  # surely slower than the baseline
    ((math.nan, math.nan), (0.0, 0.01), ""),
])
def test_paper_region_only_when_the_interval_says_so(speedup, error, verdict):
    assert region_verdict(speedup, error) == verdict


def test_compare_load():
    base = {"others_cpu_share": 0.05, "jobs_beside": 0, "turns_group": None}
    # a run and its baseline one after another (the default launcher): never timed fairly, however alike
    # their loads over the whole run (each met its own spells of the machine)
    assert compare_load({"others_cpu_share": 0.10, "jobs_beside": 0}, base) == (pytest.approx(0.05), True,
                                                                              NOT_IN_TURNS)
    gap, unequal, note = compare_load({"others_cpu_share": 0.45, "jobs_beside": 1}, base)
    assert gap == pytest.approx(0.40) and unequal
    assert note == ("other work took 45% of the machine during the run, 5% during its baseline; "
                    "jobs beside: 1 (run), 0 (baseline); " + NOT_IN_TURNS)
    same_round = {"others_cpu_share": 0.9, "turns_group": "g1"}
    assert compare_load(same_round, {"others_cpu_share": 0.1, "turns_group": "g1"}) == (0.0, False, "")
    assert compare_load(None, base)[1:] == (None, "load not recorded by the run")
    # rounds of different sizes: no other work, yet a run taking turns with 5 others steps slower
    alone, in_six = {"others_cpu_share": 0.0, "turns": 1, "turns_group": "g2"}, {"others_cpu_share": 0.0, "turns": 6,
                                                                                  "turns_group": "g1"}
    assert compare_load(alone, in_six) == (0.0, True, "runs taking turns (a process each): 1 (run), 6 (baseline); "
                                           + NOT_IN_TURNS)
    assert compare_load({"others_cpu_share": 0.0, "turns": None}, dict(in_six, turns=1)) == (0.0, True, NOT_IN_TURNS)


def test_a_run_pairs_with_the_baseline_of_its_own_round(tmp_path):
    """Two baselines of one seed: the run took turns with the second by path, and pairs with it;
    the other is listed as a duplicate. A run of no round falls back to the first by path."""
    make_run(tmp_path, "a_base", seconds=200.0, summary_extra={"load": {"turns": 6, "turns_group": "g1"}})
    make_run(tmp_path, "b_base", seconds=100.0, summary_extra={"load": {"turns": 2, "turns_group": "g2"}})
    make_run(tmp_path, "c_run", strategy="cubic", seconds=90.0, summary_extra={"load": {"turns": 2, "turns_group": "g2"}})
    make_run(tmp_path, "d_alone", strategy="linear", seconds=90.0, summary_extra={"load": {"turns": None}})
    runs = analyze(tmp_path, tmp_path / "analysis")["runs"].set_index("dir")
    assert runs.loc["c_run", "baseline_dir"] == "b_base" and runs.loc["c_run", "duplicate_baselines"] == "a_base"
    assert runs.loc["c_run", "measured_speedup"] == pytest.approx(0.1)  # 1 - 90 / 100
    assert runs.loc["c_run", "load_unequal"] == False  # noqa: E712 (a pandas cell)
    assert runs.loc["d_alone", "baseline_dir"] == "a_base" and runs.loc["d_alone", "load_unequal"] == True  # noqa: E712


def _load(others: float, group: str | None = None) -> dict:
    return {"others_cpu_share": others, "jobs_beside": None, "turns_group": group}


@pytest.fixture(scope="module")
def four_seeds(tmp_path_factory):
    """Baselines of 100 s at error 0.20; cubic at 90, 90, 90, 70 s (speedups 0.1, 0.1, 0.1, 0.3)
    with errors 0.20, 0.21, 0.20, 0.22 (relative errors 0, 0.05, 0, 0.1). Seed 3's baseline ran
    beside other work (the runs' others took 5%, its 60%)."""
    root = tmp_path_factory.mktemp("four")
    for seed, (seconds, err) in enumerate([(90, 0.20), (90, 0.21), (90, 0.20), (70, 0.22)]):
        make_run(root, f"b{seed}", seed=seed, seconds=100.0, err=0.20,
                 summary_extra={"load": _load(0.6 if seed == 3 else 0.05)})
        make_run(root, f"c{seed}", strategy="cubic", seed=seed, seconds=seconds, err=err, flops=0.2,
                 summary_extra={"load": _load(0.05)})
    return root, analyze(root, root / "analysis")


def test_intervals_reach_the_table_and_the_summary(four_seeds):
    _, result = four_seeds
    row = result["summary"].set_index("strategy").loc["cubic"]
    assert (row["measured_speedup_lo"], row["measured_speedup_hi"]) == pytest.approx((0.1, 0.25))  # hand: as above
    # relative errors 0, 0.05, 0, 0.1: resample means by hand are (sum of 4 draws) / 4; the
    # interval's ends are found by the same code path, so check them against the definition.
    assert (row["relative_error_lo"], row["relative_error_hi"]) == pytest.approx(bootstrap_ci([0, 0.05, 0, 0.1]))
    assert row["paper_region"] == "undecided"  # speedup up to 25%, error up to 8.75%
    sd = math.sqrt(sum((x - 0.15) ** 2 for x in (0.1, 0.1, 0.1, 0.3)) / 3)
    assert row["measured_speedup_seeds_needed"] == seeds_needed(sd) == 90  # d = 0.03 / 0.1 = 0.3
    md = result["markdown"]
    assert "15.0% ± 10.0% [10.0, 25.0]" in md
    assert "| undecided |" in md and "| 22 / 90 |" in md
    assert row["n_load_unequal"] == 4  # none of the four took turns with its baseline; seed 3 also under 60%


def test_unequal_load_is_flagged_per_comparison(four_seeds):
    root, result = four_seeds
    runs = result["runs"].set_index("dir")
    assert runs.loc["c3", "load_unequal"] == True  # noqa: E712 (a pandas cell)
    assert runs.loc["c0", "load_unequal"] == True  # noqa: E712 (one after another: not timed fairly)
    assert runs.loc["c0", "load_note"] == NOT_IN_TURNS
    assert "c3 vs b3: other work took 5% of the machine during the run, 60% during its baseline" in result["report"]
    assert "unequal load" in (root / "analysis" / "summary.md").read_text()


def test_envelope_bars_are_the_intervals(four_seeds):
    root, _ = four_seeds
    from test_analysis_plots import records

    from freezeout.analysis.aggregate import aggregate
    from freezeout.analysis.loadgap import add_load_gaps

    fig = draw_envelope(aggregate(add_load_gaps(records(root))))
    ax, errors = fig.axes  # the speedup/error panel, and the absolute error beside it
    segments = [seg for c in ax.collections if isinstance(c, LineCollection) for seg in c.get_segments()]
    horizontal = [seg for seg in segments if seg[0][1] == seg[1][1]]
    assert [sorted(round(x, 6) for x in (seg[0][0], seg[1][0])) for seg in horizontal] == [[10.0, 25.0]]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("95% bootstrap" in t for t in labels)
    # seed 3's comparison was under unequal load: cubic's point (15%, +3.75%) is ringed
    rings = [ln for ln in ax.lines if ln.get_marker() == "o" and ln.get_markerfacecolor() == "none"]
    assert [(x, round(y, 6)) for ln in rings for x, y in ln.get_xydata()] == [(15.0, 3.75)]
    assert any("unequal load" in t for t in labels)


def test_flat_share_of_training():
    from freezeout.analysis.plateau import flat_share

    curve = [{"val_err": e} for e in (0.50, 0.30, 0.200, 0.198, 0.199, 0.197)]
    # best 0.197; the best-so-far is within 0.005 of it from epoch 3 (0.200): 3 of 6 epochs flat
    assert flat_share(curve) == 0.5
    assert flat_share([{"val_err": e} for e in (0.5, 0.4, 0.3)]) == 0.0  # still improving at the end
    assert math.isnan(flat_share([]))
