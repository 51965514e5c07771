"""python -m freezeout.bench.turns_cost: its settings refused in one line, and a tiny real run
printing both figures (a round's throughput ratio, the speedup gap in points) into its JSON."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from freezeout.bench.turns_cost import parse
from freezeout.errors import ConfigError


def test_its_settings_are_checked_and_split_from_the_run_overrides():
    s, overrides = parse(["bench.runs=3", "epochs=1", "bench.turn_every=2"])
    assert (s.runs, s.turn_every, s.repeats, overrides) == (3, 2, 2, ["epochs=1"])
    with pytest.raises(ConfigError, match="bench.runs=0"):
        parse(["bench.runs=0"])


def test_a_bad_setting_is_one_line_and_help_says_what_it_measures():
    bad = subprocess.run([sys.executable, "-m", "freezeout.bench.turns_cost", "bench.repeats=0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and bad.stderr.strip().splitlines() == ["error: bench.repeats=0; need an integer >= 1"]
    helped = subprocess.run([sys.executable, "-m", "freezeout.bench.turns_cost", "--help"],
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "Throughput ratio" in helped.stdout


def test_a_tiny_run_prints_and_writes_both_figures(fmnist_root, tmp_path, one_thread):
    from freezeout.bench.turns_cost import main

    out = tmp_path / "cost.json"
    results = main([f"data.root={fmnist_root}", "data.subset=256", "data.val_size=200", "epochs=1",
                    "model.depth=10", "model.growth_rate=4", "bench.runs=2", "bench.repeats=1", f"bench.out={out}"])
    assert json.loads(out.read_text())["speedup"]["gap_points"] == pytest.approx(results["speedup"]["gap_points"])
    assert results["environment"]["versions"]["torch"] and "git_revision" in results["environment"]  # reproducible
    (row,) = results["round"]
    assert row["throughput_ratio"] > 0 and row["turns"]["loadavg"] and len(row["sequence"]["train_seconds"]) == 2
    kinds = [r["kind"] for r in results["speedup"]["rows"]]
    assert kinds == ["sequence", "turns"]
    med = results["speedup"]["median_speedup"]
    assert results["speedup"]["gap_points"] == pytest.approx(100 * (med["turns"] - med["sequence"]))
