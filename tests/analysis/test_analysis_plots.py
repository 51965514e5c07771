"""The figures' promises, checked on real Agg figures: labels that do not overlap, axes that one
outlier cannot stretch, const_time runs apart, small multiples with the baseline in each."""
from __future__ import annotations

import io
import itertools
import math

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from test_analysis import make_run

from freezeout.analysis.aggregate import add_settings, aggregate
from freezeout.analysis.collect import collect_runs
from freezeout.analysis.pairing import pair_runs
from freezeout.analysis.plots import draw_envelope, draw_predicted_vs_measured, draw_val_curves, place_labels, robust_limits
from freezeout.analysis.plots.labels import text_box


def records(root):
    return add_settings(pair_runs(collect_runs(root)))


def overlapping(boxes) -> list:
    return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]


def label_boxes(ax):
    renderer = ax.figure.canvas.get_renderer()
    return [text_box(t, renderer) for t in ax.texts]


def test_placed_labels_do_not_overlap_in_a_crowd():
    fig = Figure(figsize=(6, 4.5), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set(xlim=(0, 50), ylim=(-5, 30))
    # 16 points, most of them in a tight clump: labels at a fixed offset would pile up
    points = [(20 + (i % 4) * 1.2, 10 + (i // 4) * 1.0) for i in range(12)] + [
        (5, 2), (40, 25), (41, 25.5), (45, 0)]
    ax.plot(*zip(*points), "o", linestyle="none")
    texts = [f"t₀=0.{i % 9 + 1}, scale_lr on" if i % 3 else f"freeze_start=0.{i}" for i in
             range(len(points))]
    anns = place_labels(ax, points, texts)
    assert all(a is not None for a in anns) and len(ax.texts) == len(points)
    boxes = label_boxes(ax)
    assert overlapping(boxes) == []
    frame = ax.get_window_extent(fig.canvas.get_renderer())
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
               for b in boxes)  # and all inside the axes
    fig.savefig(io.BytesIO(), format="png")
    # drawing does not move them (they are out of the layout)
    assert [b.bounds for b in label_boxes(ax)] == [b.bounds for b in boxes]
    again = Figure(figsize=(6, 4.5), dpi=150, layout="constrained")  # deterministic
    FigureCanvasAgg(again)
    ax2 = again.subplots()
    ax2.set(xlim=(0, 50), ylim=(-5, 30))
    ax2.plot(*zip(*points), "o", linestyle="none")
    place_labels(ax2, points, texts)
    assert [t.get_position() for t in ax2.texts] == [t.get_position() for t in ax.texts]


def test_an_outlier_does_not_set_the_range():
    values = [5.0, 10.0, 15.0, 22.0, 30.0, 41.0, 50.0, -900.0]
    lo, hi = robust_limits(values, include=(0.0,))
    assert -10 < lo < 0 and 50 < hi < 60
    assert robust_limits([1.0, 2.0, -900.0]) == robust_limits([1.0, 2.0])  # even with 3 values
    assert robust_limits([30.0, -900.0])[0] < -900  # 2 values: no way to tell which is wild


def test_predicted_vs_measured_clips_the_outlier_and_keeps_const_time_apart(tmp_path):
    for seed in range(5):
        make_run(tmp_path, f"b{seed}", seed=seed, seconds=100.0)
        make_run(tmp_path, f"c{seed}", strategy="cubic", seed=seed, seconds=70.0 - seed,
                 flops=0.3, time=0.29)
        make_run(tmp_path, f"k{seed}", strategy="cubic", seed=seed, const_time=True,
                 seconds=100.0 + seed, flops=0.3, summary_extra={"const_time_prediction": "flops"})
    make_run(tmp_path, "b9", seed=9, seconds=100.0)
    make_run(tmp_path, "wild", strategy="cubic", seed=9, seconds=1000.0, flops=0.3, time=0.29)
    fig, notes = draw_predicted_vs_measured(records(tmp_path))
    assert notes == []
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["flops model, 6 runs", "time model (measured step times), 6 runs",
                      "const_time runs, 5 runs"]

    def points(ax):  # one marker per run: single-point lines without a line style
        return [tuple(line.get_xydata()[0]) for line in ax.lines if len(line.get_xdata()) == 1]

    flops, time, const = fig.axes
    assert len(points(flops)) == 6 and len(points(const)) == 5
    assert flops.get_ylim()[0] > -50  # the −900% run does not set the range ...
    low = [p for p in points(flops) if p[1] < 0]
    assert len(low) == 1 and low[0][1] >= flops.get_ylim()[0]  # ... it sits at the edge
    assert any(t.get_text() == "-900%" for t in flops.texts)  # with its value
    assert sorted(round(y) for _, y in points(const)) == [-4, -3, -2, -1, 0]  # measured: ≈ 0%
    assert all(x == pytest.approx(30.0) for x, _ in points(const))


def test_envelope_draws_the_papers_claim_and_no_front(tmp_path):
    for seed in (0, 1):
        make_run(tmp_path, f"b{seed}", seed=seed, seconds=100.0, err=0.2)
        for i, t_0 in enumerate((0.5, 0.6, 0.7, 0.8, 0.9)):
            for strategy in ("linear", "squared", "cubic"):
                make_run(tmp_path, f"{strategy}{t_0}_{seed}", strategy=strategy, t_0=t_0,
                         seed=seed, seconds=80.0 + i + seed, err=0.205 + 0.001 * i)
    fig = draw_envelope(aggregate(records(tmp_path)))
    ax, errors = fig.axes  # the speedup/error panel, and the absolute error beside it
    paper = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_x() == 0]
    assert len(paper) == 1 and paper[0].get_width() == 20
    assert paper[0].get_y() + paper[0].get_height() == pytest.approx(3.0)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(text.startswith("paper's claim (Brock et al. 2017)") for text in labels)
    assert "filled marker: scale_lr on" in labels and "cubic" in labels
    assert not any("Pareto" in text and "no Pareto" not in text for text in labels)
    assert sorted(t.get_text() for t in ax.texts) == sorted(
        f"t₀={t:g}" for t in (0.5, 0.6, 0.7, 0.8, 0.9) for _ in range(3))
    assert overlapping(label_boxes(ax)) == []  # 15 points in a clump, no label on another


def test_val_curves_one_panel_per_method_with_the_baseline_in_each(tmp_path):
    lf = {"freeze_start": 0.5, "freeze_level": 1.0}
    for seed in (0, 1):
        make_run(tmp_path, f"b{seed}", seed=seed)
        make_run(tmp_path, f"c{seed}", strategy="cubic", seed=seed, seconds=70.0)
        make_run(tmp_path, f"l{seed}", strategy="layer_freezing", seed=seed, strategy_params=lf)
    fig = draw_val_curves(records(tmp_path))
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == [
        "cubic (t₀=0.8, scale_lr on)", "layer_freezing (freeze_start=0.5, freeze_level=1)"]
    for ax in fig.axes:
        black = [line for line in ax.lines if line.get_color() == "#000000"]
        assert len(black) == 2  # both baseline seeds, in every panel
        assert sorted(t.get_text() for t in ax.texts) == ["s0", "s1"]
    assert fig.axes[0].get_ylim() == fig.axes[1].get_ylim()  # shared axes within a setting
    assert not math.isnan(fig.axes[0].get_xlim()[1])


@pytest.mark.parametrize("other, short", [({"name": "wrn", "depth": 16}, True),
                                          ({"name": "densenet", "depth": 10, "growth_rate": 12}, False)])
def test_val_curves_of_several_settings_name_each_as_short_as_tells_them_apart(tmp_path, other, short):
    for tag, model in (("a", None), ("b", other)):
        extra = {"model": model} if model else {}
        make_run(tmp_path, f"{tag}-base", **extra)
        make_run(tmp_path, f"{tag}-cubic", strategy="cubic", seconds=70.0, **extra)
    titles = [ax.get_title().split("\n") for ax in draw_val_curves(records(tmp_path)).axes if ax.get_visible()]
    assert [t[1] for t in titles] == ["cubic (t₀=0.8, scale_lr on)"] * 2
    names = sorted(t[0] for t in titles)
    if short:  # model / data alone tells them apart: no parameters to run into the next panel
        assert names == ["densenet / cifar10", "wrn / cifar10"]
    else:  # the same model and data: the parameters stay
        assert names[0] != names[1] and all(n.startswith("densenet / cifar10 (") for n in names)
