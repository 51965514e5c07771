"""Has the baseline trained long enough? The share of training, at its end, over which a
baseline's best validation error improved by at most ``TOL`` (half a point): a study whose
baselines are still improving measures FreezeOut's cost in error against a moving target. The
longer study asks for at least a third of training flat. A baseline that never learned
(``collect``'s ``sanity``: at chance) is flat too, and is never called trained long enough."""
from __future__ import annotations

import math

from .collect import COMPLETED
from .pairing import is_freezeout

TOL = 0.005  # absolute validation error: half a point
ENOUGH = 1 / 3  # a study's baselines should be flat for at least this share of training


def flat_share(curve: list[dict], tol: float = TOL) -> float:
    """``(epochs - E) / epochs`` with E the first epoch whose best-so-far validation error lies
    within ``tol`` of the run's best; NaN without validation errors."""
    errs = [r.get("val_err") for r in curve]
    errs = [e for e in errs if isinstance(e, (int, float)) and not math.isnan(e)]
    if not errs:
        return math.nan
    best, running = min(errs), math.inf
    for epoch, err in enumerate(errs, start=1):
        running = min(running, err)
        if running <= best + tol:
            return (len(errs) - epoch) / len(errs)
    return 0.0  # unreachable: the last epoch reaches the best


def plateau_lines(runs: list[dict]) -> list[str]:
    """One line per setting: its baselines' flat share (least over seeds) and whether it is
    enough ("never learned" where a baseline is at chance)."""
    shares: dict[str, list[float]] = {}
    at_chance: dict[str, list[str]] = {}
    for r in runs:
        if not is_freezeout(r) and r["status"] == COMPLETED and not r.get("repeat_of"):
            shares.setdefault(r.get("setting") or "?", []).append(flat_share(r.get("_curve") or []))
            if r.get("sanity"):
                at_chance.setdefault(r.get("setting") or "?", []).append(r["dir"])
    lines = []
    for setting, values in sorted(shares.items()):
        values = [v for v in values if not math.isnan(v)]
        if values:
            least = min(values)
            verdict = "enough" if least >= ENOUGH else f"less than {100 * ENOUGH:.0f}%: train longer"
            if setting in at_chance:
                verdict = (f"not trained: baseline {', '.join(at_chance[setting])} at chance, flat because it "
                           "never learned")
            lines.append(f"{setting}: the baseline's best validation error was within {100 * TOL:g} points of "
                         f"its final best for the last {100 * least:.0f}% of training (least of "
                         f"{len(values)} seeds; {verdict})")
    return lines
