"""The heartbeat scheduler's sender threads: as many as the observed call latency needs, and no more.

The scheduler thread decides *when* each beat is due; this pool decides *who* sends it. One sender cannot keep
up with thousands of open tasks (at 30 ms per call it sends ~33 beats a second), and a thread per task is what
callback-kit exists to avoid, so the pool grows to about ``rate x latency`` threads (Little's law), capped:

* on :meth:`SenderPool.submit`, enough senders that the last queued beat is taken within its *allowance* (a
  small part of its interval): the busy ones plus ``ceil(queued x latency / allowance)``
  (:func:`senders_needed`), with the latency an exponentially weighted average of the calls observed so far;
* on :meth:`SenderPool.check` (the scheduler thread calls it while beats wait), one more sender whenever the
  oldest queued beat has waited over half its allowance, which is how a sender stuck in a slow call is noticed:
  its call has not returned, so the average has not seen it yet.

Senders idle for :data:`IDLE_EXIT` seconds leave (one always stays), so a burst's threads do not linger.
"""

from __future__ import annotations

import collections
import contextlib
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: The latency assumed before any call has been timed.
INITIAL_LATENCY = 0.02
#: Weight of the newest sample in the latency average.
SMOOTHING = 0.2
#: A sender with nothing to send for this long exits (if it is not the last one).
IDLE_EXIT = 30.0
#: The most sender threads the heartbeat scheduler starts (each makes one SendTaskHeartbeat call at a time).
MAX_SENDERS = 128


def senders_needed(queued: int, busy: int, latency: float, allowance: float) -> int:
    """How many senders keep the last of ``queued`` beats from waiting over ``allowance`` seconds.

    Busy senders are counted out (one may be stuck in a slow call); ``n`` free senders take ``queued`` beats of
    ``latency`` seconds each in about ``queued x latency / n`` seconds.

    Example:
        >>> senders_needed(queued=20, busy=0, latency=0.03, allowance=0.1)  # a burst of due beats
        6
        >>> senders_needed(queued=1, busy=30, latency=0.03, allowance=0.1)  # steady state, all busy
        31
    """
    return busy + max(1, math.ceil(queued * latency / max(allowance, 1e-6)))


class SenderPool(Generic[T]):
    """Threads that call ``send(item)`` for each submitted item, grown to keep every item's wait small.

    Args:
        send: called on a sender thread for every item; it must not raise and must call :meth:`observe`.
        clock: monotonic seconds (the scheduler's clock).
        max_senders: the most threads the pool starts.

    Example:
        >>> done = threading.Event()
        >>> pool = SenderPool(lambda item: done.set(), max_senders=2)
        >>> pool.submit("beat", allowance=0.1)
        >>> done.wait(5.0), pool.size
        (True, 1)
    """

    def __init__(
        self, send: Callable[[T], None], *, clock: Callable[[], float] = time.monotonic, max_senders: int = 64
    ) -> None:
        if max_senders < 1:
            raise ValueError("max_senders must be at least 1")
        self._send = send
        self._clock = clock
        self._max = max_senders
        # The items, and beside them when each was queued and its allowance (oldest first) for check(): a
        # SimpleQueue is much cheaper than a deque guarded by a semaphore, but cannot be peeked at.
        self._queue: queue.SimpleQueue[T] = queue.SimpleQueue()
        self._stamps: collections.deque[tuple[float, float]] = collections.deque()
        self._lock = threading.Lock()  # sizes and statistics only; never held across a send
        self._size = 0
        self._busy = 0
        self._latency = INITIAL_LATENCY
        self._sent = 0
        self._names = 0

    @property
    def size(self) -> int:
        """Sender threads alive now."""
        return self._size

    @property
    def sent(self) -> int:
        """Items sent so far (counted by :meth:`observe`)."""
        return self._sent

    @property
    def latency(self) -> float:
        """The average seconds per send observed so far."""
        return self._latency

    def observe(self, seconds: float) -> None:
        """Record one send and how long it took."""
        with self._lock:
            self._sent += 1
            self._latency += SMOOTHING * (max(0.0, seconds) - self._latency)

    def submit(self, item: T, allowance: float) -> None:
        """Queue ``item`` for a sender; start senders if the queue would otherwise wait over ``allowance``.

        Raises:
            RuntimeError: no sender thread exists and none could be started; ``item`` was not queued.
        """
        with self._lock:
            if self._size == 0:
                self._grow(1)  # raises if not even one thread can be started, before the item is queued
        self._stamps.append((self._clock(), allowance))
        self._queue.put(item)
        with self._lock:
            self._grow(senders_needed(len(self._stamps), self._busy, self._latency, allowance) - self._size)

    def check(self) -> float | None:
        """Start a sender if the oldest queued item waited too long; return when to check again (``None``: empty)."""
        try:
            queued_at, allowance = self._stamps[0]
        except IndexError:
            return None
        if self._clock() - queued_at > allowance / 2:
            with self._lock:
                self._grow(1)
        return allowance / 4

    def _grow(self, count: int) -> None:
        # Called with self._lock held.
        for _ in range(min(count, self._max - self._size)):
            self._size += 1
            self._names += 1
            name = f"callback-kit-heartbeat-sender-{self._names}"
            try:
                threading.Thread(target=self._run, name=name, daemon=True).start()
            except RuntimeError:  # "can't start new thread": make do with the senders there are
                self._size -= 1
                if self._size == 0:
                    raise  # none at all: let the scheduler give the beats back and try again
                return

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=IDLE_EXIT)
            except queue.Empty:
                with self._lock:
                    if self._size > 1:
                        self._size -= 1
                        return
                continue
            with contextlib.suppress(IndexError):  # one stamp per item, appended before it
                self._stamps.popleft()
            with self._lock:
                self._busy += 1
            try:
                self._send(item)
            except Exception:  # pragma: no cover - send() is documented not to raise; the thread must live on
                import logging

                logging.getLogger(__name__).exception("heartbeat sender: send raised")
            finally:
                with self._lock:
                    self._busy -= 1
