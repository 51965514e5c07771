"""``make gpu-check`` (``python -m freezeout.bench.gpucheckall``): the CUDA tests and the
benchmark each under their own time limit, the benchmark run whatever the tests gave, the exit
status the tests' when they failed; a half past its limit is killed with everything it started."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

from freezeout.bench.gpucheckall import TIMED_OUT, combined, run_limited


def test_the_exit_status_is_the_tests_when_they_failed_else_the_benchmarks():
    assert combined(0, 0) == 0
    assert combined(1, 0) == 1 and combined(2, 0) == 2 and combined(TIMED_OUT, 0) == TIMED_OUT
    assert combined(1, 3) == 1  # the tests' own status, though the benchmark failed too
    assert combined(0, 3) == 3 and combined(0, TIMED_OUT) == TIMED_OUT


def test_a_half_past_its_limit_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = ("import subprocess, sys, time; "
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
              f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(120)")
    started = time.perf_counter()
    rc, seconds = run_limited([sys.executable, "-c", script], 3.0)
    assert rc == TIMED_OUT and seconds < 30 and time.perf_counter() - started < 30
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # reaped by init once killed: gone within moments
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(grandchild, 9)
        pytest.fail("the half's own child outlived its time limit")


@pytest.mark.slow
def test_with_a_failing_test_the_benchmark_still_runs_and_writes_its_json(tmp_path):
    """What ``make gpu-check`` runs, with a test selection forced to fail: the benchmark (here
    its CPU smoke test) still runs and writes its JSON, and the check exits with the tests' 1."""
    failing = tmp_path / "test_forced_failure.py"
    failing.write_text("def test_forced_failure():\n    assert False, 'forced to fail'\n")
    out = tmp_path / "bench-results"
    done = subprocess.run([sys.executable, "-m", "freezeout.bench.gpucheckall", "--out", str(out), "--tests-s", "120",
                           "--bench-s", "500", "--budget-s", "480", "--", "-q", "-p", "no:cacheprovider",
                           str(failing)], cwd=REPO, capture_output=True, text=True, timeout=700,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 failed" in done.stdout and "forced to fail" in done.stdout
    results = json.loads((out / "gpu-check.json").read_text())
    assert results["complete"] is True and results["measured"] == ["fp32"] and results["gpu"] is False
    assert (out / "gpu-check.md").read_text().startswith("| precision |")
    last = done.stdout.strip().splitlines()[-1]
    assert re.match(r"gpu-check: CUDA tests FAILED \(exit 1, .*\); benchmark passed \(exit 0, .*\); .*exit 1$", last)


def test_the_makefile_runs_the_check_through_it():
    recipe = (REPO / "Makefile").read_text().split("\ngpu-check:")[1].split("\n\n")[0]
    assert "freezeout.bench.gpucheckall" in recipe and "timeout " not in recipe
    assert Path(REPO / "freezeout" / "bench" / "gpucheckall.py").exists()
