"""The three figures, each saved as PNG and SVG. Matplotlib's Agg canvas, no pyplot state.

Every function returns ``(paths written, messages)``; a figure that cannot be drawn (no pairs, no
metrics) is skipped with a message instead of failing.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .pairing import BASELINE, is_freezeout

COLORS = {"linear": "tab:blue", "squared": "tab:orange", "cubic": "tab:green"}
MARKERS = {"linear": "s", "squared": "^", "cubic": "o"}
KIND_MARKERS = {"flops": "o", "time": "^", "paper": "s"}
_EXTRA_COLORS = ["tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:red"]


def color(strategy: str | None) -> str:
    """Fixed colour per strategy (baseline black), so all figures agree."""
    if strategy == BASELINE:
        return "black"
    return COLORS.get(strategy) or _EXTRA_COLORS[zlib.crc32(str(strategy).encode()) % 6]


def _ok(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def fo_label(r: dict) -> str:
    """``"cubic t₀=0.8 scaled"``: the FreezeOut settings of a run or group."""
    if r["strategy"] == BASELINE:
        return "baseline (none)"
    label = f"{r['strategy']} t₀={r['t_0']:g}" if _ok(r["t_0"]) else str(r["strategy"])
    return label + (" scaled" if r["scale_lr"] else "") + (" const-time" if r["const_time"] else "")


def _figure(n_panels: int, title: str, width: float = 6.5) -> tuple[Figure, list]:
    cols = min(n_panels, 3)
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(width * cols, 4.8 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="large")
    return fig, axes[:n_panels]


def _save(fig: Figure, out: Path, name: str) -> list[Path]:
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    return paths


def _by_setting(rows: list[dict]) -> dict[str, list[dict]]:
    panels: dict[str, list[dict]] = {}
    for r in rows:
        panels.setdefault(r["setting"], []).append(r)
    return panels


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


def plot_envelope(summary: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """Measured speedup vs relative error per FreezeOut group, std error bars, Pareto front."""
    rows = [r for r in summary if is_freezeout(r) and r["measured_speedup_n"] > 0]
    if not rows:
        return [], ["envelope: skipped, no FreezeOut run is paired with a completed baseline"]
    panels = _by_setting(rows)
    fig, axes = _figure(len(panels), "FreezeOut: measured speedup vs relative error "
                                     "(mean ± std over seeds)")
    for ax, (setting, members) in zip(axes, panels.items()):
        for strategy in dict.fromkeys(r["strategy"] for r in members):
            pts = [r for r in members if r["strategy"] == strategy]
            ax.errorbar([100 * r["measured_speedup_mean"] for r in pts],
                        [100 * r["relative_error_mean"] for r in pts],
                        xerr=[100 * r["measured_speedup_std"] if _ok(r["measured_speedup_std"])
                              else 0.0 for r in pts],
                        yerr=[100 * r["relative_error_std"] if _ok(r["relative_error_std"])
                              else 0.0 for r in pts],
                        fmt=MARKERS.get(strategy, "D"), color=color(strategy), capsize=3,
                        markersize=7, linestyle="none", label=strategy)
            for r in pts:
                ax.annotate(fo_label(r).removeprefix(str(strategy)).strip(),
                            (100 * r["measured_speedup_mean"], 100 * r["relative_error_mean"]),
                            textcoords="offset points", xytext=(5, 5), fontsize="x-small")
        front = pareto_front([(100 * r["measured_speedup_mean"], 100 * r["relative_error_mean"])
                              for r in members if _ok(r["relative_error_mean"])])
        if front:
            ax.step(*zip(*front), where="pre", color="grey", linestyle="--", label="Pareto front")
        ax.axhline(0, color="lightgrey", linewidth=0.8, zorder=0)
        ax.axvline(0, color="lightgrey", linewidth=0.8, zorder=0)
        ax.set(title=setting, xlabel="Measured speedup (% of baseline train time saved)",
               ylabel="Relative error vs baseline (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, "envelope"), []


def plot_predicted_vs_measured(runs: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """Predicted (flops, paper, time) vs measured speedup per paired run, with the y = x line."""
    paired = [r for r in runs if _ok(r["measured_speedup"])]
    kinds = [k for k in ("flops", "paper", "time")
             if any(_ok(r[f"predicted_speedup_{k}"]) for r in paired)]
    if not kinds:
        why = "no paired runs" if not paired else "no run has a predicted speedup"
        return [], [f"predicted_vs_measured: skipped, {why}"]
    notes = [] if "time" in kinds else ["predicted_vs_measured: no time prediction in any run "
                                        "(predict_time off?); flops only"]
    fig, (ax,) = _figure(1, "FreezeOut: predicted vs measured speedup (one point per run)", 7.5)
    values = []
    for kind in kinds:
        for strategy in dict.fromkeys(r["strategy"] for r in paired):
            pts = [(100 * r[f"predicted_speedup_{kind}"], 100 * r["measured_speedup"])
                   for r in paired
                   if r["strategy"] == strategy and _ok(r[f"predicted_speedup_{kind}"])]
            if pts:
                values += [v for p in pts for v in p]
                ax.scatter(*zip(*pts), marker=KIND_MARKERS[kind], color=color(strategy), s=40,
                           alpha=0.8, label=f"{strategy}, predicted by {kind}")
    lo, hi = min(values + [0.0]), max(values + [1.0])
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", label="y = x (prediction exact)")
    ax.set(xlabel="Predicted speedup (%)", ylabel="Measured speedup (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, out, "predicted_vs_measured"), notes


def plot_val_curves(runs: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """Validation error vs cumulative train seconds; baselines bold black, one panel per setting."""
    def points(r: dict) -> list[tuple[float, float]]:
        recs = [(m.get("train_seconds"), m.get("val_err")) for m in r.get("_curve") or []]
        return [(float(t), 100 * float(e)) for t, e in recs
                if isinstance(t, (int, float)) and isinstance(e, (int, float))]

    rows = [r for r in runs if points(r)]
    if not rows:
        return [], ["val_curves: skipped, no run has metrics.jsonl records with val_err"]
    panels = _by_setting(rows)
    fig, axes = _figure(len(panels), "Validation error vs training wall-clock time")
    styles = ["-", "--", "-.", ":"]
    for ax, (setting, members) in zip(axes, panels.items()):
        labels = list(dict.fromkeys(fo_label(r) for r in members if is_freezeout(r)))
        seen: set[str] = set()
        for r in sorted(members, key=lambda r: is_freezeout(r)):
            label = fo_label(r) + ("" if r["status"] == "completed" else f" [{r['status']}]")
            base = not is_freezeout(r)
            ax.plot(*zip(*points(r)), color=color(r["strategy"]), marker=".",
                    linewidth=2.5 if base else 1.3, zorder=3 if base else 2,
                    linestyle="-" if base else styles[labels.index(fo_label(r)) % len(styles)],
                    alpha=1.0 if r["status"] == "completed" else 0.45,
                    label=None if label in seen else label)
            seen.add(label)
        ax.set(title=setting, xlabel="Cumulative train time (s)", ylabel="Validation error (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, out, "val_curves"), []


def plot_all(runs: list[dict], summary: list[dict], out: Path) -> tuple[list[Path], list[str]]:
    """All three figures; returns every path written and every skip message."""
    paths, notes = [], []
    for p, n in (plot_envelope(summary, out), plot_predicted_vs_measured(runs, out),
                 plot_val_curves(runs, out)):
        paths += p
        notes += n
    return paths, notes
