"""The ``freezeout`` command (also ``python -m freezeout``): one entry point, a subcommand for each
thing the harness does. ``freezeout --help`` lists them and the config groups with their options.

Every subcommand runs with the launch directory importable (``model._target_=mynet.build`` finds
``./mynet.py``) and with the user's own configs beside the shipped ones (``./conf``, or
``--config-dir DIR``; see :mod:`hydra_plugins.freezeout_launch.searchpath`).

The commands are named by module path and imported only when run, like console entry points: the
help stays fast, and the command line, which sits above every part of the project (``analyze``
is the analysis package's), adds no import edge from the library to what it drives.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

#: name -> (entry point "module:function", one line of help). Each entry point reads its arguments
#: from ``sys.argv[1:]`` and returns an exit status (or None).
COMMANDS = {
    "train": ("freezeout.cli.train:main", "train one run, or a sweep with -m: train [-m] [--resume] [KEY=VALUE ...]"),
    "plan": ("freezeout.plan.sweep:main", "what a sweep will run and its predicted time: plan [-m] KEY=A,B ..."),
    "groups": ("freezeout.cli.groups:main", "a model's layer groups, FLOPs and freezing times: groups KEY=VALUE"),
    "analyze": ("freezeout.analysis.__main__:main", "pair runs with their baselines, tables and plots: analyze DIR"),
    "bench": ("freezeout.bench:cli", "the benchmark: predicted against measured speedups"),
    "config": ("freezeout.cli.configs:main", "copy a shipped config or sweep to edit: config cp NAME DEST"),
}
#: Hydra's own report of a config error, kept whole where this environment variable is set.
FULL_ERROR_ENV = "HYDRA_FULL_ERROR"
#: Commands whose configs Hydra does not parse itself: ``--config-dir DIR`` is passed on for them.
_COMPOSING = ("plan", "groups", "bench")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``freezeout ARGV``; returns the exit status (the console script exits with it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] == "--version":
        print(f"freezeout {version()}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; allowed: {', '.join(COMMANDS)} (freezeout --help)", file=sys.stderr)
        return 2
    from .helptext import command_help
    from .project import use_launch_dir, use_shipped_configs

    use_shipped_configs()
    use_launch_dir()
    if name in _COMPOSING:
        from .project import take_config_dir

        rest = take_config_dir(rest)  # before the help: it lists the configs of --config-dir too
        if rest is None:
            return 2
    if {"-h", "--help"} & set(rest) and name != "train" and command_help(name):  # train: freezeout.cli.train
        print(command_help(name))
        return 0
    if name in ("plan", "bench") and not os.environ.get(FULL_ERROR_ENV):  # their overrides: Hydra's one line
        from .hydraerrors import check_composes

        line = check_composes(rest)
        if line is not None:
            print(line, file=sys.stderr)
            return 2
    module, _, function = COMMANDS[name][0].partition(":")
    sys.argv = [f"freezeout {name}", *rest]
    status = getattr(importlib.import_module(module), function)()
    return status if isinstance(status, int) else 0


def version() -> str:
    """The installed distribution's version (the checkout's, when installed editable)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("freezeout")
    except PackageNotFoundError:
        return "(not installed: run from a checkout)"


def usage() -> str:
    """``freezeout --help``: the commands, then every config group and its options."""
    from .configs import describe_groups

    width = max(map(len, COMMANDS))
    lines = ["usage: freezeout COMMAND [ARGS ...]   (or python -m freezeout COMMAND ...)", "",
             "FreezeOut: each layer group's learning rate annealed to zero on its own schedule, then the group "
             "frozen.", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += [f"  {'':<{width}}  freezeout COMMAND --help: its own options", "",
              "  --version, -h/--help", ""]
    return "\n".join(lines + describe_groups())
