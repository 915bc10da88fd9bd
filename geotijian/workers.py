"""Independent output tasks on the machine's cores: forked worker processes.

The last part of a study (the district and town maps, the coverage-gap figures, the
district and town reports) is many independent pieces of Python work (matplotlib,
JSON, python-docx) that hold the GIL, so threads cannot share them out. On Linux,
:class:`ForkedTasks` runs them in worker processes forked from the study: each worker
starts with the study's layers already in memory (copy-on-write: nothing is pickled
or read again) and sends back only what its task returns (the paths it wrote). The
calling process goes on meanwhile (e.g. writing the GeoPackage) and collects them.

Each task is a pure function of the study; it writes its own files (atomically), so
the outputs are the same bytes whichever process wrote them. A task's warnings are
re-issued in the caller (the run log records them as before); its exception is raised
in the caller, with the worker's traceback as a note.

Elsewhere (Windows and macOS have no safe ``fork``), with ``settings.parallel`` off, one
core or one task, the tasks run one after the other in the calling process: the same
files, more time.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from . import settings

__all__ = ["ForkedTasks", "worker_count"]

#: the tasks of the pool being started: a forked worker finds them here (set before the fork)
_TASKS: list[Callable[[], Any]] = []

#: at most this many worker processes (each may copy part of the study's memory as it goes)
MAX_WORKERS = 4
#: a worker leaves after this many tasks and a fresh one is forked: what a task allocated
#: and the study's pages it copied are given back (scale 18.4: a town map or three gap
#: figures ~100-220 MB each; two workers kept for every task held ~770 MB more in all)
MAX_TASKS_PER_WORKER = 1


def worker_count(n_tasks: int) -> int:
    """How many worker processes :class:`ForkedTasks` forks for ``n_tasks`` tasks: the
    usable cores (at most :data:`MAX_WORKERS`), or 0 (run here) where forking is not
    used: not Linux, ``settings.parallel`` off, one core, fewer than two tasks, or a
    daemon process (a dask or multiprocessing worker running studies side by side, which
    may not have children)."""
    import multiprocessing

    if (not sys.platform.startswith("linux") or not settings.parallel or n_tasks < 2
            or multiprocessing.current_process().daemon):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, MAX_WORKERS, n_tasks) if cores > 1 else 0


def _ignore_sigint() -> None:   # a worker: Ctrl-C is the caller's to handle (it stops the pool)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _call(i: int) -> tuple[Any, list[tuple[str, type, str, int]], BaseException | None]:
    """Run task ``i`` in a worker: its value, its warnings and its exception (if any)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, error = _TASKS[i](), None
        except BaseException as exc:   # sent back and raised in the caller
            value, error = None, _portable(exc)
    return value, [(str(w.message), w.category, w.filename, w.lineno) for w in caught], error


def _portable(exc: BaseException) -> BaseException:
    """``exc`` with the worker's traceback as a note, or a RuntimeError that says the same
    when the exception cannot be sent back (unpicklable)."""
    text = "".join(traceback.format_exception(exc))
    try:
        out = pickle.loads(pickle.dumps(exc))
    except Exception:
        out = RuntimeError(f"{type(exc).__name__}: {exc}")
    out.add_note(f"(raised in a geotijian worker process)\n{text}")
    return out


class ForkedTasks:
    """Run tasks in forked worker processes while the caller goes on.

    Parameters
    ----------
    tasks : sequence of (cost, callable)
        Each callable takes no argument and returns a picklable value (e.g. the paths it
        wrote); ``cost`` is its expected time in any unit (the largest start first).
    tasks_per_worker : int or None
        A worker leaves after this many tasks and a fresh one is forked (its memory given
        back); None keeps the workers (their caches, e.g. the report's pictures, serve
        the next tasks).

    Notes
    -----
    The workers are forked when the object is created: the tasks see the study as it
    is then. Call :meth:`result` to wait for them (it runs them here when no worker
    was forked); leaving a ``with`` block stops the workers still running.
    """

    def __init__(self, tasks: Sequence[tuple[float, Callable[[], Any]]], *,
                 tasks_per_worker: int | None = MAX_TASKS_PER_WORKER) -> None:
        self._fns = [fn for _, fn in tasks]
        self._order = sorted(range(len(tasks)), key=lambda i: (-float(tasks[i][0]), i))
        self._pool = None
        self._pending: list[Any] = []
        n = worker_count(len(tasks))
        if n:
            import multiprocessing

            global _TASKS
            _TASKS = self._fns
            gc.collect()
            gc.freeze()   # the study's objects: no worker's garbage collector writes to (copies) their pages
            with warnings.catch_warnings():   # Python ≥ 3.12 warns about forking with threads
                warnings.simplefilter("ignore", DeprecationWarning)
                self._pool = multiprocessing.get_context("fork").Pool(
                    n, initializer=_ignore_sigint, maxtasksperchild=tasks_per_worker)
            self._pending = [(i, self._pool.apply_async(_call, (i,))) for i in self._order]

    @property
    def workers(self) -> int:
        """Worker processes forked (0: the tasks run in the caller)."""
        return self._pool._processes if self._pool is not None else 0

    def result(self) -> list[Any]:
        """Every task's value, in the order given (raises the first failed task's error,
        in that order, after re-issuing every task's warnings)."""
        if self._pool is None:
            return [fn() for fn in self._fns]
        got: dict[int, tuple[Any, list, BaseException | None]] = {}
        try:
            for i, r in self._pending:
                got[i] = r.get()
        except BaseException:
            self.close()
            raise
        self._pool.close()   # every task is done: the workers leave
        self._pool.join()
        self._pool = None
        gc.unfreeze()
        for i in range(len(self._fns)):
            for message, category, filename, lineno in got[i][1]:
                warnings.warn_explicit(message, category, filename, lineno)
        for i in range(len(self._fns)):
            if got[i][2] is not None:
                raise got[i][2]
        return [got[i][0] for i in range(len(self._fns))]

    def close(self) -> None:
        """Stop the workers (those still running are terminated)."""
        global _TASKS
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            gc.unfreeze()
        _TASKS = []

    def __enter__(self) -> ForkedTasks:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
