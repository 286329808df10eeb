"""The cheap primitives of the task path: ``Latch`` (a one-way event) and ``WorkerPool`` (reused threads)."""

from __future__ import annotations

import threading

import pytest

from callback_kit.task.latch import Latch
from callback_kit.task.workers import WorkerPool

WAIT = 10.0  # generous bound for events between real threads; never reached when the code is right


def test_latch_starts_unset_and_a_timed_wait_returns_false() -> None:
    latch = Latch()
    assert not latch.is_set()
    assert latch.wait(0) is False
    assert latch.wait(0.01) is False
    assert latch.wait(-1) is False  # a negative timeout is "do not wait", as for threading.Event


def test_latch_set_releases_every_waiter_now_and_later() -> None:
    latch = Latch()
    released = []
    lock = threading.Lock()

    def waiter() -> None:
        if latch.wait(WAIT):
            with lock:
                released.append(1)

    threads = [threading.Thread(target=waiter) for _ in range(8)]
    for thread in threads:
        thread.start()
    latch.set()
    for thread in threads:
        thread.join(WAIT)
    assert len(released) == 8
    assert latch.is_set()
    assert latch.wait()
    assert latch.wait(0)


def test_latch_set_is_idempotent_even_from_many_threads_at_once() -> None:
    for _ in range(50):
        latch = Latch()
        start = threading.Barrier(6)

        def setter(latch: Latch = latch, start: threading.Barrier = start) -> None:
            start.wait(WAIT)
            latch.set()

        threads = [threading.Thread(target=setter) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert latch.is_set()
        assert latch.wait(0)
        assert "set" in repr(latch)


def test_pool_runs_jobs_with_their_arguments_and_reuses_an_idle_thread() -> None:
    pool = WorkerPool(max_threads=4, name="test-pool")
    got: list[tuple[int, str]] = []
    for i in range(20):
        done = Latch()

        def job(n: int, tag: str, done: Latch = done) -> None:
            got.append((n, tag))
            done.set()

        pool.submit(job, i, "x")
        assert done.wait(WAIT)
    assert got == [(i, "x") for i in range(20)]
    # One job at a time: its thread was idle again before the next one came (a second may start in the moment
    # between a job's end and its thread becoming idle).
    assert pool.size <= 2


def test_pool_survives_a_job_that_raises_anything(caplog: pytest.LogCaptureFixture) -> None:
    pool = WorkerPool(max_threads=1)
    for exc in (ValueError("boom"), SystemExit(3), KeyboardInterrupt()):

        def bad(exc: BaseException = exc) -> None:
            raise exc

        pool.submit(bad)
    done = Latch()
    pool.submit(done.set)
    assert done.wait(WAIT)  # the one thread is still there after all three
    assert pool.size == 1


def test_pool_queues_beyond_its_bound_and_runs_the_job_when_a_thread_frees() -> None:
    pool = WorkerPool(max_threads=2)
    gate = Latch()
    started = threading.Semaphore(0)
    ran_third = Latch()

    def blocker() -> None:
        started.release()
        gate.wait(WAIT)

    pool.submit(blocker)
    pool.submit(blocker)
    assert started.acquire(timeout=WAIT)
    assert started.acquire(timeout=WAIT)
    pool.submit(ran_third.set)
    assert not ran_third.wait(0.05)  # both threads busy: it waits in the queue
    assert pool.size == 2
    gate.set()
    assert ran_third.wait(WAIT)
    assert pool.size == 2


def test_pool_threads_are_daemons_so_a_hung_function_cannot_hold_the_process_at_exit() -> None:
    pool = WorkerPool(max_threads=1, name="daemon-check")
    seen: list[bool] = []
    done = Latch()

    def job() -> None:
        seen.append(threading.current_thread().daemon)
        done.set()

    pool.submit(job)
    assert done.wait(WAIT)
    assert seen == [True]


def test_pool_refuses_a_bound_below_one() -> None:
    with pytest.raises(ValueError, match="max_threads"):
        WorkerPool(max_threads=0)
