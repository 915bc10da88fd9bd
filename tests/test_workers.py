"""Forked worker processes for a study's output tasks (geotijian.workers)."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

from geotijian import settings
from geotijian.errors import LayerError
from geotijian.workers import ForkedTasks, worker_count

FORKS = sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1


def _square(k: int) -> tuple[int, int]:
    return k * k, os.getpid()


def test_values_in_order_from_other_processes():
    big = np.arange(1_000_000)   # the workers see the caller's memory as it was at the fork
    tasks = [(float(k % 3), lambda k=k: (_square(k)[0] + int(big[k]), os.getpid())) for k in range(7)]
    with ForkedTasks(tasks) as ft:
        n = ft.workers
        out = ft.result()
    assert [v for v, _ in out] == [k * k + k for k in range(7)]
    pids = {p for _, p in out}
    if FORKS:
        assert n == min(len(os.sched_getaffinity(0)), 4) and os.getpid() not in pids
    else:
        assert n == 0 and pids == {os.getpid()}


def test_serial_without_parallel_gives_the_same_values():
    tasks = [(1.0, lambda k=k: _square(k)[0]) for k in range(5)]
    with settings.temporary(parallel=False):
        assert worker_count(5) == 0
        ft = ForkedTasks(tasks)
        assert ft.workers == 0
        serial = ft.result()
    assert serial == ForkedTasks(tasks).result() == [k * k for k in range(5)]


def test_warnings_come_back_to_the_caller():
    def warn(k):
        warnings.warn(f"task {k} noticed something", UserWarning)
        return k

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ForkedTasks([(1.0, lambda k=k: warn(k)) for k in range(3)]).result() == [0, 1, 2]
    assert sorted(str(w.message) for w in caught) == [f"task {k} noticed something" for k in range(3)]
    assert all(w.category is UserWarning for w in caught)


def test_a_failed_task_raises_its_error_in_the_caller():
    def bad():
        raise LayerError("units", "feature U7 has no geometry", fix="repair the layer")

    tasks = [(1.0, lambda: 1), (2.0, bad), (1.0, lambda: 3)]
    with pytest.raises(LayerError, match="U7 has no geometry") as err:
        ForkedTasks(tasks).result()
    assert (err.value.layer, err.value.fix) == ("units", "repair the layer")   # its fields came back
    if FORKS:
        assert any("worker process" in note for note in getattr(err.value, "__notes__", []))


def test_a_ctrl_c_in_a_task_run_in_the_caller_stops_the_tasks_at_once():
    """Without workers (parallel off, Windows, no fork possible) the tasks run in the
    caller: a Ctrl-C in one is raised at once (the tasks after it never run, none is left
    running), and a task's error is the one raised, without a worker's note."""
    ran = []

    def interrupted():
        ran.append("map")
        raise KeyboardInterrupt

    tasks = [(3.0, interrupted), (2.0, lambda: ran.append("figures")), (1.0, lambda: ran.append("report"))]
    ft = ForkedTasks(tasks, fork=False)
    with pytest.raises(KeyboardInterrupt):
        ft.result()
    assert ran == ["map"]
    error = LayerError("units", "feature U7 has no geometry", fix="repair the layer")

    def bad():
        raise error

    with pytest.raises(LayerError) as got:
        ForkedTasks([(1.0, bad), (1.0, lambda: 2)], fork=False).result()
    assert got.value is error and not any("worker process" in n for n in getattr(error, "__notes__", []))


def test_an_unpicklable_error_becomes_a_runtime_error_that_says_it():
    class Local(Exception):   # a class defined in a function cannot be pickled
        pass

    def bad():
        raise Local("the town map of 310114101 failed")

    if not FORKS:
        pytest.skip("no worker processes on this platform: the error is raised as it is")
    with pytest.raises(RuntimeError, match="Local: the town map of 310114101 failed"):
        ForkedTasks([(1.0, bad), (1.0, lambda: 2)]).result()


def test_a_worker_killed_before_answering_is_an_error_that_says_so():
    import signal

    if not FORKS:
        pytest.skip("no worker processes on this platform")
    tasks = [(1.0, lambda: os.kill(os.getpid(), signal.SIGKILL)), (1.0, lambda: 2)]
    with pytest.raises(RuntimeError, match="ended without a result .killed by signal 9.*memory"):
        ForkedTasks(tasks).result()


def test_tasks_no_worker_could_be_forked_for_run_in_the_caller(monkeypatch):
    if not FORKS:
        pytest.skip("no worker processes on this platform")
    real, calls = os.fork, []

    def fork_once():
        calls.append(1)
        if len(calls) > 1:
            raise OSError(12, "Cannot allocate memory")
        return real()

    monkeypatch.setattr(os, "fork", fork_once)
    out = ForkedTasks([(1.0, lambda k=k: (k, os.getpid())) for k in range(5)]).result()
    assert [k for k, _ in out] == list(range(5))
    pids = [p for _, p in out]
    assert pids.count(os.getpid()) == 4 and len(set(pids)) == 2   # one task in the one worker forked


def test_workers_are_as_many_as_the_memory_available_allows(monkeypatch):
    from geotijian import workers

    if not FORKS:
        pytest.skip("no worker processes on this platform")
    cores = min(len(os.sched_getaffinity(0)), workers.MAX_WORKERS)
    monkeypatch.setattr(workers, "_available_memory", lambda: 10 * workers.WORKER_MEMORY_BYTES)
    assert workers.worker_count(8) == cores
    monkeypatch.setattr(workers, "_available_memory", lambda: 1.5 * workers.WORKER_MEMORY_BYTES)
    assert workers.worker_count(8) == 0   # room for one: the tasks run in the caller
    assert ForkedTasks([(1.0, lambda: os.getpid())] * 3).result() == [os.getpid()] * 3


def _write(path, text: str):
    import time

    time.sleep(0.05)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("parallel", [True, False])
def test_a_task_starts_after_the_tasks_it_waits_for(tmp_path, parallel):
    # the report (costliest: it would start first) reads the three figures its tasks write
    def report():
        return [(tmp_path / f"fig{k}.txt").read_text(encoding="utf-8") for k in range(3)]

    tasks = [(1.0, lambda k=k: _write(tmp_path / f"fig{k}.txt", f"figure {k}")) for k in range(3)]
    with settings.temporary(parallel=parallel):
        ft = ForkedTasks(tasks + [(10.0, report, (0, 1, 2))])
        out = ft.result()
    assert out[3] == ["figure 0", "figure 1", "figure 2"]
    with pytest.raises(ValueError, match="only tasks given before it"):
        ForkedTasks([(1.0, lambda: 1, (1,)), (1.0, lambda: 2)])


def test_tasks_added_later_and_waited_for(tmp_path):
    ft = ForkedTasks([(1.0, lambda k=k: _write(tmp_path / f"map{k}.txt", f"map {k}")) for k in range(3)])
    draft = {"title": "嘉定区"}   # the caller's own work while the workers draw (a later fork sees it)
    (first,) = ft.add([(5.0, lambda: f"{draft['title']}: " + (tmp_path / "map1.txt").read_text(encoding="utf-8"),
                        [1])])
    ft.wait([0, 1, 2])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map0.txt", "map1.txt", "map2.txt"]
    assert ft.result()[first] == "嘉定区: map 1"


def _started_then_slept(seconds: float) -> float:
    import time

    t = time.monotonic()
    time.sleep(seconds)
    return t


@pytest.mark.skipif(not FORKS, reason="forked workers need Linux and two cores")
def test_poll_starts_the_next_tasks_while_the_caller_works():
    """poll() collects the tasks that have ended and forks the next ones at once: the
    caller's own work does not keep the freed workers idle until result()."""
    import time

    n = min(len(os.sched_getaffinity(0)), 4)
    ft = ForkedTasks([(1.0, lambda: _started_then_slept(0.1)) for _ in range(2 * n)])
    assert ft.workers == n
    time.sleep(0.3)   # the caller's work: the first tasks end meanwhile
    ft.poll()         # ... and their slots take the next ones now
    time.sleep(0.3)
    called = time.monotonic()
    started = ft.result()
    assert max(started[n:]) < called   # started while the caller worked
    # without poll() the next tasks wait for the caller
    ft = ForkedTasks([(1.0, lambda: _started_then_slept(0.1)) for _ in range(2 * n)])
    time.sleep(0.6)
    called = time.monotonic()
    assert min(ft.result()[n:]) >= called


