"""The user's project as the place a command runs from: its modules importable, its configs found.

- The launch directory joins ``sys.path`` (as ``python -m`` would put it there), so a custom model
  ``model._target_=mynet.build`` is ``./mynet.py`` without ``PYTHONPATH=.``; it also joins
  ``PYTHONPATH``, for the processes a launcher starts (submitit jobs import the same modules).
- ``./conf`` and ``--config-dir DIR`` join the config search path after the shipped configs
  (:mod:`hydra_plugins.freezeout_launch.searchpath`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from hydra_plugins.freezeout_launch.searchpath import CONFIG_DIR_ENV

from ..config import SOURCE_ROOT, config_root


def use_shipped_configs() -> None:
    """Point ``FREEZEOUT_ROOT`` at the folder holding the shipped ``conf/`` and ``sweeps/`` (the
    package once installed, else this checkout): conf/config.yaml's search path reads it for the
    ``sweeps`` group, and the project-config plugin recognises freezeout's apps by it. Set, not
    defaulted: a value left over from another checkout would mix two versions' configs."""
    os.environ["FREEZEOUT_ROOT"] = str(config_root())


def use_launch_dir() -> None:
    """Make the launch directory (and, run from a checkout, the checkout) importable here and in
    every process started from here."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    paths = [cwd]
    if config_root() == SOURCE_ROOT:  # a checkout: jobs in new processes import its packages
        paths.append(str(SOURCE_ROOT))
    old = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths + old))


def take_config_dir(args: Sequence[str]) -> list[str] | None:
    """``args`` without ``--config-dir DIR`` (``--config-dir=DIR``, ``-cd DIR``), which goes to
    the project-config plugin instead, for commands whose own parser does not know the flag.
    None, after one line on stderr, when DIR is missing or not a folder."""
    rest, args = [], list(args)
    while args:
        arg = args.pop(0)
        if arg in ("--config-dir", "-cd") or arg.startswith("--config-dir="):
            value = arg.partition("=")[2] if "=" in arg else (args.pop(0) if args else "")
            if not value or not Path(value).is_dir():
                print(f"error: --config-dir {value!r} is not a folder", file=sys.stderr)
                return None
            os.environ[CONFIG_DIR_ENV] = str(Path(value).resolve())
        else:
            rest.append(arg)
    return rest
