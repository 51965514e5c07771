"""The plan says what its step times stand on: the machine's load while it measured them, and a
warning when other work was heavy (two busy processes started beside it, stopped by pid)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import TINY

from freezeout.plan.sweep import plan
from freezeout.rundir.load import BUSY_SHARE, busy_note

pytestmark = pytest.mark.usefixtures("one_thread")
BUSY = "while True: pass"


@pytest.fixture
def two_busy_processes():
    """Two processes that spin on the CPU for as long as the test runs."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()  # by its own handle (its pid), never by name
            p.wait(timeout=30)


def test_the_plan_says_its_step_times_were_measured_on_a_busy_machine(two_busy_processes, fmnist_root, tmp_path,
                                                                       capsys):
    steps = tmp_path / "steps.json"
    plan(["strategy=none", *TINY, "epochs=1", f"data.root={fmnist_root}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
         save_step_times=str(steps))
    out = capsys.readouterr().out.splitlines()
    (entry,) = json.loads(steps.read_text())["entries"]
    load = entry["load"]
    # two spinning processes on this machine's CPUs: most of its time went to other work
    assert load["others_cpu_share"] > BUSY_SHARE and load["machine_cpus"] >= 1
    note = [line for line in out if line.startswith("note: step times for densenet")]
    assert len(note) == 1
    assert note[0].endswith(f"measured while other processes used {100 * load['others_cpu_share']:.0f}% of the "
                            "CPUs: seconds may be off")
    assert out[-1].startswith("jobs: 1, done: 0, to run: 1; predicted training time")
    # read back from the file, the plan repeats what the step times stand on
    plan(["strategy=none", *TINY, "epochs=1", f"data.root={fmnist_root}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
         step_times=str(steps))
    assert note[0] in capsys.readouterr().out.splitlines()


def test_busy_note_names_what_was_heavy():
    assert busy_note(None) is None and busy_note({}) is None
    assert busy_note({"others_cpu_share": BUSY_SHARE}) is None  # at the threshold: quiet enough
    assert busy_note({"others_cpu_share": 0.7}) == "measured while other processes used 70% of the CPUs: " \
                                                   "seconds may be off"
    assert busy_note({"others_cpu_share": 0.0, "gpu_processes": 2}) == \
        "measured while 2 other process(es) held its GPU: seconds may be off"
