"""The user's own configs beside the shipped ones: a ``conf/`` folder in the launch directory, and
the folder in ``FREEZEOUT_CONFIG_DIR`` (``--config-dir`` of ``freezeout plan`` and ``groups``),
join the config search path of every freezeout command (run, sweep, plan, groups report,
``compose_config``), after the shipped configs: ``conf/model/mynet.yaml`` selects as
``model=mynet``, ``conf/sweeps/NAME.yaml`` as ``sweeps=NAME``. A name the package already ships
is the package's (Hydra's first match wins): give yours a name of its own.

Hydra finds this plugin for every Hydra app in the environment; it acts only for freezeout's,
recognised by their primary config folder being ``$FREEZEOUT_ROOT/conf``. Standard library and
Hydra only: every Hydra app imports it at start.
"""
from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: A folder of the user's configs, set by the command line for commands that are not Hydra apps.
CONFIG_DIR_ENV = "FREEZEOUT_CONFIG_DIR"
#: The launch directory's own configs, found without any flag.
PROJECT_CONF = "conf"


def _real(path: str | Path) -> str:
    return os.path.realpath(str(path).split("://", 1)[-1])


def project_config_dirs(shipped: str | Path | None = None) -> list[Path]:
    """The user's config folders, in search order: ``$FREEZEOUT_CONFIG_DIR``, then ``./conf``
    (each once, the shipped folder never)."""
    found: list[Path] = []
    seen = {_real(shipped)} if shipped is not None else set()
    for d in (os.environ.get(CONFIG_DIR_ENV), PROJECT_CONF):
        if d and Path(d).is_dir() and _real(d) not in seen:
            seen.add(_real(d))
            found.append(Path(d).resolve())
    return found


class FreezeOutProjectConfigs(SearchPathPlugin):
    """Appends :func:`project_config_dirs` to the search path of freezeout's Hydra apps."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        root = os.environ.get("FREEZEOUT_ROOT")
        main = [e.path for e in search_path.get_path() if e.provider == "main"]
        if not root or not main or _real(main[0]) != _real(Path(root) / "conf"):
            return  # another Hydra app, or no shipped configs to stand beside
        present = {_real(e.path) for e in search_path.get_path() if e.path}
        for d in project_config_dirs(Path(root) / "conf"):
            if _real(d) not in present:
                search_path.append("freezeout-project", f"file://{d}")
