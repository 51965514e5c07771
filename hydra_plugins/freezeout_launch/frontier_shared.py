"""One frontier study shared by several search processes (workers): N shells or N SLURM jobs that
run the same ``hydra/sweeper=frontier`` command on one ``hydra.sweeper.storage`` (PostgreSQL, or
SQLite on one machine).

- **The store**: the URL as Optuna's RDB storage takes it; ``postgresql://`` (and
  ``postgres://``) speak through psycopg 3 where it is installed, else psycopg2.
- **The budget**: a worker takes a trial only while the study holds fewer than ``n_trials``
  trials that count or run (:func:`claims`); one that finds, after asking, that trials numbered
  below its own already fill the budget gives its trial back (pruned, ``surplus``), so the workers
  together finish exactly ``n_trials``.
- **Draws**: each trial's settings are drawn by a sampler seeded with ``sampler_seed`` plus the
  trial's number, which the store gives out once: workers started together draw different
  settings, and one search draws the same as before.
- **Killed workers**: every worker records a heartbeat (Optuna's) for the trials it trains, every
  ``heartbeat_s`` seconds. A trial whose heartbeat is older than twice that (its worker died), or
  whose worker was a dead process on this machine, is marked failed and queued again with the
  same settings (``resumes``: the old number); the next worker to ask takes it, and its runs
  resume from their checkpoints. Such a failed trial does not count against the budget.
- **Shared runs**: a run that another worker is training (its run directory's lock is held) is
  waited for, not trained twice (the baselines, which every worker launches).
"""
# No "from __future__ import annotations": Hydra scans this package outside sys.modules.

import fcntl
import inspect
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, List, Optional

from freezeout.errors import one_line
from freezeout.rundir.lock import LOCK_FILE

from .frontier_space import FrontierError

RESUMES = "resumes"  # user attr: the number of the failed trial this one runs again
SURPLUS = "surplus"  # user attr of a trial given back because the budget was full
WORKER = "worker"  # user attr: "host:pid" of the worker training the trial


def storage_url(url: str) -> str:
    """``url`` with the SQLAlchemy dialect of an installed PostgreSQL driver (psycopg 3, else
    psycopg2) where it names none; other URLs unchanged."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            rest = url[len(prefix):]
            for module, dialect in (("psycopg", "postgresql+psycopg"), ("psycopg2", "postgresql+psycopg2")):
                try:
                    __import__(module)
                except ImportError:
                    continue
                return f"{dialect}://{rest}"
            raise FrontierError(f"hydra.sweeper.storage={url}: no PostgreSQL driver installed: "
                                "pip install 'psycopg[binary]' (or the package's 'frontier' extra)")
    return url


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_storage(url: str, heartbeat_s: int) -> Any:
    """Optuna's RDB storage for ``url``, with heartbeats every ``heartbeat_s`` seconds (a trial is
    stale after twice that, then failed and queued again); a one-line error when the store cannot
    be reached."""
    import optuna

    real = storage_url(url)
    kwargs = {"heartbeat_interval": heartbeat_s, "grace_period": 2 * heartbeat_s}
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    name = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"
    kwargs[name] = run_again
    engine = {"connect_args": {"connect_timeout": 10}} if real.startswith("postgresql") else None
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(real, engine_kwargs=engine, **kwargs)
    except Exception as e:  # noqa: BLE001 - any storage failure is a bad setting: one line
        raise FrontierError(f"hydra.sweeper.storage={url}: cannot open the study store ({one_line(e)})") from None


def run_again(study: Any, trial: Any) -> None:
    """Queue a failed trial's settings again, naming it (Optuna calls this for stale trials)."""
    study.enqueue_trial(trial.params, user_attrs={RESUMES: trial.number})


def beats(storage: Any) -> bool:
    """Whether ``storage`` keeps heartbeats (an RDB storage opened by :func:`make_storage`)."""
    return bool(getattr(storage, "get_heartbeat_interval", lambda: None)())


def _pid_dead(worker: str) -> bool:
    host, _, pid = str(worker).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def requeue_stale(study: Any) -> int:
    """Trials whose worker is gone (a heartbeat older than its grace period, or a dead process on
    this machine): marked failed and queued again with the same settings. Returns how many."""
    import optuna
    from optuna.trial import TrialState

    before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _pid_dead(t.user_attrs.get(WORKER, "")):
            try:
                study.tell(t.number, state=TrialState.FAIL)
            except (RuntimeError, ValueError):
                continue  # another worker got there first
            run_again(study, t)
    with warnings.catch_warnings():  # "experimental" in Optuna's words
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)  # stale heartbeats: failed, then run_again
    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) - before


def resumed_numbers(trials: Iterable[Any]) -> set:
    return {t.user_attrs[RESUMES] for t in trials if RESUMES in t.user_attrs}


def counts(t: Any, resumed: set) -> bool:
    """Whether a finished trial counts against the budget: completed or failed, neither given
    back nor run again (killed)."""
    from optuna.trial import TrialState

    if t.state not in (TrialState.COMPLETE, TrialState.FAIL):
        return False
    return not (t.user_attrs.get("interrupted") or t.number in resumed)


def claims(study: Any, below: Optional[int] = None) -> int:
    """Trials that count against the budget or will (running, or queued to run), numbered below
    ``below`` when given."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    resumed = resumed_numbers(trials)
    live = (TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for t in trials if (below is None or t.number < below)
               and not t.user_attrs.get(SURPLUS) and (counts(t, resumed) or t.state in live))


def running_elsewhere(study: Any, mine: List[Any]) -> int:
    from optuna.trial import TrialState

    own = {t.number for t in mine}
    return sum(1 for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
               if t.number not in own)


def take_trial(study: Any, n_trials: int) -> Optional[Any]:
    """A trial for this worker, or None when the study's budget is taken (by trials finished,
    running or queued). A queued trial (a dead worker's, run again) is taken first."""
    from optuna.trial import TrialState

    queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if not queued and claims(study) >= n_trials:
        return None
    trial = study.ask()
    fresh = RESUMES not in trial.user_attrs
    if fresh and claims(study, below=trial.number) >= n_trials:  # another worker took the last place first
        trial.set_user_attr(SURPLUS, True)
        study.tell(trial, state=TrialState.PRUNED)
        return None
    trial.set_user_attr(WORKER, this_worker())
    if beats(study._storage):
        study._storage.record_heartbeat(trial._trial_id)
    return trial


class Heartbeat:
    """``with Heartbeat(study, trials, seconds):`` records the trials' heartbeats every ``seconds``
    in a thread, while their runs train."""

    def __init__(self, study: Any, trials: List[Any], seconds: float) -> None:
        self.storage, self.ids, self.seconds = study._storage, [t._trial_id for t in trials], seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.seconds):
            for trial_id in self.ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # noqa: BLE001 - a missed beat; the next one may pass
                    pass

    def __enter__(self) -> "Heartbeat":
        if beats(self.storage):
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def wait_for_runs(run_dirs: Iterable[Path], poll_s: float = 1.0) -> None:
    """Return when no process holds the lock of any of ``run_dirs`` (another worker training the
    same run: a baseline every worker launches)."""
    for run_dir in run_dirs:
        path = Path(run_dir) / LOCK_FILE
        while path.exists():
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(poll_s)
                continue
            finally:
                os.close(fd)
            break
