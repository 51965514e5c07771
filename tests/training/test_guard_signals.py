"""Stop requests with real signals sent to this process (a first SIGINT or SIGTERM asks for a clean
stop; only a Ctrl-C after it stops at once; the handlers before are back afterwards), and the run
directory's lock over a longer stale text (the holder read back exactly)."""
from __future__ import annotations

import os
import signal
import socket
import threading

import pytest

from freezeout.rundir.lock import LOCK_FILE, RunLocked, hold_run_lock, lock_holder
from freezeout.training.signals import Interrupted, StopRequest


def ask(sig: signal.Signals) -> None:
    """Send ``sig`` to this process; it must only ask for a stop."""
    try:
        signal.raise_signal(sig)
    except KeyboardInterrupt:
        pytest.fail(f"{sig.name} stopped the process at once instead of asking for a clean stop")


def test_a_first_signal_asks_and_only_a_second_ctrl_c_stops_at_once():
    before = {s: signal.getsignal(s) for s in StopRequest.SIGNALS}
    with StopRequest() as stop:
        assert not stop()
        ask(signal.SIGINT)  # the first Ctrl-C: a clean stop at the next step boundary
        assert stop() and stop.signame == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    with StopRequest() as stop:
        ask(signal.SIGTERM)
        ask(signal.SIGTERM)  # a scheduler may repeat its SIGTERM: still a clean stop
        assert stop() and stop.signame == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C after a SIGTERM: at once
            signal.raise_signal(signal.SIGINT)
    assert {s: signal.getsignal(s) for s in StopRequest.SIGNALS} == before


def test_outside_the_main_thread_a_stop_request_only_answers_false():
    before = signal.getsignal(signal.SIGINT)
    answers = []

    def run():
        with StopRequest() as stop:
            answers.append(stop())

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert answers == [False] and signal.getsignal(signal.SIGINT) is before
    assert str(Interrupted("SIGTERM", 12, 48)) == "interrupted by SIGTERM at iteration 12 of 48"


def test_the_lock_holder_is_read_back_exactly_over_a_longer_stale_text(tmp_path):
    stale = "pid 4194303 on a-much-longer-host-name-left-by-a-run-killed-long-ago.cluster.example.org"
    (tmp_path / LOCK_FILE).write_text(stale)
    assert lock_holder(tmp_path) is None  # text alone holds nothing: only a live process's flock does
    me = f"pid {os.getpid()} on {socket.gethostname()}"
    with hold_run_lock(tmp_path):
        assert lock_holder(tmp_path) == me
        assert (tmp_path / LOCK_FILE).read_text() == me
        with pytest.raises(RunLocked) as locked, hold_run_lock(tmp_path):
            pass  # a second holder (another open of the file) is refused
        assert str(locked.value) == (f"{tmp_path} is being trained by another process ({me}); nothing was "
                                     "changed. Wait for it, or stop it and run again to resume")
    assert lock_holder(tmp_path) is None
    assert lock_holder(tmp_path / "nowhere") is None
    with hold_run_lock(tmp_path):  # free again: taken at once
        assert lock_holder(tmp_path) == me
