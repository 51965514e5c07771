"""python -m freezeout.bench.gpucheckall [--out DIR] [--tests-s S] [--bench-s S] [--budget-s S]
[-- PYTEST ARGS]   (what ``make gpu-check`` runs)

Both halves of the GPU check, each under its own time limit, one after the other whatever the
first gave: the CUDA-marked tests (``pytest -q -m cuda -p no:cacheprovider -rs tests`` unless
PYTEST ARGS say otherwise), then the benchmark (:mod:`freezeout.bench.gpucheck`, which writes
its JSON after each precision, so a benchmark stopped by its limit keeps what it measured). A
failed, erroring or timed-out test never keeps the benchmark from running. At the end one line
says each half's outcome and the exit status is the tests' own when they failed, else the
benchmark's (124: a half ran past its limit, as ``timeout`` says it).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

TIMED_OUT = 124  # what coreutils' timeout exits with
DEFAULT_TESTS = ["-q", "-m", "cuda", "-p", "no:cacheprovider", "-rs", "tests"]


def run_limited(argv: list[str], seconds: float) -> tuple[int, float]:
    """``(exit status, seconds)`` of ``argv`` run in a session of its own, the whole session
    (DataLoader workers, compile workers) killed after ``seconds`` (status :data:`TIMED_OUT`)."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, start_new_session=True)
    try:
        rc = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        _kill_session(process)
        rc = TIMED_OUT
    except BaseException:  # Ctrl-C: the halves stop with it
        _kill_session(process)
        raise
    return rc, time.perf_counter() - started


def _kill_session(process: subprocess.Popen) -> None:
    """SIGTERM to the child's session, SIGKILL after 10 s if it is still there."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def outcome(rc: int, seconds: float, limit: float) -> str:
    """One half's outcome in words."""
    if rc == TIMED_OUT:
        return f"stopped at its {limit:.0f} s limit (exit {rc})"
    return f"{'passed' if rc == 0 else 'FAILED'} (exit {rc}, {seconds:.0f} s of {limit:.0f})"


def combined(tests_rc: int, bench_rc: int) -> int:
    """The check's exit status: the tests' when they failed, else the benchmark's."""
    return tests_rc if tests_rc != 0 else bench_rc


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    own, pytest_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    parser = argparse.ArgumentParser(prog="python -m freezeout.bench.gpucheckall", description=__doc__.split("\n")[3])
    parser.add_argument("--out", default="bench-results", help="the benchmark's folder (gpu-check.json, .md)")
    parser.add_argument("--tests-s", type=float, default=150.0, help="time limit of the CUDA tests, seconds")
    parser.add_argument("--bench-s", type=float, default=330.0, help="time limit of the benchmark, seconds")
    parser.add_argument("--budget-s", type=float, default=300.0, help="the benchmark's own budget (--budget-s)")
    args = parser.parse_args(own)
    print(f"gpu-check: the CUDA tests (at most {args.tests_s:.0f} s)", flush=True)
    tests = run_limited([sys.executable, "-m", "pytest", *(pytest_args or DEFAULT_TESTS)], args.tests_s)
    print(f"gpu-check: the benchmark (at most {args.bench_s:.0f} s), whatever the tests gave", flush=True)
    bench = run_limited([sys.executable, "-m", "freezeout.bench.gpucheck", "--out", args.out,
                         "--budget-s", str(args.budget_s)], args.bench_s)
    status = combined(tests[0], bench[0])
    print(f"gpu-check: CUDA tests {outcome(*tests, args.tests_s)}; benchmark {outcome(*bench, args.bench_s)}; "
          f"figures in {os.path.join(args.out, 'gpu-check.json')}; exit {status}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
