"""The three figures, each saved as PNG and SVG (Matplotlib's Agg canvas, no pyplot state):

- ``envelope``: measured speedup vs relative error per method, with the paper's claimed region;
- ``predicted_vs_measured``: each prediction model against the measured speedup, per run;
- ``val_curves``: validation error vs training time, one small panel per method.

Every ``plot_*`` returns ``(paths written, messages)``; a figure that cannot be drawn (no pairs,
no metrics) is skipped with a message instead of failing. ``draw_*`` return the figure itself.
"""
from __future__ import annotations

from pathlib import Path

from .clip import robust_limits
from .curves import draw_val_curves, plot_val_curves
from .envelope import draw_envelope, pareto_front, plot_envelope
from .labels import place_labels
from .predicted import draw_predicted_vs_measured, plot_predicted_vs_measured

__all__ = ["draw_envelope", "draw_predicted_vs_measured", "draw_val_curves", "pareto_front",
           "place_labels", "plot_all", "plot_envelope", "plot_predicted_vs_measured",
           "plot_val_curves", "robust_limits"]


def plot_all(runs: list[dict], summary: list[dict], out: Path, fronts: dict | None = None
             ) -> tuple[list[Path], list[str]]:
    """All three figures (``fronts``: a frontier search's, on the envelope); returns every path
    written and every skip message."""
    paths, notes = [], []
    for p, n in (plot_envelope(summary, out, fronts), plot_predicted_vs_measured(runs, out),
                 plot_val_curves(runs, out)):
        paths += p
        notes += n
    return paths, notes
