"""The process-wide pool of reusable threads that task runs are handed to, so that the caller can watch the deadline.

A Lambda handler must return before its deadline even when a function hangs, so the function cannot run on the
thread that returns: every task of an invocation with a deadline is handed to a pooled thread, and that hand-off
is paid on every task. :class:`WorkerPool` makes it as cheap as a hand-off between threads can be: a job goes into
a ``queue.SimpleQueue`` (C, no Python-level lock) and an idle thread takes it; there is no ``Future`` per job (the
caller learns that a job ended from the job itself, e.g. a :class:`~callback_kit.task.latch.Latch`). Against
``concurrent.futures.ThreadPoolExecutor`` it saves the future's condition variable, the waiter the caller builds
to wait on it, and the pool's Python-level idle semaphore: about 20 us of CPU per hand-off.

A thread is started only when no idle one is free, so the thread count follows the largest concurrency seen
(plus any thread still stuck in a function after its deadline passed). The threads are daemons: a function that
hangs past its deadline must not hold the process at exit (``ThreadPoolExecutor`` joins its threads at exit).

Example:
    >>> from callback_kit.task.latch import Latch
    >>> pool = WorkerPool(max_threads=2)
    >>> done = Latch()
    >>> pool.submit(done.set)
    >>> done.wait(timeout=5)
    True
"""

from __future__ import annotations

import _thread
import queue
import threading
from collections.abc import Callable
from typing import Any

#: Upper bound on the shared pool's threads (a bound, not a count: threads start only when needed).
MAX_POOL_THREADS = 1024


class WorkerPool:
    """Reusable daemon threads running submitted callables; see the module docstring."""

    def __init__(self, max_threads: int = MAX_POOL_THREADS, name: str = "callback-kit") -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._max = max_threads
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.SimpleQueue()
        self._lock = _thread.allocate_lock()
        self._idle = 0  # threads waiting for a job and not yet promised one
        self._threads = 0

    @property
    def size(self) -> int:
        """How many threads the pool has started (they live as long as the process)."""
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on an idle thread, a new one, or (at the bound) the first to come free.

        What ``fn`` raises is logged, never propagated: report results through the job itself.
        """
        with self._lock:
            if self._idle:
                self._idle -= 1
                start = False
            else:
                start = self._threads < self._max
                if start:
                    self._threads += 1
        self._jobs.put((fn, args))
        if start:
            try:
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads}", daemon=True).start()
            except BaseException:
                with self._lock:
                    self._threads -= 1
                raise

    def _work(self) -> None:
        jobs, lock = self._jobs, self._lock
        while True:
            fn, args = jobs.get()
            try:
                fn(*args)
            except BaseException:  # a job's fault must not cost the pool a thread
                from callback_kit.logs import get_logger

                get_logger().exception("a pooled job raised")
            del fn, args  # drop the job's references before waiting for the next one
            with lock:
                self._idle += 1


_pool_lock = threading.Lock()
_pool: WorkerPool | None = None


def shared_pool() -> WorkerPool:
    """The process-wide pool, created on first use; warm invocations reuse its idle threads."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = WorkerPool()
    return _pool
