"""Axis ranges that one wild run cannot set, and outliers marked at the edge with their value.

A single run timed while the machine was busy can measure −900%: drawn to scale it squashes every
other point into a sliver. The range is set by the bulk of the data: the median ± ``k`` robust
standard deviations (1.4826 × the median absolute deviation, which half the data can be wild
without moving; at least ``min_scale``). Points beyond it are drawn at the edge as an arrowhead
pointing off the axis, labelled with their value.
"""
from __future__ import annotations

import math
import statistics

from .labels import place_labels

_EDGE = 0.025  # clipped points sit this fraction of the range inside the edge


def robust_limits(values: list[float], *, include: tuple[float, ...] = (), k: float = 3.0,
                  min_scale: float = 10.0, pad: float = 0.06) -> tuple[float, float]:
    """(low, high) covering ``values`` but their far outliers, and every value in ``include``.

    With fewer than 3 values nothing counts as an outlier. ``min_scale`` (data units) keeps a
    tight cluster from making its own near neighbours outliers.
    """
    v = [x for x in values if x is not None and math.isfinite(x)]
    if len(v) >= 3:
        med = statistics.median(v)
        scale = max(1.4826 * statistics.median(abs(x - med) for x in v), min_scale)
        v = [x for x in v if abs(x - med) <= k * scale]
    v += [x for x in include if math.isfinite(x)]
    if not v:
        return -1.0, 1.0
    lo, hi = min(v), max(v)
    span = (hi - lo) or 1.0
    return lo - pad * span, hi + pad * span


def clip(value: float, lo: float, hi: float) -> tuple[float, int]:
    """(where to draw ``value``, side): side -1 below ``lo``, +1 above ``hi``, 0 inside."""
    inset = _EDGE * (hi - lo)
    if value < lo:
        return lo + inset, -1
    if value > hi:
        return hi - inset, 1
    return value, 0


def clipped_marker(side_x: int, side_y: int) -> str:
    """An arrowhead pointing off the axis the value lies beyond."""
    if side_y:
        return "v" if side_y < 0 else "^"
    return "<" if side_x < 0 else ">"


def draw_points(ax, xs: list[float], ys: list[float], limits: tuple[tuple, tuple], kws: list[dict],
                value_text=lambda x, y: f"{y:+.0f}%") -> list[tuple[float, float, str]]:
    """Plot one marker per (x, y) with its ``kws`` (``marker_kw``); outside ``limits`` ((xlo,
    xhi), (ylo, yhi)) as an edge arrowhead. Returns the clipped points to label: (x, y, text)."""
    (xlo, xhi), (ylo, yhi) = limits
    flagged = []
    for x, y, kw in zip(xs, ys, kws):
        cx, sx = clip(x, xlo, xhi)
        cy, sy = clip(y, ylo, yhi)
        if sx or sy:
            kw = dict(kw, marker=clipped_marker(sx, sy), markerfacecolor=kw.get("color"))
            flagged.append((cx, cy, value_text(x, y)))
        ax.plot([cx], [cy], linestyle="none", zorder=4, clip_on=False, **kw)
    return flagged


def label_clipped(ax, flagged: list[tuple[float, float, str]], avoid=()) -> None:
    """Write each clipped point's true value beside its edge marker."""
    if flagged:
        place_labels(ax, [(x, y) for x, y, _ in flagged], [t for _, _, t in flagged],
                     avoid=avoid, color="#B00000", fontsize="small")
