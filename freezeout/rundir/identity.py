"""Which config keys make a run what it is. Shared by the trainer (may a run directory be
resumed?), the sweeper (which baseline jobs are duplicates?) and the analysis (which baseline
pairs with which run?). Pure Python, no torch."""
from __future__ import annotations

from typing import Any

#: Settings of FreezeOut itself (and of its rivals, under ``strategy``): a baseline (strategy
#: none) is the same run whatever they are. The cache changes how fast frozen groups run, not what
#: a run computes, and a baseline freezes nothing.
FREEZEOUT_KEYS = ("strategy", "t_0", "scale_lr", "const_time", "cache_frozen", "cache_memory_gb", "cache_host")
#: Settings that do not change what a run computes (paths, logging, trackers, bookkeeping, the
#: named sweep a run came from). The one list: run-directory names (Hydra's override_dirname,
#: through the ``freezeout.non_semantic_keys`` resolver), the resume check, the sweeper and the
#: analysis.
NON_SEMANTIC_KEYS = ("sweeps", "data.root", "log_every", "checkpoint", "progress", "predict_time",
                     "predict_time_share", "debug", "logger")


#: The trackers' settings (``logger.NAME.KEY``) and their defaults: none changes what a run computes.
TRACKER_SETTINGS: dict[str, dict[str, Any]] = {
    "tensorboard": {"log_dir": "tb"},
    "mlflow": {"tracking_uri": None, "experiment_name": "freezeout", "run_name": None},
    "csv": {"log_dir": "csv"},
}


def run_name_excluded_keys() -> list[str]:
    """Keys kept out of a run directory's name: the non-semantic keys and every tracker key a
    command line can set (Hydra's exclude_keys match whole override keys)."""
    trackers = [f"logger.{name}{'.' + key if key else ''}" for name, keys in TRACKER_SETTINGS.items()
                for key in ("", *keys)]
    # The initial weights are part of what a run is (the resume check compares them), but a path
    # in a directory name would nest directories.
    return [*NON_SEMANTIC_KEYS, *trackers, "model.init"]


def register_run_name_resolver() -> None:
    """``${freezeout.non_semantic_keys:}``, which conf/config.yaml names run directories with."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("freezeout.non_semantic_keys"):
        OmegaConf.register_new_resolver("freezeout.non_semantic_keys", run_name_excluded_keys)


def flatten(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and empty dicts stay values."""
    if not isinstance(cfg, dict):
        return {prefix: cfg} if prefix else {}
    flat: dict[str, Any] = {}
    for k, v in cfg.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            flat.update(flatten(v, key))
        else:
            flat[key] = v
    return flat


def under(key: str, names: tuple[str, ...]) -> bool:
    """Whether dotted ``key`` is one of ``names`` or lies under one (``strategy.name``)."""
    return any(key == n or key.startswith(n + ".") for n in names)
