"""The run-end check (freezeout.rundir.sanity) at its edges, and the analysis repeating it for a run
that recorded no check."""
from __future__ import annotations

import math

import pytest
from test_analysis import make_run

from freezeout.analysis import analyze
from freezeout.rundir.sanity import CHANCE_MARGIN, chance_error, recorded_problem, sanity_problem


def _curve(*losses):
    return [{"train_loss": x} for x in losses]


def test_chance_is_one_minus_one_over_the_classes():
    assert chance_error(3) == pytest.approx(2 / 3) and chance_error(10) == pytest.approx(0.9)
    assert math.isnan(chance_error(None)) and math.isnan(chance_error(1)) and math.isnan(chance_error(True))


def test_error_within_the_margin_of_chance_is_flagged():
    learning = _curve(1.0, 0.5)  # the loss fell: only the error decides
    edge = 2 / 3 - CHANCE_MARGIN
    assert "within 5 points of chance (66.7% for 3 classes)" in sanity_problem(0.62, learning, 3)
    assert sanity_problem(edge + 1e-9, learning, 3) is not None
    assert sanity_problem(edge - 0.001, learning, 3) is None
    assert sanity_problem(0.62, learning, None) is None  # without the classes nothing is judged


def test_a_loss_that_never_fell_below_a_uniform_guess_is_flagged():
    # ln 3 = 1.0986: 0.97 of it is 1.0657
    problem = sanity_problem(0.3, _curve(1.2, 1.07), 3)
    assert "training loss never fell: 1.070 in the last epoch (first 1.200)" in problem
    assert sanity_problem(0.3, _curve(1.2, 1.06), 3) is None
    # a one-epoch run that learned within its epoch: its first loss is its last, and low
    assert sanity_problem(0.3, _curve(0.4), 3) is None


def test_recorded_problem():
    assert recorded_problem("ok") is None and recorded_problem(None) is None
    assert recorded_problem("at chance: x") == "at chance: x"


def test_the_analysis_checks_a_run_that_recorded_no_check(tmp_path):
    """A summary with its classes but no ``sanity`` (written before the check existed): judged
    from its curve; a recorded "ok" is taken as it is."""
    make_run(tmp_path, "base", err=0.88, summary_extra={"num_classes": 10})  # curve loss 1.0 < 0.9 ln 10
    make_run(tmp_path, "run", strategy="cubic", err=0.5, time=0.2, summary_extra={"num_classes": 10, "sanity": "ok"})
    runs = analyze(tmp_path, tmp_path / "analysis")["runs"].set_index("dir")
    assert runs.loc["base", "sanity"].startswith("at chance: final validation error 88.0%")
    assert pd_blank(runs.loc["run", "sanity"])
    assert runs.loc["run", "baseline_sanity"] == runs.loc["base", "sanity"]


def pd_blank(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x == ""


def test_the_envelope_shows_absolute_error_and_crosses_a_method_at_chance(tmp_path):
    """Baselines at chance (88%, 10 classes) and cubic beside them: a relative error near 0 on the
    speedup/error panel, crossed; the absolute panel puts both by the dashed chance line at 90%."""
    from test_analysis_plots import records

    from freezeout.analysis.aggregate import aggregate
    from freezeout.analysis.plots import draw_envelope
    from freezeout.analysis.plots.abserr import CROSSED

    for seed in (0, 1):
        make_run(tmp_path, f"b{seed}", seed=seed, err=0.88, summary_extra={"num_classes": 10})
        make_run(tmp_path, f"c{seed}", strategy="cubic", seed=seed, seconds=60.0, err=0.5,
                 summary_extra={"num_classes": 10})
        make_run(tmp_path, f"l{seed}", strategy="linear", seed=seed, seconds=60.0, err=0.87,
                 summary_extra={"num_classes": 10})
    fig = draw_envelope(aggregate(records(tmp_path)))
    envelope, errors = fig.axes
    crosses = [ln for ln in envelope.lines if ln.get_marker() == "x"]
    assert len(crosses) == 2  # both compared with baselines at chance; linear's own runs at chance too
    by_y = dict(zip(errors.get_yticks(), (t.get_text() for t in errors.get_yticklabels())))
    assert by_y[max(by_y)] == "baseline (none)"  # on top
    assert sorted(by_y.values()) == ["baseline (none)", "cubic (t₀=0.8, scale_lr on)",
                                     "linear (t₀=0.8, scale_lr on)"]
    dashed = [ln for ln in errors.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == pytest.approx([90.0, 90.0])
    crossed = sorted(round(float(ln.get_xdata()[0]), 6) for ln in errors.lines if ln.get_marker() == "x")
    assert crossed == [87.0, 88.0]  # the baseline and linear, whose runs never learned; not cubic at 50%
    assert CROSSED in [t.get_text() for t in fig.legends[0].get_texts()]
