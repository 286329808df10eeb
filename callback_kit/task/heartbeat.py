"""Automatic heartbeats for every open task: one scheduler thread, a bounded pool of sender threads.

One daemon thread owns a heap of due times. It never sends a beat itself: it hands each due beat to a small
pool of sender threads (:mod:`callback_kit.task.heartbeat_senders`) sized from the observed call latency, so that a
slow or stuck SendTaskHeartbeat delays no other task's beats.

* **Lazy, cheap registration.** Most tasks finish before their first beat is due, so :meth:`register` only
  appends to a deque; :meth:`unregister` flips a flag under the beat's own lock. The scheduler thread wakes at
  least every :data:`MAX_SLEEP` seconds, moves registrations into its heap and drops those already unregistered,
  so a registration wakes it only when its first beat is due sooner than that (intervals under ~1.25 s).
* **Jitter.** The first beat comes after a random 80-100% of the interval (``jitter`` 0.2), so that tasks
  started together do not beat together against the account's shared quota; later beats are due one interval
  after the previous one was due, so that a beat sent late does not delay the task's later beats, and never
  less than half an interval after the previous one was sent.
* **Closed tasks.** A beat answered "task closed" calls ``on_closed`` once and stops the beats. That verdict
  and :meth:`unregister` are mutually exclusive (the beat's lock), so ``on_closed`` is never called once
  :meth:`unregister` has returned; it runs under that lock and must be quick (it sets an event).
* **Never waits on the network.** :meth:`unregister` returns at once, even with a beat in flight: that beat may
  still reach Step Functions after the completion, which answers it ``TaskTimedOut`` (ignored). No lock is held
  across a send, so a heartbeat never delays a completion.

Time is injected (``clock``) and the threads are optional (``start_thread=False``): tests then drive
:meth:`HeartbeatScheduler.run_pending` by hand, which sends due beats on the calling thread, and never sleep.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import random
import threading
import time
from collections.abc import Callable

from callback_kit.logs import get_logger
from callback_kit.task.heartbeat_senders import MAX_SENDERS, SenderPool

#: ``ck.heartbeat()`` sends at most this often per task, so a tight loop cannot exhaust the account's quota.
MIN_MANUAL_GAP = 1.0
#: The longest the scheduler thread sleeps: a beat due later than this from now is registered without waking it.
MAX_SLEEP = 1.0
#: Registrations waiting for the scheduler thread, or heap entries beyond twice the open tasks, past which those
#: of tasks already over are dropped.
COMPACT_AT = 1024


def _unregistered() -> bool:
    return True  # what an unregistered beat "sends": nothing (it is never called: a sender checks ``active``)


def _nothing() -> None:
    return None


class Beat:
    """One task's heartbeat registration (internal): what to send, how often, whom to tell when closed.

    Every field below ``lock`` changes under it; the scheduler thread reads ``due`` without it only to drop
    heap entries made stale by a later reschedule (each reschedule queues a fresh entry).
    """

    __slots__ = ("active", "due", "in_flight", "interval", "last_sent", "lock", "on_closed", "send")

    def __init__(
        self, send: Callable[[], bool], interval: float | None, on_closed: Callable[[], None], due: float | None
    ) -> None:
        self.send = send
        #: Seconds between automatic beats; ``None``: manual beats only (``beat_now``).
        self.interval = interval
        self.on_closed = on_closed
        self.lock = threading.Lock()
        #: When the next beat is due (``None``: none scheduled).
        self.due = due
        self.last_sent: float | None = None
        self.active = True
        self.in_flight = False


class HeartbeatScheduler:
    """Sends heartbeats for every registered task: one scheduler thread, senders sized to keep up.

    Args:
        clock: monotonic seconds (injected in tests).
        rand: a random number in [0, 1) for the first beat's jitter.
        jitter: the first beat comes after ``interval * (1 - jitter * rand())``.
        start_thread: False for tests: nothing runs until :meth:`run_pending` is called.
        max_senders: the most sender threads the pool may start.

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
        max_senders: int = MAX_SENDERS,
    ) -> None:
        self._clock = clock
        self._rand = rand
        self._jitter = jitter
        self._start_thread = start_thread
        # Registrations, reschedules and beat_now requests on their way into the heap (append is atomic).
        self._pending: collections.deque[Beat] = collections.deque()
        self._pending_limit = COMPACT_AT  # past this many queued registrations, drop those already unregistered
        self._heap: list[tuple[float, int, Beat]] = []
        self._seq = itertools.count()
        self._drive = threading.Lock()  # whoever runs a scheduling round owns the heap (the thread, or a test)
        self._cond = threading.Condition()
        # When the scheduler thread will next wake by itself; -inf while it is awake (it drains before sleeping).
        self._wake_by = -math.inf
        self._thread: threading.Thread | None = None
        self._open: set[Beat] = set()  # set.add/discard are atomic: no shared lock on the per-task path
        self._pool: SenderPool[Beat] = SenderPool(self._send, clock=clock, max_senders=max_senders)

    @property
    def open_tasks(self) -> int:
        """How many tasks are registered now."""
        return len(self._open)

    @property
    def sent(self) -> int:
        """How many beats have been sent (answered or not) since this scheduler was made."""
        return self._pool.sent

    @property
    def senders(self) -> int:
        """How many sender threads are alive now."""
        return self._pool.size

    def register(self, send: Callable[[], bool], interval: float | None, on_closed: Callable[[], None]) -> Beat:
        """Start beating: ``send()`` is called about every ``interval`` seconds until :meth:`unregister`.

        ``send`` returns False when Step Functions says the task is closed; ``on_closed`` is then called once
        and the beats stop. With ``interval=None`` nothing is sent automatically: the task is registered for
        manual beats (:meth:`beat_now`, i.e. ``ck.heartbeat()``) only.

        Example:
            >>> sched = HeartbeatScheduler(start_thread=False)
            >>> beat = sched.register(lambda: True, None, lambda: None)  # manual beats only
            >>> sched.open_tasks, sched.run_pending()
            (1, None)
        """
        if interval is not None and interval <= 0:
            raise ValueError("the heartbeat interval must be positive")
        due = None if interval is None else self._clock() + interval * (1.0 - self._jitter * self._rand())
        beat = Beat(send, interval, on_closed, due)
        self._open.add(beat)
        if due is not None:
            self._enqueue(beat, due)
        return beat

    def beat_now(self, beat: Beat) -> None:
        """Bring the next beat of ``beat`` forward to now (at most one per :data:`MIN_MANUAL_GAP` seconds)."""
        now = self._clock()
        with beat.lock:
            if not beat.active:
                return
            earliest = now if beat.last_sent is None else max(now, beat.last_sent + MIN_MANUAL_GAP)
            if beat.due is not None and beat.due <= earliest:
                return
            beat.due = earliest
        self._enqueue(beat, earliest)

    def unregister(self, beat: Beat | None) -> None:
        """Stop beating; returns at once. Once it has returned, ``on_closed`` is never called for ``beat``.

        A beat already in flight is not waited for: it may still reach Step Functions, which answers a beat
        for a completed task ``TaskTimedOut``; that answer is ignored.
        """
        if beat is None:
            return
        with beat.lock:
            beat.active = False
            # Its entries in the queue and the heap stay until the scheduler drops them (compaction, or their due
            # time): let them hold no token, completer or task state meanwhile.
            beat.send = _unregistered
            beat.on_closed = _nothing
        self._open.discard(beat)

    def run_pending(self) -> float | None:
        """Send every beat that is due, on this thread; return the seconds until the next one (``None``: none).

        For tests and schedulers made with ``start_thread=False``.
        """
        while True:
            with self._drive:
                due = self._take_due()
                wait = self._until_next()
            if not due:
                return wait
            for beat in due:
                self._send(beat)

    # -- the scheduling round (one driver at a time: ``_drive``) ------------------------------------------

    def _take_due(self) -> list[Beat]:
        """Move pending beats into the heap; pop and claim (``in_flight``) every beat due now."""
        pending, heap = self._pending, self._heap
        while pending:
            beat = pending.popleft()
            due = beat.due
            if beat.active and due is not None:
                heapq.heappush(heap, (due, next(self._seq), beat))
        if len(heap) > 2 * len(self._open) + COMPACT_AT:
            # Mostly entries of tasks already over (their due time not reached yet): drop them all at once.
            heap[:] = [entry for entry in heap if entry[2].active and entry[0] == entry[2].due]
            heapq.heapify(heap)
        now = self._clock()
        taken: list[Beat] = []
        while heap and heap[0][0] <= now:
            due, _, beat = heapq.heappop(heap)
            with beat.lock:
                if not beat.active or beat.due != due or beat.in_flight:
                    continue  # unregistered, rescheduled (a fresh entry exists), or being sent (it reschedules)
                beat.in_flight = True
            taken.append(beat)
        return taken

    def _until_next(self) -> float | None:
        heap = self._heap
        while heap and (not heap[0][2].active or heap[0][0] != heap[0][2].due):
            heapq.heappop(heap)
        if not heap:
            return None
        return max(0.0, heap[0][0] - self._clock())

    def _enqueue(self, beat: Beat, due: float) -> None:
        pending = self._pending
        pending.append(beat)
        if self._start_thread:
            if self._thread is None:
                self._ensure_thread()
            if due < self._wake_by:  # the thread sleeps past this beat's time: wake it (rare)
                with self._cond:
                    self._cond.notify()
        if len(pending) > self._pending_limit:
            self._compact_pending()

    def _compact_pending(self) -> None:
        """Drop the registrations of tasks already over from the queue the scheduler thread has not read yet.

        Most tasks end before the thread next wakes (an interval away): without this, a sandbox running hundreds
        of short tasks a second would hold an interval's worth of them. Active registrations stay queued, so the
        thread's view of what is due is unchanged. Whoever holds ``_drive`` owns the queue's left end; if the
        thread is in a round, it is draining the queue anyway.
        """
        if not self._drive.acquire(blocking=False):
            return
        try:
            pending = self._pending
            for _ in range(len(pending)):
                beat = pending.popleft()
                if beat.active:
                    pending.append(beat)  # appends from other threads may interleave: order does not matter
            # Amortised: the next pass comes after at least as many registrations as are left active.
            self._pending_limit = max(COMPACT_AT, 2 * len(pending))
        finally:
            self._drive.release()

    # -- sending (a sender thread, or run_pending's caller) --------------------------------------------------

    def _send(self, beat: Beat) -> None:
        with beat.lock:
            if not beat.active:
                # Unregistered while it waited for a sender: its task is being completed, so no beat may start now.
                beat.in_flight = False
                return
            send = beat.send
        start = self._clock()
        try:
            alive = send()
        except Exception:  # a heartbeat must never kill the thread that beats for everyone
            get_logger().exception("heartbeat raised; will beat again")
            alive = True
        self._pool.observe(self._clock() - start)
        with beat.lock:
            beat.in_flight = False
            beat.last_sent = start
            if not beat.active:
                return
            if not alive:
                # The "closed" verdict and unregister() exclude each other here: once unregister has returned,
                # on_closed is never called.
                beat.active = False
                self._open.discard(beat)
                try:
                    beat.on_closed()
                except Exception:  # it only sets an event; if it raises, the sender must go on all the same
                    get_logger().exception("heartbeat on_closed callback raised")
                return
            # The next beat is due one interval after this one was *due*, so that a beat sent late (senders
            # busy with a burst) does not push every later beat of the task later too; but never sooner than
            # half an interval after this one went out. (A beat_now() during the send found nothing to do.)
            nxt = None
            if beat.interval is not None:
                nxt = start + beat.interval
                if beat.due is not None:
                    nxt = max(beat.due + beat.interval, start + beat.interval / 2)
            beat.due = nxt
        if nxt is not None:
            self._enqueue(beat, nxt)

    # -- the scheduler thread --------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="callback-kit-heartbeat", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                wait = self._round()
            except Exception:  # e.g. "can't start new thread": the one scheduler thread must outlive it
                get_logger().exception("heartbeat scheduler round failed; trying again shortly")
                wait = 1.0
            # Never sleep longer than MAX_SLEEP, so that a registration due later than that never has to wake the
            # thread: with nothing to beat, every short task's registration would otherwise wake it (a thread
            # switch per task), and with jittered first beats about every other one would.
            wait = MAX_SLEEP if wait is None else min(wait, MAX_SLEEP)
            with self._cond:
                self._wake_by = self._clock() + wait
                if not self._pending:
                    self._cond.wait(wait)
                self._wake_by = -math.inf

    def _round(self) -> float | None:
        """Hand every due beat to the senders; return the seconds until the next round is needed."""
        with self._drive:
            due = self._take_due()
            for i, beat in enumerate(due):
                try:
                    self._pool.submit(beat, self._allowance(beat))
                except BaseException:
                    for unsent in due[i:]:  # give them back, to be tried again next round
                        with unsent.lock:
                            unsent.in_flight = False
                        self._pending.append(unsent)
                    raise
            wait = self._until_next()
        # While beats wait for a sender, look again soon: a stuck sender is only seen by its lateness.
        check = self._pool.check()
        if check is not None:
            wait = check if wait is None else min(wait, check)
        return wait

    @staticmethod
    def _allowance(beat: Beat) -> float:
        """How late a beat may be sent: a small part of its interval (manual beats: of the manual gap)."""
        return 0.05 * (beat.interval or MIN_MANUAL_GAP)


_scheduler_lock = threading.Lock()
_scheduler: HeartbeatScheduler | None = None


def get_scheduler() -> HeartbeatScheduler:
    """The process-wide scheduler, created on first use (its thread starts with the first registration)."""
    global _scheduler
    if _scheduler is None:
        with _scheduler_lock:
            if _scheduler is None:
                _scheduler = HeartbeatScheduler()
    return _scheduler
