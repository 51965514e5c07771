"""Ctrl-C on a terminal during a sweep taking turns (hydra/launcher=turns), each run in a process
of its own: SIGINT reaches the whole process group; the round stops at its turns, no run is
recorded as failed, the sweep exits 130, and re-launching it resumes both runs to completion."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from helpers import REPO, TINY


def test_ctrl_c_stops_the_round_and_a_relaunch_resumes_it(fmnist_root, tmp_path):
    sweep = tmp_path / "sweep"
    args = [o for o in TINY if not o.startswith(("epochs=", "data.subset="))]
    cmd = [sys.executable, str(REPO / "run.py"), "-m", *args, "epochs=4", "data.subset=512", "log_every=2",
           f"data.root={fmnist_root}", "hydra/launcher=turns", "strategy=none,cubic", "t_0=0.5",
           f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("FREEZEOUT_LAUNCH_ID", None)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # its own process group, as a terminal's job
    try:
        deadline = time.monotonic() + 400
        while len(list(sweep.glob("run_*/metrics.jsonl"))) < 2:  # both runs are past their first epoch
            assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it was interrupted"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: every process of the group
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out[-3000:]
    assert "to resume, re-launch the same sweep" in out and "failed" not in out.lower(), out[-3000:]
    for d in sweep.glob("run_*"):
        summary = d / "summary.json"
        assert not summary.exists() or json.loads(summary.read_text())["status"] not in ("completed", "failed")
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    statuses = [json.loads((d / "summary.json").read_text())["status"] for d in sweep.glob("run_*")]
    assert statuses == ["completed", "completed"]
