"""Point labels that do not overlap: a small deterministic placement in display coordinates.

Each label tries 8 directions (NE, NW, SE, SW, E, W, N, S) on rings of growing distance from its
point and takes the candidate that overlaps fewest already-placed labels, then fewest points,
staying inside the axes; the first ring with a free spot wins. Text sizes come from the figure's
own renderer, so what is measured is what is drawn. Labels placed beyond the first two rings get a
thin leader line to their point. Labels are left out of the layout engine, so placing them cannot
move the axes they were measured in.
"""
from __future__ import annotations

import math

from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

DIRECTIONS = [(1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
RINGS_PT = (2, 8, 16, 26, 38, 52)  # gap between a label and its point's marker, in points
_LEADER_FROM_RING = 2
_HALO = dict(boxstyle="square,pad=0.12", facecolor="white", edgecolor="none", alpha=0.75)  # legible over grid and bars


def _boxes_overlap(a: Bbox, b: Bbox, pad: float) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def _inside(box: Bbox, frame: Bbox) -> bool:
    return (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
            and box.y1 <= frame.y1)


def _point_box(xy_px: tuple[float, float], half: float) -> Bbox:
    return Bbox.from_extents(xy_px[0] - half, xy_px[1] - half, xy_px[0] + half, xy_px[1] + half)


def text_box(ann: Text, renderer) -> Bbox:
    """The window extent of a label's text alone (without its leader line), in pixels."""
    ann.update_positions(renderer)  # an annotation's text transform is set at draw time
    return Text.get_window_extent(ann, renderer)


def place_labels(ax, points: list[tuple[float, float]], texts: list[str], *,
                 avoid: list[tuple[float, float]] = (), marker_pt: float = 8.0,
                 fontsize: str | float = "x-small", color: str | list[str] = "0.15",
                 pad_px: float = 4.0) -> list[Annotation | None]:
    """Annotate ``points`` (data coordinates) with ``texts`` without overlaps where space allows.

    ``avoid``: more data points labels should not cover (the labelled points always count). Set
    the axes limits first: placement is measured against them. Empty texts get no label (None).
    ``color``: one for all labels, or one per label.
    Returns the annotations in the order of ``points``.
    """
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout: the axes' final place on the canvas
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    px_per_pt = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    half = marker_pt * px_per_pt / 2
    marks = [_point_box(tuple(to_px(p)), half) for p in dict.fromkeys(list(points) + list(avoid))
             if all(math.isfinite(v) for v in p)]
    placed: list[Bbox] = []
    result: list[Annotation | None] = [None] * len(points)

    # Crowded points choose first: they have the fewest free spots.
    px = [to_px(p) for p in points]
    def neighbours(i: int) -> int:
        return sum(math.dist(px[i], q) < 60 * px_per_pt for q in px) - 1
    order = sorted((i for i, t in enumerate(texts) if t), key=lambda i: (-neighbours(i), i))

    def label(i: int, **kw) -> Annotation:
        ann = ax.annotate(texts[i], points[i], textcoords="offset points", fontsize=fontsize,
                          color=color if isinstance(color, str) else color[i],
                          annotation_clip=False, zorder=5, bbox=_HALO, **kw)
        ann.set_in_layout(False)
        return ann

    for i in order:
        ann, best = label(i, xytext=(0, 0)), None
        for ring, dist in enumerate(RINGS_PT):
            for d, (dx, dy) in enumerate(DIRECTIONS):
                scale = dist + marker_pt / 2  # square rings: corners clear a square marker too
                ann.set_position((dx * scale, dy * scale))
                ann.set_horizontalalignment({1: "left", -1: "right", 0: "center"}[dx])
                ann.set_verticalalignment({1: "bottom", -1: "top", 0: "center"}[dy])
                box = text_box(ann, renderer)
                cost = (1000 * sum(_boxes_overlap(box, b, pad_px) for b in placed)
                        + 100 * (not _inside(box, frame))
                        + 10 * sum(_boxes_overlap(box, m, 0) for m in marks))
                if best is None or cost < best[0]:
                    best = (cost, ring, (dx * scale, dy * scale), ann.get_ha(), ann.get_va(), box)
            if best[0] == 0:
                break  # the nearest ring with a free spot
        _, ring, offset, ha, va, box = best
        ann.remove()  # drawn again at the chosen spot, with a leader line when far away
        leader = dict(arrowstyle="-", color="0.55", linewidth=0.6, shrinkA=1, shrinkB=3)
        result[i] = label(i, xytext=offset, ha=ha, va=va,
                          arrowprops=leader if ring >= _LEADER_FROM_RING else None)
        placed.append(box)
    return result
