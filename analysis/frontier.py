"""The front a frontier search found (``frontier.csv``, written by ``hydra/sweeper=frontier`` in
its sweep dir), by setting, for the envelope: each trial on the front with its mean speedup (by the
objective the search used, its runs' time model by default) and mean relative error, and which one
is the best within the search's error budget."""
from __future__ import annotations

import csv
import json
from pathlib import Path

FRONT_FILE = "frontier.csv"


def read_fronts(root: Path, runs: list[dict]) -> dict[str, list[dict]]:
    """``{setting label: [front trials by speedup]}`` for every ``frontier.csv`` under ``root``
    (the sweep dir itself or a folder of sweeps); a trial's setting is its runs' setting."""
    setting_of = {Path(r["dir"]).as_posix(): r.get("setting") for r in runs}
    fronts: dict[str, list[dict]] = {}
    for path in sorted(Path(root).rglob(FRONT_FILE)):
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        except OSError:
            continue
        for row in rows:
            if row.get("on_front") != "True":
                continue
            dirs = [_run_dir(d, path.parent) for d in json.loads(row.get("run_dirs") or "[]")]
            settings = {setting_of.get(_relative(d, root)) for d in dirs} - {None}
            if len(settings) != 1:
                continue  # its runs are not among the analysed ones
            fronts.setdefault(settings.pop(), []).append(
                {"trial": int(row["trial"]), "speedup": float(row["speedup"]),
                 "relative_error": float(row["relative_error"]), "params": row["params"],
                 "best": row.get("best_within_budget") == "True"})
    return {k: sorted(v, key=lambda t: t["speedup"]) for k, v in fronts.items()}


def _run_dir(recorded: str, sweep_dir: Path) -> Path:
    """A trial's run directory: recorded relative to its sweep dir. An absolute one (written by
    earlier searches) is looked for by name in the sweep dir first, where a sweep moved or copied
    keeps it."""
    path = Path(recorded)
    if not path.is_absolute():
        return sweep_dir / path
    local = sweep_dir / path.name
    return local if local.exists() else path


def _relative(run_dir: Path, root: Path) -> str | None:
    try:
        return Path(run_dir).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return None


def front_markdown(fronts: dict[str, list[dict]]) -> str:
    """The fronts as Markdown lines for ``summary.md`` (empty without a frontier search)."""
    lines = []
    for setting, front in fronts.items():
        lines += ["", f"Front found by the frontier search ({setting}; mean over its seeds, speedup by the "
                      "search's objective):", ""]
        lines += [f"- trial {t['trial']}: speedup {100 * t['speedup']:.1f}%, relative error "
                  f"{100 * t['relative_error']:+.1f}%, {t['params']}"
                  + (" (best within the error budget)" if t["best"] else "") for t in front]
    return "\n".join(lines) + ("\n" if lines else "")
