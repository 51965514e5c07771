"""A run directory and what it already holds: a finished run (skip it), a checkpoint (resume
it), or a different configuration (refuse it rather than overwrite it); and, for ``freezeout
train --resume``, the latest unfinished run of a configuration among many."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from .checkpoint import CHECKPOINT_FILE, load_checkpoint
from .identity import NON_SEMANTIC_KEYS, flatten, under
from .records import FINAL_STATUSES, SUMMARY_FILE, RunSummary


def prior_run(run_dir: Path, cfg: DictConfig) -> tuple[RunSummary | None, dict[str, Any] | None]:
    """The summary and checkpoint already in ``run_dir`` (None where absent), after checking that
    they belong to the same configuration as ``cfg``."""
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_FILE)
    previous = RunSummary.read(run_dir / SUMMARY_FILE)
    for stored in (previous and previous.config, checkpoint and checkpoint.get("config")):
        if stored is not None:
            check_same_run(stored, cfg, run_dir)
    return previous, checkpoint


def config_differences(stored: dict, cfg: DictConfig) -> tuple[list[str], dict, dict]:
    """The keys (dotted, sorted) that make ``stored`` (a run's resolved config) another run than
    ``cfg``, and both flattened."""
    current = flatten(OmegaConf.to_container(cfg, resolve=True))
    stored = flatten(stored)
    differ = sorted(k for k in set(current) | set(stored)
                    if not under(k, NON_SEMANTIC_KEYS) and current.get(k) != stored.get(k))
    return differ, stored, current


def check_same_run(stored: dict, cfg: DictConfig, run_dir: Path) -> None:
    """Refuse to resume or skip over a run directory that holds a different configuration."""
    differ, stored, current = config_differences(stored, cfg)
    if differ:
        shown = ", ".join(f"{k}: {stored.get(k)!r} there, {current.get(k)!r} now" for k in differ[:5])
        raise ConfigError(f"{run_dir} holds a run with a different config ({shown}); "
                          "start this one in a new directory (hydra.run.dir=...)")


def resumable_runs(root: Path, cfg: DictConfig) -> list[tuple[Path, RunSummary]]:
    """The run directories under ``root`` (any depth) that hold an unfinished run of ``cfg``'s
    configuration with a checkpoint to go on from (interrupted, killed, or failed after one),
    latest first (by its summary's last write)."""
    found = []
    for path in Path(root).rglob(SUMMARY_FILE):
        run_dir = path.parent
        try:
            summary = RunSummary.read(path)
        except (OSError, ValueError):  # a torn or foreign file: not a run to resume
            continue
        if (summary is None or summary.status in FINAL_STATUSES or not summary.config
                or not (run_dir / CHECKPOINT_FILE).is_file()):
            continue
        if not config_differences(summary.config, cfg)[0]:
            found.append((path.stat().st_mtime, run_dir, summary))
    return [(run_dir, summary) for _, run_dir, summary in sorted(found, key=lambda f: f[0], reverse=True)]


def hydra_output_dir() -> Path:
    """Hydra's output directory of the running job, or the working directory outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    return Path.cwd()
