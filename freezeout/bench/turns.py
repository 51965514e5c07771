"""Runs compared on the wall clock, taking turns. Timed one after another on a shared machine, each
run catches its own slow and fast spells (the same baseline took 49.2 s in one round of the
benchmark and 38.6 s in the next); taking turns, every run trains its iteration j at about the same
moment, so such spells fall on all alike. The benchmark's realisation and ``hydra/launcher=turns``
compare their baseline and FreezeOut runs this way.

Each run trains in a process of its own (started with ``spawn``) and the turn is passed over
pipes: a run waiting for its turn sleeps in the kernel, and the running one has the process to
itself as it would alone: its own OpenMP thread pool (libgomp stops spinning, and wakes its
workers through the kernel at every parallel region, once a process holds more OpenMP threads
than the machine has CPUs: several runs' pools in one process do), its own allocator, torch's
global random stream (a model with dropout draws what it draws alone) and its own torch thread
count, set to the launching process's. The hand-over happens at the run's ``pause``, outside its
timed steps (``train``'s ``pause``/``pause_every``)."""
from __future__ import annotations

import itertools
import multiprocessing
import pickle
import signal
from pathlib import Path
from typing import Callable

GO = ("go", None)


def train_in_turn(i: int, cfg, run_dir: Path, pause: Callable[[int], None], pause_every: int | str | None = None):
    """The default job of :func:`take_turns`: ``train``, handing over every ``pause_every``
    iterations (None: at its log points; ``"epoch"``: at the end of its epochs)."""
    from ..training.trainer import train

    return train(cfg, run_dir, pause=pause, pause_every=pause_every)


def take_turns(jobs: list[tuple], keep_going: bool = False, run: Callable | None = None,
               stop: Callable[[], str | None] | None = None,
               on_turn: Callable[[int, int], None] | None = None) -> list:
    """``run(i, cfg, run_dir, pause)`` (default :func:`train_in_turn`) for each ``(cfg, run_dir)`` of
    ``jobs``, each in a process of its own, one at a time: a run hands over when it calls
    ``pause(iteration)`` (which ``run`` must pass on to ``train``), the turns going round in order,
    then in reverse, and so on. ``run`` must be picklable (a module-level function or a
    ``functools.partial`` of one) and so must its result. Returns the results, in ``jobs``' order.

    When a run raises, the others stop at their next turn and the first error is raised here;
    with ``keep_going`` the others train on, and the error takes the run's place in the list.
    ``stop()``, polled before each turn, returns the name of a stop request (e.g. ``"SIGINT"``) or
    None: once it names one, each run raises :class:`~freezeout.training.signals.Interrupted` from
    its next ``pause`` and the round ends. ``on_turn(i, iteration)`` is called here each time run
    ``i`` hands over.

    In a process that is one rank of several (torchrun, ``bench.world_size``), the runs share its
    process group, so they take turns as threads of this process instead (a process each would
    join the group as a second process of the same rank)."""
    import torch

    from ..distributed.process_group import launch_env

    if launch_env() is not None:
        return _in_threads(jobs, keep_going, run or train_in_turn, stop, on_turn)
    ctx = multiprocessing.get_context("spawn")  # no fork: torch's OpenMP and CUDA do not survive one
    conns, procs = [], []
    out: list = [None] * len(jobs)
    try:
        for i, (cfg, run_dir) in enumerate(jobs):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_job, name=f"freezeout-turn-{i}",
                               args=(theirs, i, cfg, Path(run_dir), run or train_in_turn, torch.get_num_threads()))
            proc.start()
            theirs.close()
            conns.append(mine), procs.append(proc)
        done: set[int] = set()
        failed: list[BaseException] = []

        def receive(i: int) -> None:
            try:
                kind, value = conns[i].recv()
            except EOFError:  # the process died without a word (killed, out of memory)
                procs[i].join()
                kind, value = "error", ("raised", _vanished(i, procs[i].exitcode, stop))
            if kind == "ready":
                return
            if kind == "turn":
                if on_turn is not None:
                    on_turn(i, value)
                return
            done.add(i)
            out[i] = _rebuild(value) if kind == "error" else value
            if kind == "error":
                failed.append(out[i])

        for i in range(len(jobs)):  # every process has imported torch before the first turn starts
            receive(i)
        for turn in itertools.count():
            if not (order := [i for i in range(len(jobs)) if i not in done]):
                break
            for i in order[::1 if turn % 2 == 0 else -1]:
                signame = stop() if stop is not None else None
                if signame:
                    conns[i].send(("interrupt", signame))
                elif failed and not keep_going:
                    conns[i].send(("fail", "stopped: another run of the round failed"))
                else:
                    conns[i].send(GO)
                receive(i)
    finally:
        for conn, proc in zip(conns, procs):
            conn.close()
            proc.join(timeout=30)
            if proc.is_alive():  # a run that did not end with its pipe: it is told so no longer
                proc.terminate(), proc.join()
    if failed and not keep_going:
        raise failed[0]
    return out


