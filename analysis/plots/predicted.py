"""Predicted against measured speedup: one panel per prediction model, one point per paired run.

Points on y = x: the prediction was exact; above: the run was faster than predicted. Axes share
one range set by the bulk of the runs; a wild run sits at the edge as an arrowhead with its value.
``const_time`` runs train longer on purpose to spend the baseline's time, so they are by design
not faster: they get their own panel, against the 0% they aim for, instead of the y = x line.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from ..collect import PREDICTION_KINDS
from ..methods import strategy_sort_key
from .clip import draw_points, label_clipped, robust_limits
from .style import figure, legend_outside, marker_kw, note, ok, save, scale_lr_handles

MODEL_NAMES = {"flops": "flops model", "time": "time model (measured step times)",
               "paper": "paper's estimate"}
_MEASURED = "Measured speedup (%)   higher: faster →"


def _pct(x: float) -> float:
    return 100 * x


def _ct_kind(r: dict) -> str | None:
    """The prediction a const_time run sized its schedule by (flops when not recorded)."""
    kind = r.get("const_time_prediction") if r.get("const_time_prediction") in PREDICTION_KINDS else "flops"
    return kind if ok(r[f"predicted_speedup_{kind}"]) else None


def _scatter(ax, runs: list[dict], xs: list[float], limits) -> list:
    """One marker per run; returns the clipped ones for labelling."""
    ys = [_pct(r["measured_speedup"]) for r in runs]
    return draw_points(ax, xs, ys, limits, [marker_kw(r["strategy"], r.get("scale_lr"), 6.5)
                                            for r in runs])


def no_time_reason(runs: list[dict]) -> str:
    """Why these runs have no time prediction, as their summaries recorded it (``time_model``'s
    ``skipped``), with how many runs gave each reason; "not recorded" for runs that did not say."""
    reasons: dict[str, int] = {}
    for r in runs:
        why = str(r.get("time_model_skipped") or "its reason not recorded")
        reasons[why] = reasons.get(why, 0) + 1
    return "; ".join(f"{why} ({n} run{'s' if n != 1 else ''})" for why, n in reasons.items())


def draw_predicted_vs_measured(runs: list[dict]):
    """``(figure or None, notes)``."""
    paired = [r for r in runs if ok(r["measured_speedup"])]
    ordinary = [r for r in paired if not r.get("const_time")]
    const = [r for r in paired if r.get("const_time") and _ct_kind(r)]
    kinds = [k for k in PREDICTION_KINDS if any(ok(r[f"predicted_speedup_{k}"]) for r in ordinary)]
    if not kinds and not const:
        why = "no paired runs" if not paired else "no run has a predicted speedup"
        return None, [f"predicted_vs_measured: skipped, {why}"]
    notes = [] if "time" in kinds or not kinds else [
        f"predicted_vs_measured: no time prediction in any run: {no_time_reason(ordinary)}"]
    unsized = sum(1 for r in paired if r.get("const_time") and not _ct_kind(r))
    if unsized:
        notes.append(f"predicted_vs_measured: {unsized} const_time run(s) left out, no prediction recorded")
    fig, axes = figure(len(kinds) + bool(const),
                       "Predicted vs measured speedup: one point per paired run in each panel",
                       panel_size=(5.4, 5.0))
    values = [_pct(r[f"predicted_speedup_{k}"]) for k in kinds for r in ordinary
              if ok(r[f"predicted_speedup_{k}"])] + [_pct(r["measured_speedup"]) for r in ordinary]
    lim = robust_limits(values, include=(0.0,))
    writers = []
    for ax, kind in zip(axes, kinds):
        pts = [r for r in ordinary if ok(r[f"predicted_speedup_{kind}"])]
        ax.plot(lim, lim, color="0.45", linestyle="--", linewidth=1, zorder=1)
        flagged = _scatter(ax, pts, [_pct(r[f"predicted_speedup_{kind}"]) for r in pts], (lim, lim))
        ax.set(xlim=lim, ylim=lim, aspect="equal", title=f"{MODEL_NAMES[kind]}, {len(pts)} runs",
               xlabel=f"Predicted speedup, {MODEL_NAMES[kind].split(' (')[0]} (%)", ylabel=_MEASURED)
        writers.append((ax, flagged))
    if const:
        ax = axes[-1]
        xs = [_pct(r[f"predicted_speedup_{_ct_kind(r)}"]) for r in const]
        ys = [_pct(r["measured_speedup"]) for r in const]
        xlim, ylim = robust_limits(xs, include=(0.0,)), robust_limits(ys, include=(0.0, -10.0, 10.0))
        ax.axhline(0, color="0.45", linestyle="--", linewidth=1, zorder=1)
        flagged = _scatter(ax, const, xs, (xlim, ylim))
        ax.set(xlim=xlim, ylim=ylim, title=f"const_time runs, {len(const)} runs",
               xlabel="Predicted speedup that sized the run (%)", ylabel=_MEASURED)
        writers.append((ax, flagged))
    handles = {}
    for r in sorted(ordinary + const, key=lambda r: strategy_sort_key(r["strategy"])):
        handles.setdefault(r["strategy"], Line2D([], [], linestyle="none", label=str(r["strategy"]),
                                                 **marker_kw(r["strategy"], None, 6.5)))
    extra = scale_lr_handles(paired) + [
        Line2D([], [], color="0.45", linestyle="--", label="y = x: prediction exact" if kinds
               else "0%: the baseline's time")]
    if kinds:
        extra.append(note("above the line: faster than predicted"))
    if const:
        extra.append(note("const_time runs train T/(1−s) iterations\nto spend the baseline's "
                          "time: by design\nnot faster, so their own panel, where\n"
                          "0% (dashed) is on target"))
    if any(flagged for _, flagged in writers):
        extra.append(Line2D([], [], linestyle="none", marker="v", color="#B00000",
                            label="off the axis: drawn at the edge,\nlabelled with its value"))
    legend_outside(fig, list(handles.values()) + extra)
    for ax, flagged in writers:  # once the layout is final (see labels.place_labels)
        label_clipped(ax, flagged)
    return fig, notes


def plot_predicted_vs_measured(runs: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """``predicted_vs_measured.png``/``.svg``, or a message saying why it was skipped."""
    fig, notes = draw_predicted_vs_measured(runs)
    if fig is None:
        return [], notes
    return save(fig, out, "predicted_vs_measured"), notes
