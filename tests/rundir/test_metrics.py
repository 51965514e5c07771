"""Per-run files a crash cannot corrupt: atomic JSON, torn-line-tolerant metrics."""
from __future__ import annotations

import json
import math

import pytest

from freezeout.rundir.records import append_metrics, read_metrics, rewrite_metrics, write_json_atomic


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_metrics(path, {"epoch": 1, "val_err": 0.5})
    append_metrics(path, {"epoch": 2, "val_err": 0.4})
    with open(path, "a") as f:
        f.write('{"epoch": 3, "val_')  # a kill in the middle of a write
    with pytest.warns(UserWarning, match="torn last line"):
        records = read_metrics(path)
    assert [r["epoch"] for r in records] == [1, 2]


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\nnot json\n{"epoch": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(path)


def test_atomic_json_replaces_whole_and_writes_nan_as_null(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"status": "running", "loss": math.nan})
    write_json_atomic(path, {"status": "completed", "loss": math.inf})
    assert json.loads(path.read_text()) == {"status": "completed", "loss": None}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left


def test_rewrite_keeps_only_given_records(tmp_path):
    path = tmp_path / "metrics.jsonl"
    for e in (1, 2, 3):
        append_metrics(path, {"epoch": e})
    rewrite_metrics(path, [r for r in read_metrics(path) if r["epoch"] <= 2])
    assert [r["epoch"] for r in read_metrics(path)] == [1, 2]