def test_a_task_after_a_failed_one_is_not_run(tmp_path):
    def bad():
        raise LayerError("units", "feature U7 has no geometry", fix="repair the layer")

    tasks = [(1.0, bad), (1.0, lambda: _write(tmp_path / "ok.txt", "ok")),
             (1.0, lambda: _write(tmp_path / "report.txt", "report"), [0, 1])]
    with pytest.raises(LayerError, match="U7 has no geometry"):
        ForkedTasks(tasks).result()
    assert (tmp_path / "ok.txt").exists() and not (tmp_path / "report.txt").exists()


def test_waiting_for_tasks_that_cannot_run_is_an_error():
    import time

    ft = ForkedTasks([(1.0, lambda: time.sleep(2)), (1.0, lambda: time.sleep(2))])   # still running at close()
    with pytest.raises(ValueError, match="there are tasks 0 to 1"):
        ft.wait([2])
    ft.close()   # stopped: what did not run never will
    if ft.workers:
        with pytest.raises(RuntimeError, match="tasks left that will not run"):
            ft.result()


def test_frozen_gc_freezes_what_each_step_leaves_and_collects_its_garbage():
    """``runlog.frozen_gc``: inside, each step's end collects the step's cyclic garbage
    (not frozen for the rest of the run) and freezes what it left; leaving unfreezes; a
    caller's own freeze or a disabled collector is left alone."""
    import gc
    import weakref

    from geotijian.runlog import RunLog, frozen_gc

    class Node:
        pass

    assert gc.get_freeze_count() == 0
    log = RunLog(progress=False)
    with frozen_gc() as log.freeze_gc:
        assert log.freeze_gc and gc.get_freeze_count() > 0
        before = gc.get_freeze_count()
        with log.step("a"):
            kept = [Node() for _ in range(100)]        # survives the step: frozen
            a, b = Node(), Node()
            a.other, b.other = b, a                    # a cycle the step drops: collected
            dead = weakref.ref(a)
            del a, b
        assert dead() is None
        assert gc.get_freeze_count() >= before + len(kept)
    assert gc.get_freeze_count() == 0
    # the caller froze objects itself: nothing is frozen or unfrozen here
    gc.freeze()
    try:
        n = gc.get_freeze_count()
        with frozen_gc() as own:
            assert not own and gc.get_freeze_count() == n
        assert gc.get_freeze_count() == n
    finally:
        gc.unfreeze()
    gc.disable()
    try:
        with frozen_gc() as own:
            assert not own and gc.get_freeze_count() == 0
    finally:
        gc.enable()
