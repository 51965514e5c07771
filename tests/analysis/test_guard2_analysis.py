"""Pairing does not depend on the order the records come in: among several baselines the first by
path (numbers as numbers) is used and the others are named as duplicates, however the list of
records is ordered."""
from __future__ import annotations

import pytest
from test_analysis import make_run

from freezeout.analysis.collect import collect_runs
from freezeout.analysis.pairing import pair_runs


def test_the_baseline_chosen_is_the_same_in_any_order_of_the_records(tmp_path):
    make_run(tmp_path, "10", seconds=50.0)
    make_run(tmp_path, "9", seconds=100.0)
    make_run(tmp_path, "2-extra", seconds=25.0, seed=1)  # another seed: not a candidate
    make_run(tmp_path, "12", strategy="cubic", seconds=80.0)
    records = collect_runs(tmp_path)
    for order in (records, records[::-1], records[1:] + records[:1]):
        run = next(r for r in pair_runs(order) if r["dir"] == "12")
        assert (run["baseline_dir"], run["duplicate_baselines"]) == ("9", "10")
        assert run["measured_speedup"] == pytest.approx(0.2)
