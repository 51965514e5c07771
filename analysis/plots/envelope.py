"""The speedup/error envelope: each method's measured speedup against its relative error.

One point per method (mean over seeds, bars its 95% bootstrap interval), colour and marker per
strategy, open markers for scale_lr off, the parameters that tell a strategy's points apart written
beside them (placed so they do not overlap). For reference, the paper's claim: up to 20% speedup
within 3% relative error (Brock et al. 2017), shaded.

No Pareto front is drawn through the means. A front through the means ranks methods whose error
bars overlap, a ranking two or three seeds cannot support; readers can still see which points
dominate which, with the spreads beside them. ``pareto_front`` remains for callers that want the
means' front. When the runs come from a frontier search (``hydra/sweeper=frontier``), the front
it found is drawn as a dashed line, its best setting within the error budget starred. A method
with any comparison under unequal load (``analysis/loadgap.py``) is ringed, its measured speedup
being biased; one with runs at chance, or compared with a baseline at chance, is crossed. Beside
each setting's panel, its methods' absolute validation error against chance (``abserr.py``), so that
a method at chance stands out though its relative error is near 0.
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from ..methods import method_params
from ..pairing import is_freezeout
from .abserr import CROSS, CROSSED, at_chance, error_panel
from .clip import draw_points, label_clipped, robust_limits
from .labels import place_labels
from .style import family_labels, figure, legend_outside, marker_kw, note, ok, save, scale_lr_handles, style

PAPER_SPEEDUP, PAPER_ERROR = 20.0, 3.0  # percent: "speedup below 20% within 3% relative error"
PAPER_LABEL = "paper's claim (Brock et al. 2017):\nspeedup ≤ 20%, relative error ≤ 3%"
PAPER_FACE = "#E8E8E8"
CLIPPED = "mean off the axis: at the edge,\nlabelled (speedup, error)"
UNEQUAL = "ringed: measured against baselines\nunder unequal load (biased; see summary.md)"
UNEQUAL_COLOUR = "#B00000"
FRONT_COLOUR = "#4D4D4D"
FRONT_LABEL = ("front found by the frontier search\n(its trials' mean speedup by its objective,\n"
               "the time model by default)")
BEST_LABEL = "search's best within its error budget"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both speedup (max) and relative error (min), by speedup.
    Values are rounded to 9 decimals first, so float noise does not make a tie a win."""
    front, best = [], math.inf
    rounded = {(round(x, 9), round(y, 9)) for x, y in points}
    for x, y in sorted(rounded, key=lambda p: (-p[0], p[1])):
        if y < best:
            front.append((x, y))
            best = y
    return front[::-1]


_RING = dict(linestyle="none", marker="o", markersize=15, markerfacecolor="none",
             markeredgecolor=UNEQUAL_COLOUR, markeredgewidth=1.2, zorder=4)


def _pct(x: float) -> float:
    return 100 * x if ok(x) else 0.0


def _bars(rows: list[dict], name: str, means: list[float]) -> list[tuple[float, float]]:
    """(below, above) the mean of each row's bootstrap interval, in percent; (0, 0) without one."""
    out = []
    for r, m in zip(rows, means):
        lo, hi = r.get(f"{name}_lo"), r.get(f"{name}_hi")
        out.append((max(0.0, m - 100 * lo), max(0.0, 100 * hi - m)) if ok(lo) and ok(hi) else (0.0, 0.0))
    return out


def _front(ax, front: list[dict]) -> list:
    """The frontier search's front through its trials, the best within budget starred; returns
    its legend handles."""
    xs, ys = [100 * t["speedup"] for t in front], [100 * t["relative_error"] for t in front]
    ax.plot(xs, ys, linestyle=(0, (4, 2)), color=FRONT_COLOUR, marker="x", markersize=6, linewidth=1.1,
            zorder=2)
    best = [(x, y) for t, x, y in zip(front, xs, ys) if t["best"]]
    handles = [Line2D([], [], linestyle=(0, (4, 2)), color=FRONT_COLOUR, marker="x", label=FRONT_LABEL)]
    if best:
        ax.plot(*zip(*best), linestyle="none", marker="*", markersize=13, color=FRONT_COLOUR, zorder=4)
        handles.append(Line2D([], [], linestyle="none", marker="*", markersize=11, color=FRONT_COLOUR,
                              label=BEST_LABEL))
    return handles


