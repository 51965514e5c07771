"""What every figure shares: one colour and one marker per strategy (Okabe–Ito, a palette that
colour-blind readers can tell apart, by the rule's recorded facts), filled/open markers for scale_lr on/off, figure grids, notes
and saving. Matplotlib's Agg canvas, no pyplot state."""
from __future__ import annotations

import math
import textwrap
import zlib
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..methods import is_baseline, param_text, rule_facts

DPI = 150  # figures are laid out, measured (label placement) and saved at this one resolution

#: (colour, marker) by the rule's place in the registry (its recorded ``order``: the baseline,
#: linear, squared, cubic, the peers, then rules added since). Okabe & Ito (2008): distinct for
#: all common colour blindnesses; the marker tells strategies apart in greyscale too.
PALETTE = [("#000000", "o"), ("#0072B2", "s"), ("#E69F00", "^"), ("#009E73", "o"), ("#D55E00", "D"),
           ("#CC79A7", "P"), ("#56B4E9", "X"), ("#7F7F7F", "h"), ("#882255", "v"), ("#44AA99", "*")]
_EXTRA = PALETTE[6:]  # for strategies without a recorded order, picked by name


def style(strategy: str | None) -> tuple[str, str]:
    """(colour, marker) of a strategy, from its rule's recorded facts: the baseline black, the
    others by their order; one without facts gets a fixed pick from spare pairs."""
    if is_baseline(strategy):
        return PALETTE[0]
    order = rule_facts(strategy)["order"]
    if isinstance(order, int) and 0 < order < len(PALETTE):
        return PALETTE[order]
    return _EXTRA[zlib.crc32(str(strategy).encode()) % len(_EXTRA)]


def ok(x: float | None) -> bool:
    """A number to plot: not None, not NaN."""
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def face(strategy: str | None, scale_lr: bool | None) -> str:
    """Marker face: the strategy's colour, white (open) for scale_lr off."""
    return "white" if scale_lr is False else style(strategy)[0]


def marker_kw(strategy: str | None, scale_lr: bool | None, size: float = 7) -> dict:
    """Keyword arguments for ``plot``/``errorbar`` drawing one method's markers."""
    colour, marker = style(strategy)
    return dict(marker=marker, color=colour, markerfacecolor=face(strategy, scale_lr),
                markeredgecolor=colour, markersize=size, markeredgewidth=1.3)


def family_labels(rows: list[dict], params_of) -> tuple[dict[str, str], list[str]]:
    """Split methods into what the legend says per strategy and what each point's label says.

    Returns ``({strategy: legend text}, [point label per row])``: a parameter that is the same for
    every row of a strategy goes into its legend entry, one that varies onto the points; scale_lr
    is left to the marker fill.
    """
    by_strategy: dict[str, list[dict]] = {}
    for r, p in zip(rows, map(params_of, rows)):
        by_strategy.setdefault(r["strategy"], []).append({k: v for k, v in p.items() if k != "scale_lr"})
    legend, varying = {}, {}
    for strategy, plist in by_strategy.items():
        keys = list(dict.fromkeys(k for p in plist for k in p))
        varying[strategy] = [k for k in keys if len({repr(p.get(k)) for p in plist}) > 1]
        same = [param_text(k, plist[0][k]) for k in keys
                if k not in varying[strategy] and k in plist[0]]
        text = f"{strategy} ({', '.join(same)})" if same else str(strategy)
        legend[strategy] = textwrap.fill(text, 36, subsequent_indent="  ")  # a narrow legend
    labels = []
    for r in rows:
        p = params_of(r)
        labels.append(", ".join(param_text(k, p[k]) for k in varying[r["strategy"]] if k in p))
    return legend, labels


def scale_lr_handles(rows: list[dict]) -> list[Line2D]:
    """Legend entries explaining filled/open markers, for the values that occur."""
    values = sorted({r.get("scale_lr") for r in rows if r.get("scale_lr") is not None}, reverse=True)
    return [Line2D([], [], linestyle="none", marker="o", markersize=7, color="0.35",
                   markerfacecolor="0.35" if v else "white",
                   label=f"{'filled' if v else 'open'} marker: scale_lr {'on' if v else 'off'}")
            for v in values]


def figure(n_panels: int, title: str, panel_size=(5.6, 4.4), cols: int = 3,
           legend_width: float = 3.2) -> tuple[Figure, list]:
    """A constrained-layout figure with ``n_panels`` axes on a grid of at most ``cols`` columns,
    ``legend_width`` inches wider for the legend at its right."""
    cols = max(1, min(n_panels, cols))
    rows = math.ceil(n_panels / cols)
    fig = Figure(figsize=(panel_size[0] * cols + legend_width, panel_size[1] * rows), dpi=DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, cols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize="large")
    return fig, axes[:n_panels]


def note(text: str) -> Line2D:
    """A legend entry that is only text: how to read the figure, beside its legend."""
    return Line2D([], [], linestyle="none", marker="none", label=text)


def legend_outside(fig: Figure, handles: list, loc: str = "outside right center",
                   ncols: int = 1) -> None:
    """One legend for the figure, outside every panel, so it never covers data."""
    if handles:
        fig.legend(handles=handles, loc=loc, fontsize="small", frameon=False, ncols=ncols)


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """``<name>.png`` (at ``DPI``) and ``<name>.svg``."""
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=DPI)
    with rc_context({"svg.hashsalt": "freezeout"}):  # fixed ids, no date: same runs, same file
        fig.savefig(paths[1], metadata={"Date": None})
    return paths
