"""Did a run learn at all? The check the trainer makes at a run's end (``summary.json``'s ``sanity``)
and the analysis repeats for runs that did not record it.

A run is flagged when

- its final validation error lies within ``CHANCE_MARGIN`` (5 points) of chance,
  ``1 - 1 / num_classes`` (a model guessing the most frequent class of balanced data); or
- its training loss never fell: the last epoch's mean training loss is not clearly below the loss of
  a uniform guess, ``ln(num_classes)`` (above ``LOSS_FELL`` of it). The first epoch's loss is no
  reference: a model that learns in its first epoch has a low first-epoch mean already.

A comparison against a flagged baseline measures nothing a user wants (both runs sit at chance,
their relative error is near 0 and their speedup a pure cost figure): the analysis gives no region
verdict for it. Pure Python, no torch.
"""
from __future__ import annotations

import math
from typing import Any

CHANCE_MARGIN = 0.05  # absolute validation error: 5 points below chance still counts as "at chance"
LOSS_FELL = 0.97  # the last epoch's training loss must fall below this share of ln(num_classes)
OK = "ok"  # summary.json's sanity for a run that passed


def chance_error(num_classes: int | None) -> float:
    """``1 - 1/num_classes``: the error of guessing one class of balanced data; NaN when unknown."""
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        return math.nan
    return 1.0 - 1.0 / num_classes


def _number(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else math.nan


def sanity_problem(final_val_err: Any, curve: list[dict], num_classes: int | None) -> str | None:
    """Why a run looks as if it never learned (see the module doc), or None. Without
    ``num_classes`` nothing can be judged (None)."""
    chance = chance_error(num_classes)
    if math.isnan(chance):
        return None
    reasons = []
    err = _number(final_val_err)
    if not math.isnan(err) and err >= chance - CHANCE_MARGIN:
        reasons.append(f"final validation error {100 * err:.1f}% is within {100 * CHANCE_MARGIN:g} points of "
                       f"chance ({100 * chance:.1f}% for {num_classes} classes)")
    losses = [_number(r.get("train_loss")) for r in curve if isinstance(r, dict)]
    losses = [x for x in losses if not math.isnan(x)]
    uniform = math.log(num_classes)
    if losses and losses[-1] > LOSS_FELL * uniform:
        reasons.append(f"training loss never fell: {losses[-1]:.3f} in the last epoch (first {losses[0]:.3f}), "
                       f"a uniform guess scores ln({num_classes}) = {uniform:.3f}")
    if not reasons:
        return None
    return "at chance: " + "; ".join(reasons) + " (tune optimizer.lr for this model first: docs/own-models-and-data.md)"


def recorded_problem(sanity: Any) -> str | None:
    """The problem a ``summary.json``'s ``sanity`` field names, or None (passed, or not recorded)."""
    return None if sanity in (None, OK) else str(sanity)
