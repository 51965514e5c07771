"""The envelope's second panel per setting: each method's absolute validation error, the baseline's
on top, beside the band of chance.

Relative error hides the level: a FreezeOut run and a baseline that both sit at chance differ by
nothing, so the speedup/error panel shows them as a free win. Here the same methods stand on an
absolute scale (mean over seeds, bars ± the sample standard deviation), with chance,
``1 - 1/num_classes``, drawn as a dashed line and the band within ``CHANCE_MARGIN`` of it shaded; a
method with runs that never learned (``freezeout.rundir.sanity``) is crossed, here and on the
speedup/error panel.
"""
from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from freezeout.rundir.sanity import CHANCE_MARGIN

from .style import marker_kw, ok

CHANCE_FACE = "#F6D5D5"
CHANCE_COLOUR = "#B00000"
CHANCE_BAND = f"within {100 * CHANCE_MARGIN:g} points of chance\n(1 - 1/classes: dashed)"
CROSSED = "crossed: runs at chance\n(never learned; see summary.md)"
CROSS = dict(linestyle="none", marker="x", markersize=16, markeredgewidth=2.0, color=CHANCE_COLOUR, zorder=5)


def at_chance(row: dict) -> bool:
    """Whether a method's group holds runs that never learned, or was compared with such a baseline."""
    return bool(row.get("n_at_chance")) or bool(row.get("region_note"))


def error_panel(ax, rows: list[dict], baseline: dict | None) -> list:
    """Draw the methods' absolute validation error (``rows``, the ``baseline`` row first when
    there is one); returns the legend handles it adds."""
    members = ([baseline] if baseline else []) + rows
    ys = list(range(len(members)))[::-1]  # the first at the top
    crossed = False
    for y, r in zip(ys, members):
        mean, std = r.get("final_val_err_mean"), r.get("final_val_err_std")
        if not ok(mean):
            continue
        kw = marker_kw(r["strategy"], r.get("scale_lr"))
        ax.errorbar([100 * mean], [y], xerr=[[100 * std], [100 * std]] if ok(std) else None, ecolor=kw["color"],
                    elinewidth=0.9, capsize=2.5, linestyle="none", zorder=3, **kw)
        if r.get("n_at_chance"):
            ax.plot([100 * mean], [y], **CROSS)
            crossed = True
    chance = next((r["chance_err"] for r in members if ok(r.get("chance_err"))), None)
    handles = []
    if chance is not None:
        ax.axvspan(100 * (chance - CHANCE_MARGIN), 100, facecolor=CHANCE_FACE, edgecolor="none", zorder=0)
        ax.axvline(100 * chance, color=CHANCE_COLOUR, linestyle="--", linewidth=1.0, zorder=1)
        handles.append(Patch(facecolor=CHANCE_FACE, edgecolor=CHANCE_COLOUR, linestyle="--", label=CHANCE_BAND))
    if crossed:
        handles.append(Line2D([], [], label=CROSSED, **CROSS))
    ax.set_yticks(ys, [r["method"] for r in members], fontsize="small")
    ax.set(xlim=(0, 100), ylim=(-0.7, len(members) - 0.3), title="Validation error (absolute)",
           xlabel="Validation error (%), mean ± std over seeds, lower is better")
    ax.grid(axis="x", alpha=0.25)
    return handles
