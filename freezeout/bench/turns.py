"""Runs compared on the wall clock, trained in one process taking turns every ``log_every``
iterations. Timed one after another on a shared machine, each run catches its own slow and fast
spells (the same baseline took 49.2 s in one round of the benchmark and 38.6 s in the next);
taking turns, every run trains its iteration j at about the same moment, so such spells fall on
all alike. The benchmark's realisation compares its baseline and FreezeOut runs this way.

The runs share the process: torch's thread count and its global random stream among them. A
model that draws from that stream while training (dropout, stochastic depth) draws it in turns
with the other runs, so its losses differ from a run alone; the work a step does, and so its
time, does not. Data order and augmentation come from each run's own generator."""
from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Callable

from ..training.trainer import train


def take_turns(jobs: list[tuple], keep_going: bool = False, run: Callable | None = None) -> list:
    """``train(cfg, run_dir)`` for each ``(cfg, run_dir)`` of ``jobs``, each in a thread of its own,
    one at a time: a run hands over at its log points (``train``'s ``pause``, outside its timed
    steps), the turns going round in order, then in reverse, and so on. Returns the summaries.

    When a run raises, the others stop at their next turn and the first error is raised here;
    with ``keep_going`` the others train on, and the error takes the run's place in the list.
    ``run(i, cfg, run_dir, pause)``, when given, trains job ``i`` instead of ``train`` (it must
    pass ``pause`` on to ``train``)."""
    go, back, out, failed = [threading.Event() for _ in jobs], threading.Event(), [None] * len(jobs), []
    done: set[int] = set()
    run = run or (lambda i, cfg, run_dir, pause: train(cfg, run_dir, pause=pause))

    def wait_turn(i: int) -> None:
        go[i].wait(), go[i].clear()
        if failed and not keep_going:
            raise RuntimeError("stopped: another run of the round failed")

    def work(i: int, cfg, run_dir: Path) -> None:
        try:
            wait_turn(i)
            out[i] = run(i, cfg, run_dir, lambda _: (back.set(), wait_turn(i)))
        except BaseException as e:  # noqa: BLE001 (raised in the main thread)
            failed.append(e)
            out[i] = e
        finally:
            done.add(i), back.set()

    for i, job in enumerate(jobs):
        threading.Thread(target=work, args=(i, *job), daemon=True).start()
    for turn in itertools.count():
        if not (order := [i for i in range(len(jobs)) if i not in done]):
            break
        for i in order[::1 if turn % 2 == 0 else -1]:
            go[i].set(), back.wait(), back.clear()
    if failed and not keep_going:
        raise failed[0]
    return out
