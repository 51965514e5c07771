"""Clean interruption: SIGINT (Ctrl-C) and SIGTERM (what SLURM sends before preemption) ask the
run to stop at the next step boundary, where the trainer saves a checkpoint it can resume from
exactly. A second Ctrl-C stops at once."""
from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("freezeout")


class Interrupted(RuntimeError):
    """The run stopped at a step boundary on a signal; its checkpoint resumes it exactly."""

    def __init__(self, signame: str, iteration: int, total: int):
        super().__init__(f"interrupted by {signame} at iteration {iteration} of {total}")
        self.signame, self.iteration = signame, iteration


class StopRequest:
    """A ``with`` block during which SIGINT and SIGTERM set a flag instead of killing the process;
    call the object to poll the flag. Outside the main thread (where signals cannot be caught)
    it only ever answers False."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signame: str | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def __call__(self) -> bool:
        return self.signame is not None

    def _handle(self, signum: int, frame) -> None:
        if self.signame is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signame = signal.Signals(signum).name
        log.warning("%s received: stopping at the next step boundary (a checkpoint will be saved; Ctrl-C again "
                    "to stop at once)", self.signame)
