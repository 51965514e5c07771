"""Validation error against training wall-clock time, as small multiples.

One panel per method (within each setting), the setting's baseline in every panel (thin black
lines), the method's seeds as thin lines in its colour, each labelled ``s<seed>`` at its end. A
method that saves time ends its lines left of the baseline's; one that costs accuracy ends them
higher. Panels of one setting share their axes, so they compare at a glance. Runs that did not
complete are dotted.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from matplotlib.lines import Line2D

from ..collect import COMPLETED
from ..methods import method_sort_key
from ..pairing import is_freezeout
from .clip import clip, robust_limits
from .labels import place_labels
from .style import figure, legend_outside, note, save, style

BASE_COLOUR = "#000000"


def curve(r: dict) -> list[tuple[float, float]]:
    """(cumulative train seconds, validation error in %) per logged epoch."""
    recs = [(m.get("train_seconds"), m.get("val_err")) for m in r.get("_curve") or []]
    return [(float(t), 100 * float(e)) for t, e in recs
            if isinstance(t, (int, float)) and isinstance(e, (int, float))]


def _line(ax, r: dict, colour: str, marker: str, base: bool) -> tuple[float, float]:
    """Draw one run; returns its last point."""
    pts = curve(r)
    done = r["status"] == COMPLETED
    ax.plot(*zip(*pts), color=colour, marker=marker, markersize=2.5 if base else 3.5,
            linewidth=0.9 if base else 1.2, alpha=0.55 if base else 0.95,
            linestyle=("--" if base else "-") if done else ":", zorder=2 if base else 3)
    if not done:
        ax.plot(*pts[-1], marker="x", color=colour, markersize=6, zorder=4)
    return pts[-1]


def _panels(rows: list[dict]) -> list[tuple[str, str, list[dict], list[dict]]]:
    """(setting, title, method runs, baseline runs) per panel, settings in order of first run."""
    settings: dict[str, list[dict]] = {}
    for r in rows:
        settings.setdefault(r["setting"], []).append(r)
    panels = []
    for setting, members in settings.items():
        bases = [r for r in members if not is_freezeout(r)]
        methods: dict[str, list[dict]] = {}
        for r in sorted((r for r in members if is_freezeout(r)), key=method_sort_key):
            methods.setdefault(r["method"], []).append(r)
        for title, runs in methods.items() or [("baseline (none)", [])]:
            panels.append((setting, title, runs, bases))
    return panels


def _short_names(settings) -> dict[str, str]:
    """A panel-sized name per setting: ``model / data`` without the parameters where that alone
    tells it from the other settings (full names run into the next panel's title)."""
    short = {s: s.split(" (")[0] for s in settings}
    return {s: t if list(short.values()).count(t) == 1 else s for s, t in short.items()}


def _ranges(rows: list[dict]) -> dict[str, tuple[tuple, tuple]]:
    """(x range, y range) per setting, set by the bulk of the runs: a run timed on a busy machine
    (10× the others' time) or an early epoch far above the rest would squash what matters, where
    the runs end. Such runs end at the right edge, marked; the cut is said in the legend."""
    ranges = {}
    for setting in dict.fromkeys(r["setting"] for r in rows):
        members = [r for r in rows if r["setting"] == setting]
        ends = [curve(r)[-1][0] for r in members]
        start = min(curve(r)[0][0] for r in members)
        xlim = robust_limits(ends, include=(start,), min_scale=0.1 * statistics.median(ends))
        errs = [e for r in members for t, e in curve(r) if t <= xlim[1]]
        ranges[setting] = xlim, robust_limits(errs, k=2.5, min_scale=5.0)
    return ranges


def _seed_label(ax, r: dict, end: tuple[float, float], xlim: tuple,
                colour: str) -> tuple[tuple, str]:
    """Where to write a run's seed label and what: ``s0``, ``s0 (repeat)``, ``s0: 6000 s →``
    (for a run ending beyond the range: marked at the right edge)."""
    text = f"s{r.get('seed')}" + (" (repeat)" if r.get("repeat_of") else "")
    if end[0] > xlim[1]:
        edge = (clip(end[0], *xlim)[0], end[1])
        ax.plot(*edge, marker=">", color=colour, markersize=6, zorder=4)
        return edge, f"{text}: {end[0]:.0f} s →"
    return end, text


def draw_val_curves(runs: list[dict]):
    """The figure, or None when no run logged a validation error."""
    rows = [r for r in runs if curve(r)]
    if not rows:
        return None
    panels = _panels(rows)
    ranges = _ranges(rows)
    several = len(ranges) > 1
    names = _short_names(ranges)
    fig, axes = figure(len(panels), "Validation error vs training wall-clock time, per method",
                       panel_size=(4.6, 3.6), legend_width=2.6, cols=3 if len(panels) <= 9 else 4)
    first: dict[str, object] = {}
    labels = []
    for ax, (setting, title, fo_runs, bases) in zip(axes, panels):
        if setting in first:  # one setting's panels share their axes
            ax.sharex(first[setting])
            ax.sharey(first[setting])
        first.setdefault(setting, ax)
        xlim, ylim = ranges[setting]
        base_ends = [_line(ax, r, BASE_COLOUR, ".", True) for r in bases]
        colour, marker = style(fo_runs[0]["strategy"]) if fo_runs else (BASE_COLOUR, ".")
        seeds = [_seed_label(ax, r, _line(ax, r, colour, marker, False), xlim, colour)
                 for r in fo_runs]
        labels.append((ax, seeds, base_ends))
        ax.set(xlim=xlim, ylim=ylim)
        ax.set_title(f"{names[setting]}\n{title}" if several else title, fontsize="small", color=colour)
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize="small")
    fig.supxlabel("Cumulative training time (s)   ← faster")
    fig.supylabel("Validation error (%), lower is better")
    legend_outside(fig, [
        Line2D([], [], color=BASE_COLOUR, linestyle="--", linewidth=0.9, alpha=0.55, marker=".",
               label="baseline (none), in every panel:\none line per seed"),
        Line2D([], [], color="0.3", linewidth=1.2, marker="o", markersize=3.5,
               label="the panel's method (its colour):\none line per seed, labelled\n"
                     "s<seed> at its end; a marker\nper epoch"),
        Line2D([], [], color="0.3", linestyle=":", marker="x", label="did not complete"),
    ] + _cut_notes(rows, ranges))
    for ax, seeds, base_ends in labels:  # last: the layout is final
        place_labels(ax, [p for p, _ in seeds], [t for _, t in seeds], avoid=base_ends,
                     marker_pt=5)
    return fig


def _cut_notes(rows: list[dict], ranges: dict) -> list:
    """Legend lines saying what lies beyond the panels' ranges."""
    above = sum(e > ranges[r["setting"]][1][1] for r in rows for _, e in curve(r))
    late = sum(curve(r)[-1][0] > ranges[r["setting"]][0][1] for r in rows)
    notes = [f"{above} early-epoch point{'s' * (above != 1)} lie\nabove the panels' range"] if above else []
    if late:
        notes.append(f"{late} run{'s' * (late != 1)} end{'s' * (late == 1)} far to the right:\n"
                     "labelled with its end time")
    return [note(n) for n in notes]


def plot_val_curves(runs: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """``val_curves.png``/``.svg``, or a message saying why it was skipped."""
    fig = draw_val_curves(runs)
    if fig is None:
        return [], ["val_curves: skipped, no run has metrics.jsonl records with val_err"]
    return save(fig, out, "val_curves"), []
