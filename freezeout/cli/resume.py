"""``freezeout train --resume KEY=VALUE ...``: go on with the latest unfinished run of that config.

An interrupted run (Ctrl-C, SIGTERM, a killed job) keeps its checkpoint in its run directory;
``--resume`` finds the latest one under ``./outputs`` whose config is the same run (the keys of
:mod:`freezeout.rundir.identity`; paths, logging and trackers may differ) and trains on in that
directory, as ``hydra.run.dir=DIR`` would. Without ``--resume`` a run that finds such a run says
so, naming it, before it starts anew in a new directory: a second copy is never started silently.
A sweep (``-m``) resumes by itself when re-launched with the same ``hydra.sweep.dir``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

RESUME_FLAG = "--resume"
#: Where single runs go (conf/config.yaml's hydra.run.dir), relative to the launch directory.
OUTPUTS = Path("outputs")
#: Hydra flags that take a value (the value is not an override).
_VALUED = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn", "--package", "-p",
           "--experimental-rerun", "--info", "-i")


def resume_overrides(argv: Sequence[str]) -> list[str] | None:
    """``argv`` for Hydra: without ``--resume``, with ``hydra.run.dir=`` of the run to go on
    with when it was given. None, after one ``error:`` line, when there is nothing to resume."""
    args = [a for a in argv if a != RESUME_FLAG]
    resume = len(args) < len(argv)
    sweep = bool({"-m", "--multirun"} & set(args))
    chosen = any(a.startswith(("hydra.run.dir=", "++hydra.run.dir=", "+hydra.run.dir=")) for a in args)
    if resume and sweep:
        return _error(f"{RESUME_FLAG} goes on with one run; a sweep (-m) resumes its runs when re-launched "
                      "with the same hydra.sweep.dir=DIR")
    if sweep or chosen or {"--cfg", "-c", "--hydra-help", "--info", "-i"} & set(args):
        return args  # a sweep, a run directory given, or no training: nothing to find
    if not resume and not _any_unfinished(OUTPUTS):
        return args  # the usual case costs no compose
    runs = _same_config_runs(args)
    if runs is None:  # the config does not compose: Hydra says why in one line
        return args
    if resume:
        if not runs:
            return _error(f"{RESUME_FLAG}: no unfinished run of this config under {OUTPUTS.resolve()} (one that "
                          f"was interrupted, with its checkpoint); run the command without {RESUME_FLAG} to start it")
        run_dir, summary = runs[0]
        print(f"resuming {run_dir} ({summary.status} at iteration {summary.iterations_done}"
              f"{f'; {len(runs) - 1} older unfinished copies left alone' if len(runs) > 1 else ''})",
              file=sys.stderr, flush=True)
        return [*args, f"hydra.run.dir={run_dir}"]
    if runs:
        print(f"note: {runs[0][0]} holds an unfinished run of this config ({runs[0][1].status}); this run starts "
              f"anew in a new directory; add {RESUME_FLAG} to go on with that one instead", file=sys.stderr, flush=True)
    return args


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return None


def _any_unfinished(root: Path) -> bool:
    """Whether ``root`` holds a run directory with a checkpoint and no finished summary (cheap:
    no config is composed)."""
    from ..rundir.checkpoint import CHECKPOINT_FILE
    from ..rundir.records import FINAL_STATUSES, SUMMARY_FILE, read_json

    if not root.is_dir():
        return False
    for path in root.rglob(CHECKPOINT_FILE):
        try:
            summary = read_json(path.parent / SUMMARY_FILE)
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and summary.get("status") not in FINAL_STATUSES:
            return True
    return False


def _same_config_runs(args: list[str]):
    """The unfinished runs of the config ``args`` compose, latest first; None when it does not
    compose. ``--config-dir DIR`` is read as Hydra will read it."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from hydra_plugins.freezeout_launch.searchpath import CONFIG_DIR_ENV

    from ..config import compose_config
    from ..rundir.resume import resumable_runs

    overrides, config_dir, rest = [], None, list(args)
    while rest:
        arg = rest.pop(0)
        if arg in _VALUED:
            value = rest.pop(0) if rest else ""
            config_dir = value if arg in ("--config-dir", "-cd") else config_dir
        elif arg.startswith("--config-dir="):
            config_dir = arg.partition("=")[2]
        elif not arg.startswith("-") and not arg.startswith(("hydra.", "hydra/", "+hydra.", "++hydra.")):
            overrides.append(arg)
    saved = os.environ.get(CONFIG_DIR_ENV)
    if config_dir:
        os.environ[CONFIG_DIR_ENV] = str(Path(config_dir).resolve())
    try:
        cfg = compose_config(*overrides)
    except (HydraException, OmegaConfBaseException):
        return None
    finally:
        if config_dir:
            os.environ.pop(CONFIG_DIR_ENV) if saved is None else os.environ.update({CONFIG_DIR_ENV: saved})
    return resumable_runs(OUTPUTS, cfg)