def _panel(ax, rows: list[dict], front: list[dict] | None = None):
    """Draw one setting's methods (and the search's front, if any). Returns its legend handles
    and a function that writes the point labels, to call once the figure's layout is final."""
    xs = [_pct(r["measured_speedup_mean"]) for r in rows]
    ys = [_pct(r["relative_error_mean"]) for r in rows]
    dx, dy = _bars(rows, "measured_speedup", xs), _bars(rows, "relative_error", ys)
    fx, fy = [100 * t["speedup"] for t in front or []], [100 * t["relative_error"] for t in front or []]
    # The range covers the intervals too, but not a wild point's (robust_limits drops those).
    xlim = robust_limits([v for x, (a, b) in zip(xs, dx) for v in (x - a, x, x + b)] + fx,
                         include=(0.0, PAPER_SPEEDUP))
    ylim = robust_limits([v for y, (a, b) in zip(ys, dy) for v in (y - a, y, y + b)] + fy,
                         include=(0.0, PAPER_ERROR))
    ax.set(xlim=xlim, ylim=ylim)
    ax.add_patch(Rectangle((0, ylim[0]), PAPER_SPEEDUP, PAPER_ERROR - ylim[0], zorder=0,
                           facecolor=PAPER_FACE, edgecolor="0.6", linestyle="--", linewidth=0.8))
    ax.axhline(0, color="0.75", linewidth=0.8, zorder=0)
    ax.axvline(0, color="0.75", linewidth=0.8, zorder=0)
    inside = [xlim[0] <= x <= xlim[1] and ylim[0] <= y <= ylim[1] for x, y in zip(xs, ys)]
    unequal = [bool(r.get("n_load_unequal")) for r in rows]
    for r, x, y, ex, ey, keep, ring in zip(rows, xs, ys, dx, dy, inside, unequal):
        if keep:
            kw = marker_kw(r["strategy"], r["scale_lr"])
            ax.errorbar([x], [y], xerr=[[ex[0]], [ex[1]]], yerr=[[ey[0]], [ey[1]]], ecolor=kw["color"],
                        elinewidth=0.9, capsize=2.5, alpha=0.9, linestyle="none", zorder=3, **kw)
            if ring:
                ax.plot([x], [y], **_RING)
            if at_chance(r):
                ax.plot([x], [y], **CROSS)
    out = [i for i, keep in enumerate(inside) if not keep]
    flagged = draw_points(ax, [xs[i] for i in out], [ys[i] for i in out], (xlim, ylim),
                          [marker_kw(rows[i]["strategy"], rows[i]["scale_lr"]) for i in out],
                          value_text=lambda x, y: f"({x:.0f}%, {y:+.0f}%)")
    ax.set(xlabel="Measured speedup (% of baseline training time saved)   better →",
           ylabel="Relative error vs baseline (%), lower is better")
    ax.grid(alpha=0.25)
    legend, texts = family_labels(rows, method_params)
    # every point passed to draw_points lies outside the range, so flagged follows out's order
    flagged = [(x, y, (f"{texts[i]}: {t}" if texts[i] else t) + (", unequal load" if unequal[i] else ""))
               for i, (x, y, t) in zip(out, flagged)]
    points = [(x, y) for x, y, keep in zip(xs, ys, inside) if keep]
    colours = [style(r["strategy"])[0] for r, keep in zip(rows, inside) if keep]

    def write_labels() -> None:
        place_labels(ax, points, [t for t, keep in zip(texts, inside) if keep], avoid=points,
                     color=colours)
        label_clipped(ax, flagged, avoid=points)

    handles = [Line2D([], [], linestyle="none", label=text, **marker_kw(s, None))
               for s, text in legend.items()]
    if front:
        handles += _front(ax, front)
    if any(unequal):
        handles.append(Line2D([], [], label=UNEQUAL, **_RING))
    if any(at_chance(r) for r in rows):
        handles.append(Line2D([], [], label=CROSSED, **CROSS))
    if flagged:
        handles.append(Line2D([], [], linestyle="none", marker="<", color="#B00000", label=CLIPPED))
    return handles, write_labels


def draw_envelope(summary: list[dict], fronts: dict[str, list[dict]] | None = None):
    """The figure, or None when no method is paired with a baseline: per setting, the
    speedup/error panel and beside it the absolute error panel (``abserr.error_panel``), in that
    order in ``fig.axes``. ``fronts``: a frontier search's front per setting
    (``analysis.frontier.read_fronts``)."""
    rows = [r for r in summary if is_freezeout(r) and r["measured_speedup_n"] > 0]
    if not rows:
        return None
    panels: dict[str, list[dict]] = {}
    for r in rows:
        panels.setdefault(r["setting"], []).append(r)
    baselines = {r["setting"]: r for r in summary if not is_freezeout(r)}
    fig, axes = figure(2 * len(panels), "Measured speedup vs relative error, and absolute error, per method",
                       panel_size=(7.4, 6.0), cols=2, legend_width=3.6)
    handles: dict[str, object] = {}
    writers = []
    for ax, errors, (setting, members) in zip(axes[::2], axes[1::2], panels.items()):
        panel_handles, write_labels = _panel(ax, members, (fronts or {}).get(setting))
        panel_handles += error_panel(errors, members, baselines.get(setting))
        writers.append(write_labels)
        for h in panel_handles:
            handles.setdefault(h.get_label(), h)
        ax.set_title(setting, fontsize="medium")
    n = ", ".join(map(str, sorted({int(r["measured_speedup_n"]) for r in rows})))
    extra = scale_lr_handles(rows) + [
        Patch(facecolor=PAPER_FACE, edgecolor="0.6", linestyle="--", label=PAPER_LABEL),
        note(f"points: mean over seeds, bars: 95% bootstrap\n"
             f"interval of the mean (n = {n} seeds per point)"),
        note("no Pareto front through the means: the\nspreads overlap too much to rank them")]
    clipped = [handles.pop(k) for k in (UNEQUAL, CROSSED, CLIPPED) if k in handles]  # last in the legend
    legend_outside(fig, list(handles.values()) + extra + clipped)
    for write_labels in writers:  # last: the legend has taken its room, the axes stay put
        write_labels()
    return fig


def plot_envelope(summary: list[dict], out: Path, fronts: dict[str, list[dict]] | None = None
                  ) -> tuple[list[Path], list[str]]:
    """``envelope.png``/``.svg``, or a message saying why it was skipped."""
    fig = draw_envelope(summary, fronts)
    if fig is None:
        return [], ["envelope: skipped, no FreezeOut run is paired with a completed baseline"]
    return save(fig, out, "envelope"), []
