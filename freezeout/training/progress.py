"""How a run shows its progress: a tqdm bar (loss, frozen groups, validation error, ETA) on a
terminal; without one (piped output, SLURM and submitit logs, parallel jobs) plain log lines,
at most one every ``every`` seconds, which carry the job's name like every other log line."""
from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("freezeout")


def run_label(strategy: str, t_0: float) -> str:
    """How progress lines name a run: its rule, with ``t_0`` where the rule reads it (the
    baseline ``none`` has no t_0, whatever the sweep sets)."""
    from ..freezing.rules import get_rule

    return strategy if "t_0" in get_rule(strategy).unread else f"{strategy} t_0={t_0}"


class Progress:
    """Shows how far a run is; ``update`` is called at the loop's host syncs and epoch ends."""

    def __init__(self, total: int, initial: int, enabled: bool, desc: str, batch_size: int, every: float = 30.0):
        self.total, self.desc, self.batch_size, self.every = total, desc, batch_size, every
        self.bar = None
        if enabled and sys.stderr.isatty() and not _in_parallel_job():
            self.bar = tqdm(total=total, initial=initial, unit="it", dynamic_ncols=True, mininterval=1.0, desc=desc)
        self.enabled = enabled
        self.start, self.first, self.last_line = time.perf_counter(), initial, 0.0

    def update(self, iteration: int, loss: float, frozen: str, val_err: float | None) -> None:
        err = "-" if val_err is None else f"{100 * val_err:.1f}%"
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3f}", frozen=frozen, val_err=err, refresh=False)
            self.bar.update(iteration - self.bar.n)
            return
        now = time.perf_counter()
        if not self.enabled or now - self.last_line < self.every:
            return
        self.last_line = now
        rate = (iteration - self.first) / max(now - self.start, 1e-9)  # iterations per second, evaluation included
        eta = (self.total - iteration) / rate if rate > 0 else float("nan")
        log.info("%s: iteration %d/%d (%.0f%%)  loss %.3f  frozen %s  val err %s  %.0f img/s  ETA %s", self.desc,
                 iteration, self.total, 100 * iteration / self.total, loss, frozen, err, rate * self.batch_size,
                 _clock(eta))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "-"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def _in_parallel_job() -> bool:
    """A job of a launcher that runs several at once: their bars would interleave."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    launcher = str(HydraConfig.get().launcher.get("_target_", ""))
    return not launcher.endswith("BasicLauncher")
