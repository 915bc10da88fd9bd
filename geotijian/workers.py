"""Independent output tasks on the machine's cores: forked worker processes.

The last part of a study (the district and town maps, the coverage-gap figures, the
district and town reports) is many independent pieces of Python work (matplotlib,
JSON, python-docx) that hold the GIL, so threads cannot share them out. On Linux,
:class:`ForkedTasks` runs them in worker processes forked from the study: each worker
starts with the study's layers already in memory (copy-on-write: nothing is pickled
or read again), runs one task and sends back only what it returns (the paths it wrote)
through a pipe. The calling thread forks every worker itself and does nothing else
meanwhile (work it has goes to a worker as a task): a fork while that thread held a lock
inside GDAL or Arrow would leave the worker waiting on it forever.

Each task is a pure function of the study; it writes its own files (atomically), so
the outputs are the same bytes whichever process wrote them. A task's warnings are
re-issued in the caller (the run log records them as before); its exception is raised
in the caller, with the worker's traceback as a note.

Elsewhere (Windows and macOS have no safe ``fork``), with ``settings.parallel`` off, one
core or one task, the tasks run one after the other in the calling process: the same
files, more time.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import select
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import settings

__all__ = ["ForkedTasks", "worker_count"]

#: at most this many worker processes (each may copy part of the study's memory as it goes)
MAX_WORKERS = 4
#: memory kept free per worker: a task's own allocations and the study's pages it copies
#: (scale 18.4: up to ~220 MB for the district map), twice over; fewer workers (none below
#: two) when the system has less available
WORKER_MEMORY_BYTES = 450e6


def worker_count(n_tasks: int) -> int:
    """How many worker processes :class:`ForkedTasks` forks for ``n_tasks`` tasks: the
    usable cores (at most :data:`MAX_WORKERS`), or 0 (run here) where forking is not
    used: not Linux, ``settings.parallel`` off, one core, fewer than two tasks, memory
    available for fewer than two workers (:data:`WORKER_MEMORY_BYTES` each), or a daemon
    process (a dask or multiprocessing worker running studies side by side, which may not
    have children)."""
    import multiprocessing

    if (not sys.platform.startswith("linux") or not settings.parallel or n_tasks < 2
            or multiprocessing.current_process().daemon):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = min(cores, MAX_WORKERS, n_tasks, int(_available_memory() // WORKER_MEMORY_BYTES))
    return n if n > 1 else 0


def _available_memory() -> float:
    """Bytes of memory the system can give without swapping (``MemAvailable``); infinite
    when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float("inf")


def _libc() -> Any:
    """The C library (``ctypes``); raises OSError where there is none to load."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def _trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc ``malloc_trim``): after a
    study's steps the process holds hundreds of MB freed but kept by malloc."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().malloc_trim(0)


def _fork() -> int:
    """``os.fork()`` after flushing stdout and stderr (nothing buffered is written twice);
    raises OSError when the system cannot start another process now."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with warnings.catch_warnings():   # Python ≥ 3.12 warns of any other thread (tqdm's monitor,
        warnings.simplefilter("ignore", DeprecationWarning)   # Arrow's allocator): none holds our locks
        return os.fork()


