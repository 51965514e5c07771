"""Hydra callback: analyse a sweep when it ends. Enable it in a sweep config with

    hydra:
      callbacks:
        analysis:
          _target_: freezeout.analysis.callback.AnalysisCallback
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class AnalysisCallback(Callback):
    """Runs ``analyze`` on ``hydra.sweep.dir`` (output in ``<sweep dir>/analysis``) after a
    multirun, then says which runs did not complete. It never raises: a failing analysis is
    printed, and the sweep's own result stands."""

    def __init__(self, enabled: bool = True, out: str | None = None, **kwargs: Any) -> None:
        self.enabled = enabled
        self.out = out

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = "<unknown sweep dir>"
        try:
            from .pipeline import analyze  # imported late: a broken import must not stop Hydra

            sweep_dir = Path(str(config.hydra.sweep.dir))
            result = analyze(sweep_dir, self.out)
            print(result["report"])
            print(result["status_line"], flush=True)
        except Exception as e:  # noqa: BLE001 - by design: report, do not crash the sweep
            print(f"[analysis] could not analyse {sweep_dir}: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)
            if type(e).__name__ not in ("FileNotFoundError", "NoRunsError"):  # else: expected
                traceback.print_exc(limit=3, file=sys.stderr)
