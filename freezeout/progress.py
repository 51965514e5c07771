"""The progress display of a run: a tqdm bar with loss, frozen groups, validation error and ETA."""
from __future__ import annotations

from tqdm import tqdm


class Progress:
    """Shows how far a run is; ``update`` is called at the loop's host syncs and epoch ends."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str):
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, unit="it", dynamic_ncols=True,
                        mininterval=1.0, desc=desc)

    def update(self, iteration: int, loss: float, frozen: str, val_err: float | None) -> None:
        self.bar.set_postfix(loss=f"{loss:.3f}", frozen=frozen,
                             val_err="-" if val_err is None else f"{100 * val_err:.1f}%", refresh=False)
        self.bar.update(iteration - self.bar.n)

    def close(self) -> None:
        self.bar.close()