def _call(fn: Callable[[], Any], *, here: bool = False
          ) -> tuple[Any, list[tuple[str, type, str, int]], BaseException | None]:
    """Run ``fn`` in a worker: its value, its warnings and its exception (if any), made
    portable to send back. ``here``: run in the caller itself, the exception kept as it
    is and a Ctrl-C or an exit (not an ``Exception``) raised at once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, error = fn(), None
        except Exception if here else BaseException as exc:   # raised in the caller later
            value, error = None, exc if here else _portable(exc)
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
    """Run tasks in forked worker processes, one process per task, each when the tasks it
    waits for are done.

    Parameters
    ----------
    tasks : sequence of (cost, callable) or (cost, callable, after)
        Each callable takes no argument and returns a picklable value (e.g. the paths it
        wrote); ``cost`` is its expected time in any unit (of the tasks ready to start,
        the largest starts first); ``after`` (optional) lists the indices of tasks given
        before it that must be done first (e.g. a report after the figures it embeds).
    fork : bool
        False runs the tasks here (e.g. while another thread of the caller is busy: a
        forked worker would hold a copy of that thread's memory mid-work, without it).

    Notes
    -----
    Every worker is forked by the calling thread: when the object is created, in
    :meth:`add`, and in :meth:`wait` / :meth:`result` as tasks end (as many at a time as
    there are cores). Between those calls the caller may do its own work (e.g. begin a
    report while the figures are drawn; no fork happens meanwhile), but no other thread
    of the caller may be busy: a fork while it held a lock would leave the worker waiting
    on it forever. A worker runs one task and leaves: what it allocated and the study's
    pages it copied are given back (scale 18.4: a town map or three gap figures take
    ~100-220 MB each; workers kept across tasks held ~770 MB more in all). A task sees
    the caller's memory as it is when its worker is forked. A task whose ``after`` task
    failed is not run. Leaving a ``with`` block stops the workers still running.

    Without workers (see :func:`worker_count`) the tasks run here, in the order given,
    in :meth:`wait` / :meth:`result`.
    """

    def __init__(self, tasks: Sequence[tuple], *, fork: bool = True) -> None:
        self._fns: list[Callable[[], Any]] = []
        self._cost: list[float] = []
        self._after: list[tuple[int, ...]] = []
        self._waiting: list[int] = []
        self._n = worker_count(len(tasks)) if fork else 0
        self._running: dict[int, tuple[int, int]] = {}   # pid -> (task, read end of its pipe)
        self._got: dict[int, tuple[Any, list, BaseException | None]] = {}
        self._told: set[int] = set()   # tasks whose warnings were re-issued
        self._frozen = False
        self._here = False   # a fork failed: the tasks not started run in the caller
        if self._n:
            gc.collect()
            _trim_heap()   # what the study freed goes back to the system, not into each worker's copy
        self.add(tasks)

    @property
    def workers(self) -> int:
        """Worker processes at a time (0: the tasks run in the caller)."""
        return self._n

    def add(self, tasks: Sequence[tuple]) -> list[int]:
        """Queue more tasks (as in the constructor; ``after`` may name any task given
        before); returns their indices. Workers are forked for those ready now."""
        first = len(self._fns)
        for k, task in enumerate(tasks):
            cost, fn, after = (*task, ())[:3]
            after = tuple(sorted({int(j) for j in after}))
            if any(j < 0 or j >= first + k for j in after):
                raise ValueError(f"task {first + k} waits for {after}: only tasks given before it")
            self._fns.append(fn)
            self._cost.append(float(cost))
            self._after.append(after)
            self._waiting.append(first + k)
        self._pump(block=False)
        return list(range(first, len(self._fns)))

    def poll(self) -> None:
        """Collect the tasks that have ended and start the ready ones in the freed slots,
        without waiting: for a caller that does its own work between calls (each call
        keeps both cores busy a while longer)."""
        self._pump(block=False)

    def wait(self, indices: Sequence[int]) -> None:
        """Return when the tasks ``indices`` (and those they wait for) are done, starting
        the others meanwhile; re-issue their warnings (their errors: :meth:`result`)."""
        want = {int(i) for i in indices}
        if any(i < 0 or i >= len(self._fns) for i in want):
            raise ValueError(f"wait({sorted(want)}): there are tasks 0 to {len(self._fns) - 1}")
        self._pump(block=True, until=want)
        self._tell(sorted(want))

    def result(self) -> list[Any]:
        """Every task's value, in the order given (raises the first failed task's error,
        in that order, after re-issuing every task's warnings)."""
        try:
            self._pump(block=True, until=set(range(len(self._fns))))
        finally:
            self.close()
        self._tell(range(len(self._fns)))
        for i in range(len(self._fns)):
            if self._got[i][2] is not None:
                raise self._got[i][2]
        return [self._got[i][0] for i in range(len(self._fns))]

    def _tell(self, indices: Iterable[int]) -> None:
        for i in indices:
            if i in self._told:
                continue
            self._told.add(i)
            for message, category, filename, lineno in self._got[i][1]:
                warnings.warn_explicit(message, category, filename, lineno)

    def _next(self) -> int | None:
        """The ready task to start next (the costliest; a task whose ``after`` failed is
        set aside as failed), or None."""
        best = None
        for i in list(self._waiting):
            failed = [j for j in self._after[i] if j in self._got and self._got[j][2] is not None]
            if failed:
                self._waiting.remove(i)
                self._got[i] = (None, [], RuntimeError(f"task {i} not run: task {failed[0]} it waits for failed"))
            elif all(j in self._got for j in self._after[i]) and \
                    (best is None or (-self._cost[i], i) < (-self._cost[best], best)):
                best = i
        return best

    def _pump(self, *, block: bool, until: set[int] | None = None) -> None:
        """Start the ready tasks (workers, or here when there are none) and collect the
        finished ones: until the tasks ``until`` are done (``block``), or what is ready
        now."""
        while True:
            while self._n and not self._here and len(self._running) < self._n:
                i = self._next()
                if i is None or not self._spawn(i):
                    break
            if not block or (until is not None and until <= self._got.keys()):
                if not block and self._running:   # reap what has ended, start what that frees
                    ends = {r: pid for pid, (_, r) in self._running.items()}
                    ready, _, _ = select.select(list(ends), [], [], 0)
                    for r in ready:
                        self._reap(ends[r])
                    if ready:
                        continue
                return
            if self._running:
                ends = {r: pid for pid, (_, r) in self._running.items()}
                ready, _, _ = select.select(list(ends), [], [])
                for r in ready:
                    self._reap(ends[r])
                continue
            i = self._next()   # no worker: the caller runs it (in the order given: ``after`` is earlier)
            if i is None:
                if not self._waiting and until is not None and until <= self._got.keys():
                    continue   # the rest were set aside as failed
                raise RuntimeError("ForkedTasks: tasks left that will not run (stopped by close(), or waiting "
                                   f"for tasks that never end): {sorted(set(until or ()) - self._got.keys())}")
            self._waiting.remove(i)
            # here: its error kept as it is; a Ctrl-C or an exit stops the tasks at once
            self._got[i] = _call(self._fns[i], here=True)

    def _spawn(self, i: int) -> bool:
        """Fork a worker for task ``i``; False (the task left for the caller) when the
        system cannot start another process now."""
        gc.freeze()   # the caller's objects: no worker's garbage collector writes to (copies) their pages
        self._frozen = True
        try:
            r, w = os.pipe()
            pid = _fork()
        except OSError:   # no memory or process slot for a fork: the caller runs what is left
            self._here = True
            return False
        self._waiting.remove(i)
        if pid == 0:   # the worker: run the task, send back what it gave, leave at once
            try:
                os.close(r)
                signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the caller's to handle
                out = _call(self._fns[i])
                try:
                    blob = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:
                    blob = pickle.dumps((None, out[1], _portable(RuntimeError(
                        f"the task's value cannot be sent back from its worker: {exc}"))))
                with os.fdopen(w, "wb") as f:
                    f.write(blob)
            finally:
                os._exit(0)
        os.close(w)
        self._running[pid] = (i, r)
        return True

    def _reap(self, pid: int) -> None:
        i, r = self._running.pop(pid)
        chunks = []
        while chunk := os.read(r, 1 << 20):
            chunks.append(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
        if chunks:
            self._got[i] = pickle.loads(b"".join(chunks))
        else:   # killed (e.g. by the system when memory ran out) before it could answer
            why = (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                   else f"exit status {os.waitstatus_to_exitcode(status)}")
            self._got[i] = (None, [], RuntimeError(
                f"a geotijian worker process ended without a result ({why}); if the system ran out of "
                "memory, run with settings.parallel = False (one process) or on a machine with more memory"))

    def close(self) -> None:
        """Stop the workers still running (those not started are dropped)."""
        for pid, (_, r) in list(self._running.items()):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                os.close(r)
        self._running.clear()
        self._waiting.clear()
        if self._frozen:
            gc.unfreeze()
            self._frozen = False

    def __enter__(self) -> ForkedTasks:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