def _in_threads(jobs: list[tuple], keep_going: bool, run: Callable, stop, on_turn) -> list:
    """:func:`take_turns` with each run in a thread of this process."""
    import threading

    from ..training.signals import Interrupted

    go, back, out, failed = [threading.Event() for _ in jobs], threading.Event(), [None] * len(jobs), []
    done: set[int] = set()

    def wait_turn(i: int, iteration: int) -> None:
        go[i].wait(), go[i].clear()
        if signame := (stop() if stop is not None else None):
            raise Interrupted(signame, iteration, 0)
        if failed and not keep_going:
            raise RuntimeError("stopped: another run of the round failed")

    def pause(i: int, iteration: int) -> None:
        if on_turn is not None:
            on_turn(i, iteration)
        back.set(), wait_turn(i, iteration)

    def work(i: int, cfg, run_dir: Path) -> None:
        try:
            wait_turn(i, 0)
            out[i] = run(i, cfg, Path(run_dir), lambda j: pause(i, j))
        except BaseException as e:  # noqa: BLE001 (raised in the calling thread)
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


def _job(conn, i: int, cfg, run_dir: Path, run: Callable, threads: int) -> None:
    """One run of the round, in its own process: wait for the first turn, train, send the result
    (or the error) back."""
    # Ctrl-C on a terminal reaches every process of the round: before training, the launching
    # process alone acts on it (it tells each run at its turn); in training, train's own handler.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from ..training.signals import Interrupted

    torch.set_num_threads(threads)

    def wait_turn(iteration: int) -> None:
        kind, value = conn.recv()
        if kind == "interrupt":
            raise Interrupted(value, iteration, 0)
        if kind == "fail":
            raise RuntimeError(value)

    def pause(iteration: int) -> None:
        conn.send(("turn", iteration))
        wait_turn(iteration)

    try:
        conn.send(("ready", None))
        wait_turn(0)
        message = ("done", run(i, cfg, run_dir, pause))
    except BaseException as e:  # noqa: BLE001 (raised in the launching process)
        message = ("error", _portable(e))
    try:
        conn.send(message)
    except (EOFError, BrokenPipeError):  # the launching process has gone: nobody to tell
        pass
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as e:  # an unpicklable result
        conn.send(("error", _portable(RuntimeError(f"the run's result could not be sent back: {e}"))))
    conn.close()


def _portable(error: BaseException) -> tuple:
    """An exception as it can cross the pipe: itself where it pickles and unpickles, else its type
    name and message (``Interrupted``'s own fields kept)."""
    from ..training.signals import Interrupted

    if isinstance(error, Interrupted):
        return ("interrupted", (error.signame, error.iteration, str(error)))
    try:
        pickle.loads(pickle.dumps(error))
        return ("pickled", error)
    except Exception:  # noqa: BLE001 (any failure to round-trip)
        return ("text", f"{type(error).__name__}: {error}")


def _rebuild(portable: tuple) -> BaseException:
    from ..training.signals import Interrupted

    kind, value = portable
    if kind == "interrupted":
        signame, iteration, message = value
        error = Interrupted(signame, iteration, 0)
        error.args = (message,)
        return error
    return value if kind in ("pickled", "raised") else RuntimeError(value)


def _vanished(i: int, exitcode: int | None, stop: Callable | None) -> BaseException:
    from ..training.signals import Interrupted

    signame = stop() if stop is not None else None
    if signame:  # stopped before it could say so (e.g. a signal during its start)
        return Interrupted(signame, 0, 0)
    return RuntimeError(f"run {i} of the round: its process ended without a result (exit code {exitcode})")
