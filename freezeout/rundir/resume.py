"""A run directory and what it already holds: a finished run (skip it), a checkpoint (resume
it), or a different configuration (refuse it rather than overwrite it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .checkpoint import CHECKPOINT_FILE, load_checkpoint
from .identity import NON_SEMANTIC_KEYS, flatten, under
from .records import SUMMARY_FILE, RunSummary


def prior_run(run_dir: Path, cfg: DictConfig) -> tuple[RunSummary | None, dict[str, Any] | None]:
    """The summary and checkpoint already in ``run_dir`` (None where absent), after checking that
    they belong to the same configuration as ``cfg``."""
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    previous = RunSummary.read(run_dir / SUMMARY_FILE)
    for stored in (previous and previous.config, checkpoint and checkpoint.get("config")):
        if stored is not None:
            check_same_run(stored, cfg, run_dir)
    return previous, checkpoint


def check_same_run(stored: dict, cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume or skip over a run directory that holds a different configuration."""
    current = flatten(OmegaConf.to_container(cfg, resolve=True))
    stored = flatten(stored)
    differ = sorted(k for k in set(current) | set(stored)
                    if not under(k, NON_SEMANTIC_KEYS) and current.get(k) != stored.get(k))
    if differ:
        shown = ", ".join(f"{k}: {stored.get(k)!r} there, {current.get(k)!r} now" for k in differ[:5])
        raise ConfigError(f"{run_dir} holds a run with a different config ({shown}); "
                          "start this one in a new directory (hydra.run.dir=...)")


def hydra_output_dir() -> Path:
    """Hydra's output directory of the running job, or the working directory outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
