"""The shipped configs as a user sees them: the groups and their options (``freezeout --help``),
and ``freezeout config cp NAME DEST`` to copy one into the user's project to edit.

NAME is a config's path in the shipped ``conf/`` without ``.yaml`` (``model/timm``, ``config``,
``hydra/launcher/slurm``), a named sweep (``sweeps/strategies``) or an example script
(``examples/plain_pytorch``: FreezeOut in your own loop; ``examples/custom_model``).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import NoReturn

from hydra_plugins.freezeout_launch.searchpath import project_config_dirs

from ..config import config_dir, config_root

USAGE = ("freezeout config cp NAME DEST [--force]   (NAME: e.g. model/timm, sweeps/strategies, examples/plain_pytorch; "
         "see freezeout --help)")


def groups_in(folder: Path) -> dict[str, list[str]]:
    """Config group (its folder's path under ``folder``) -> its options (the yaml files' names)."""
    found: dict[str, list[str]] = {}
    for path in sorted(folder.rglob("*.yaml")):
        group = path.parent.relative_to(folder).as_posix()
        if group != ".":
            found.setdefault(group, []).append(path.stem)
    return found


def shipped_groups() -> dict[str, list[str]]:
    """Every shipped config group with its options, the named sweeps as group ``sweeps``."""
    found = groups_in(config_dir())
    sweeps = sorted(p.stem for p in (config_root() / "sweeps").glob("*.yaml"))
    return {**found, "sweeps": sweeps}


def describe_groups() -> list[str]:
    """Lines listing the config groups and options: the shipped ones (with the named sweeps,
    the launchers and the sweepers; the typed schema's ``schema/*`` entries are Hydra's, not
    choices), then the user's own."""
    shipped = shipped_groups()
    width = max(map(len, shipped)) + 2
    lines = [f"config groups (choose with GROUP=OPTION; shipped in {config_dir()}):"]
    lines += [f"  {group:<{width}}{' '.join(options)}" for group, options in sorted(shipped.items())]
    lines += ["  (sweeps: -m sweeps=NAME; presets: experiment=NAME; copy one to edit: freezeout config cp GROUP/OPTION DEST)",
              f"examples (your own loop; copy one: freezeout config cp examples/NAME DEST): {' '.join(shipped_examples())}"]
    for folder in project_config_dirs(config_dir()):
        own = groups_in(folder)
        lines += ["", f"your configs ({folder}):"]
        lines += [f"  {group:<{width}}{' '.join(options)}" for group, options in sorted(own.items())] or ["  (none)"]
    return lines


def shipped_examples() -> list[str]:
    """The example scripts shipped with the package (``plain_pytorch``, ...)."""
    return sorted(p.stem for p in (config_root() / "examples").glob("*.py") if not p.stem.startswith("_"))


def shipped_file(name: str) -> Path | None:
    """The shipped yaml called ``name`` (``model/timm``, ``sweeps/strategies``) or example
    (``examples/plain_pytorch``), or None."""
    name = name.removesuffix(".yaml").strip("/")
    if name.startswith("examples/"):
        path = config_root() / f"{name.removesuffix('.py')}.py"
    elif name.startswith("sweeps/"):
        path = config_root() / f"{name}.yaml"
    else:
        path = config_dir() / f"{name}.yaml"
    return path if path.is_file() and ".." not in Path(name).parts else None


def copy_config(name: str, dest: str | Path, force: bool = False) -> Path:
    """Copy the shipped config ``name`` to ``dest`` (a file, or a folder to copy into); returns
    the file written. Raises ValueError (one line) for an unknown name or a file in the way."""
    source = shipped_file(name)
    if source is None:
        options = [f"{g}/{o}" for g, opts in sorted(shipped_groups().items()) for o in opts]
        options += [f"examples/{e}" for e in shipped_examples()]
        raise ValueError(f"no shipped config {name!r}; allowed: config, {', '.join(options)}")
    into = str(dest).endswith(("/", "\\"))  # before Path() drops the slash
    dest = Path(dest)
    if into or dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not force:
        raise ValueError(f"{dest} exists; --force overwrites it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest


def selection_hint(dest: Path) -> str:
    """How to select a config copied to ``dest`` (``GROUP/OPTION.yaml`` under a config folder)."""
    if dest.suffix == ".py":  # an example: a script
        return f"run it with python {dest}"
    group, option, folder = dest.parent.name, dest.stem, dest.parent.parent
    select = f"-m sweeps={option}" if group == "sweeps" else f"{group}={option}"
    where = "found in ./conf" if folder.resolve() == Path("conf").resolve() else f"with --config-dir {folder}"
    hint = f"select it with {select} ({where})"
    if option in shipped_groups().get(group, []):  # the shipped configs are searched first
        hint += f"; rename it first: {select} is the shipped one, found before yours"
    return hint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="freezeout config", usage=USAGE,
                                     description="Copy a shipped config or named sweep into your project to edit.")
    parser.add_argument("action", choices=["cp"])
    parser.add_argument("name", help="the config, e.g. model/timm, data/image_folder, sweeps/strategies")
    parser.add_argument("dest", help="the file to write, or a folder to copy into, e.g. conf/model/mine.yaml")
    parser.add_argument("--force", action="store_true", help="overwrite DEST")
    parser.error = lambda message: _fail(f"{message} (usage: {USAGE})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        written = copy_config(args.name, args.dest, args.force)
    except ValueError as e:
        return _fail(str(e))
    print(f"copied {args.name} to {written}; {selection_hint(written)}")
    return 0


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)
