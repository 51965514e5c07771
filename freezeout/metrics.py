"""Per-run records: ``metrics.jsonl`` (one line per epoch, flushed at once) and ``summary.json``
(written atomically). Readers tolerate a torn last line, which a killed run can leave behind."""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` via a temp file + rename, so a crash leaves old or new."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(_clean(obj), f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file (``None`` if it does not exist)."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path) as f:
        return json.load(f)


def append_metrics(path: str | Path, record: dict) -> None:
    """Append one record to ``metrics.jsonl`` and flush it to disk at once."""
    with open(path, "a") as f:
        f.write(json.dumps(_clean(record), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(path: str | Path) -> list[dict]:
    """Records of a ``metrics.jsonl``; a torn (unparseable) last line is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines) - 1:
                warnings.warn(f"{path}: skipped a torn last line (the run was interrupted mid-write)")
            else:
                raise ValueError(f"{path}: line {n + 1} is not valid JSON") from None
    return records


def rewrite_metrics(path: str | Path, records: list[dict]) -> None:
    """Replace ``metrics.jsonl`` atomically with ``records`` (used on resume: each epoch once)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(_clean(r), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
