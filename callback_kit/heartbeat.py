"""Automatic heartbeats for every open task, from one thread per process.

A thread per task would cost a thread per SQS record or activity slot and multiply wake-ups; instead one daemon
thread keeps a heap of due times and beats each open token in turn. The first beat of a task comes after a
random part of its interval (jitter, so that tasks started together do not beat together against the shared
API quota); later beats come one interval after the previous one, so a task never gets more than one automatic
beat per interval. A beat answered "task closed" marks the task cancelled and stops its beats.

Time is injected (``clock``) and the thread is optional (``start_thread=False``), so tests drive
:meth:`HeartbeatScheduler.run_pending` by hand and never sleep.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from callback_kit.logs import get_logger

#: ``ck.heartbeat()`` sends at most this often per task, so a tight loop cannot exhaust the account's quota.
MIN_MANUAL_GAP = 1.0


@dataclass(eq=False)
class Beat:
    """One task's heartbeat registration (internal): what to send, how often, whom to tell when closed."""

    send: Callable[[], bool]
    interval: float
    on_closed: Callable[[], None]
    due: float
    last_sent: float | None = None
    active: bool = True
    # Held while this task's beat is being sent, so that unregistering waits for an in-flight beat: the
    # completion call must never race a heartbeat for the same token.
    sending: threading.Lock = field(default_factory=threading.Lock)


class HeartbeatScheduler:
    """Sends heartbeats for every registered task from a single thread.

    Example:
        >>> t = [0.0]
        >>> sched = HeartbeatScheduler(clock=lambda: t[0], start_thread=False, jitter=0.0)
        >>> sent = []
        >>> beat = sched.register(lambda: sent.append(t[0]) or True, interval=10, on_closed=lambda: None)
        >>> t[0] = 10.0; _ = sched.run_pending(); sent
        [10.0]
        >>> sched.unregister(beat)
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        jitter: float = 0.2,
        start_thread: bool = True,
    ) -> None:
        self._clock = clock
        self._rand = rand
        self._jitter = jitter
        self._start_thread = start_thread
        self._heap: list[tuple[float, int, Beat]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._open = 0
        self.sent = 0

    @property
    def open_tasks(self) -> int:
        """How many tasks are registered now."""
        return self._open

    def register(self, send: Callable[[], bool], interval: float, on_closed: Callable[[], None]) -> Beat:
        """Start beating: ``send()`` is called about every ``interval`` seconds until :meth:`unregister`.

        ``send`` returns False when Step Functions says the task is closed; ``on_closed`` is then called once
        and the beats stop.
        """
        if interval <= 0:
            raise ValueError("the heartbeat interval must be positive")
        first = interval * (1.0 - self._jitter * self._rand())
        beat = Beat(send=send, interval=interval, on_closed=on_closed, due=self._clock() + first)
        with self._cond:
            self._open += 1
            self._push(beat)
            self._ensure_thread()
            self._cond.notify()
        return beat

    def beat_now(self, beat: Beat) -> None:
        """Bring the next beat of ``beat`` forward to now (at most one per :data:`MIN_MANUAL_GAP` seconds)."""
        now = self._clock()
        with self._cond:
            if not beat.active:
                return
            earliest = now if beat.last_sent is None else max(now, beat.last_sent + MIN_MANUAL_GAP)
            if earliest < beat.due:
                beat.due = earliest
                self._push(beat)
                self._cond.notify()

    def unregister(self, beat: Beat | None) -> None:
        """Stop beating; returns only once no beat for this task is in flight."""
        if beat is None:
            return
        with self._cond:
            if beat.active:
                beat.active = False
                self._open -= 1
        with beat.sending:  # wait out an in-flight send
            pass

    def run_pending(self) -> float | None:
        """Send every beat that is due; return the seconds until the next one (``None``: none registered)."""
        while True:
            with self._cond:
                beat = self._pop_due()
                if beat is None:
                    return self._until_next()
            self._send(beat)

    def _send(self, beat: Beat) -> None:
        with beat.sending:
            if not beat.active:
                return
            try:
                alive = beat.send()
            except Exception:  # a heartbeat must never kill the thread that beats for everyone
                get_logger().exception("heartbeat raised; will beat again")
                alive = True
            now = self._clock()
            self.sent += 1
            with self._cond:
                beat.last_sent = now
                if not alive:
                    if beat.active:
                        beat.active = False
                        self._open -= 1
                else:
                    beat.due = now + beat.interval
                    self._push(beat)
        if not alive:
            beat.on_closed()

    def _push(self, beat: Beat) -> None:
        heapq.heappush(self._heap, (beat.due, next(self._seq), beat))

    def _pop_due(self) -> Beat | None:
        now = self._clock()
        while self._heap:
            due, _, beat = self._heap[0]
            if not beat.active or due != beat.due:
                heapq.heappop(self._heap)  # stale entry: unregistered, or rescheduled by beat_now
                continue
            if due > now:
                return None
            heapq.heappop(self._heap)
            return beat
        return None

    def _until_next(self) -> float | None:
        while self._heap and (not self._heap[0][2].active or self._heap[0][0] != self._heap[0][2].due):
            heapq.heappop(self._heap)
        if not self._heap:
            return None
        return max(0.0, self._heap[0][0] - self._clock())

    def _ensure_thread(self) -> None:
        if self._start_thread and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._loop, name="callback-kit-heartbeat", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            self.run_pending()
            with self._cond:
                # Re-check under the lock: a register() between run_pending and here would otherwise be missed.
                wait = self._until_next()
                if wait is None or wait > 0:
                    self._cond.wait(wait)


_scheduler_lock = threading.Lock()
_scheduler: HeartbeatScheduler | None = None


def get_scheduler() -> HeartbeatScheduler:
    """The process-wide scheduler, created (with its thread) on first use."""
    global _scheduler
    if _scheduler is None:
        with _scheduler_lock:
            if _scheduler is None:
                _scheduler = HeartbeatScheduler()
    return _scheduler
