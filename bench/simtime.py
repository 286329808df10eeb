"""Simulated time for threads: the clock moves only when every thread it runs is asleep.

A quota benchmark against a 50/s bucket would take minutes of real time, and on a shared machine its figures
would measure the machine. Here each thread started with :meth:`SimTime.spawn` sleeps on :meth:`SimTime.sleep`;
when all of them sleep, the clock jumps to the earliest wake-up. The code under test is the real code, given
``clock`` and ``sleep`` by injection, as tests give it fake time.

Example:
    >>> sim = SimTime()
    >>> woke = []
    >>> for d in (2.0, 1.0):
    ...     _ = sim.spawn(lambda d=d: (sim.sleep(d), woke.append(sim.clock())))
    >>> sim.join(); woke
    [1.0, 2.0]
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from typing import Any


class SimTime:
    """A clock and a sleep shared by the threads it spawns (see the module docstring)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()
        # The thread that makes the SimTime holds the clock until join(): otherwise the first thread it spawns
        # could sleep, and move time on, before the others were spawned.
        self._running = 1
        self._sleepers: list[tuple[float, int, threading.Event]] = []
        self._seq = itertools.count()
        self._threads: list[threading.Thread] = []

    def clock(self) -> float:
        """The simulated time, in seconds."""
        return self.now

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of simulated time (must be called from a thread :meth:`spawn` started)."""
        woken = threading.Event()
        with self._lock:
            heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), woken))
            self._running -= 1
            self._advance()
        woken.wait()

    def spawn(self, fn: Callable[..., Any], *args: Any) -> threading.Thread:
        """Run ``fn(*args)`` on a new thread that lives on simulated time."""

        def body() -> None:
            try:
                fn(*args)
            finally:
                with self._lock:
                    self._running -= 1
                    self._advance()

        with self._lock:
            self._running += 1
        thread = threading.Thread(target=body, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def join(self) -> None:
        """Let simulated time run, and wait for every spawned thread to end."""
        with self._lock:
            self._running -= 1
            self._advance()
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        with self._lock:
            self._running += 1

    def _advance(self) -> None:
        # Lock held. Wake everyone due at the earliest wake-up once no thread is running.
        if self._running > 0 or not self._sleepers:
            return
        self.now = max(self.now, self._sleepers[0][0])
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, woken = heapq.heappop(self._sleepers)
            self._running += 1
            woken.set()
