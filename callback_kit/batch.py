"""Run the task runs of one Lambda event: concurrently, in order per FIFO group, under the deadline guard.

The deadline guard: when the Lambda context says that fewer than ``margin`` seconds remain while tasks still run,
every running task is failed with ``CallbackKit.LambdaDeadline`` (all at once, not one after another) and records
not yet started are handed back for redelivery, so that the state machine does not wait for a heartbeat or task
timeout after Lambda kills the function. Every Step Functions call of the invocation, completions of tasks that
finished on their own included, must be over by the *hard deadline*, a reserve before the Lambda's end: calls are
given timeouts that fit it, and no retry waits past it, so the handler returns in time and nothing it started
lands after it returned (Lambda freezes the sandbox at the return; an abandoned call would land at the thaw).
"""

from __future__ import annotations

import _thread
import collections
import contextvars
import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from callback_kit.exceptions import ERROR_LAMBDA_DEADLINE
from callback_kit.logs import get_logger
from callback_kit.task.latch import Latch
from callback_kit.task.runner import Status, TaskResult, TaskRun
from callback_kit.task.workers import MAX_POOL_THREADS, WorkerPool, shared_pool

__all__ = ["MAX_POOL_THREADS", "Batch", "WorkerPool", "invocation_deadline", "shared_pool"]
#: How often the deadline guard re-reads the Lambda context's remaining time while tasks run.
DEADLINE_POLL = 0.25
#: A margin that would take more than this fraction of the time the invocation started with (a Lambda timeout at or
#: near the configured margin, which would fail even tasks that finish at once) is replaced by SHORT_MARGIN_FRACTION
#: of that time.
MAX_MARGIN_FRACTION = 0.8
SHORT_MARGIN_FRACTION = 0.5
#: The part of the margin kept for returning: calls must be over this long before the Lambda's end.
RESERVE_FRACTION = 0.25
MESSAGE_DEADLINE = "the Lambda function is about to time out; the task was still running"

_warned_margin = False


class Batch:
    """Runs the task runs of one event, in order where FIFO requires it, under the Lambda deadline guard.

    Args:
        runs: one per record, in event order.
        fifo: keep each message group's records in order and, at the first record of a group that must be
            redelivered, start no later record of that group (other groups go on).
        concurrency: lanes run at once.
        context: the Lambda context (``get_remaining_time_in_millis``), or ``None`` for no deadline.
        margin: seconds before the Lambda's end at which running tasks are failed.
    """

    def __init__(
        self,
        runs: Sequence[TaskRun],
        fifo: bool,
        concurrency: int,
        context: Any,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runs = runs
        self.fifo = fifo
        self.concurrency = concurrency
        self.context = context
        self.clock = clock
        self.stop = Latch()  # set by the guard: start nothing more
        self._left = 0  # pool workers still draining lanes
        self._left_lock = _thread.allocate_lock()
        self._drained: Latch | None = None  # set by the last worker to finish
        # Each task runs in a copy of the caller's context, so ContextVars (tracing, log context) reach it on the
        # pool as they would inline, and what one task sets does not leak into another.
        self._context = contextvars.copy_context()
        remaining = _remaining(context)
        self.margin = margin if remaining is None else _effective_margin(margin, remaining)
        self.reserve = self.margin * RESERVE_FRACTION
        self.hard_deadline: float | None = None
        if remaining is not None:
            self.hard_deadline = _hard_deadline(clock(), remaining, self.reserve)
            for run in runs:
                run.deadline = self.hard_deadline

    def run(self) -> list[TaskResult]:
        """Run every record; return one result per run, in order."""
        if len(self.runs) == 1 and self.hard_deadline is None:
            self._run_lane(self.runs)  # nothing to run beside it, nothing to watch: no thread needed
        else:
            self._run_pool()
        return [self._result(run) for run in self.runs]

    def _result(self, run: TaskRun) -> TaskResult:
        if run.result is not None:
            return run.result
        if run.started:
            # Claimed, with its answer still in flight at the deadline (a client that cannot be given a timeout):
            # its fate is unknown, and handing it back is the side that loses nothing.
            return TaskResult(Status.UNDELIVERABLE, run.record, detail="callback still in flight at the deadline")
        return TaskResult(Status.NOT_STARTED, run.record)  # a FIFO stop, or the deadline came first

    def _lanes(self) -> list[list[TaskRun]]:
        """The records in the order their lanes run them: one lane per record, or per FIFO message group.

        A later record of a token waits for its first record (``TaskRun.twin``). Standard queue: that one is in an
        earlier lane, so it has started before the wait begins. FIFO: the groups of the two are run as one lane,
        in event order, so that the first record has ended by then; kept apart, a worker could wait in one group
        for a record of another group that no free worker is left to start, until the deadline.
        """
        if not self.fifo:
            return [[run] for run in self.runs]
        joined: dict[str | None, str | None] = {}  # group -> a group it shares a token with (union-find)

        def root(group: str | None) -> str | None:
            while joined.get(group, group) != group:
                group = joined[group]
            return group

        for run in self.runs:
            if run.twin is not None:
                joined[root(run.record.group_id)] = root(run.twin.record.group_id)
        lanes: dict[str | None, list[TaskRun]] = {}
        for run in self.runs:
            lanes.setdefault(root(run.record.group_id), []).append(run)
        return list(lanes.values())

    def _run_lane(self, lane: Sequence[TaskRun]) -> None:
        stopped: set[str | None] = set()  # FIFO groups that stopped at a record that must be redelivered
        for run in lane:
            if self.stop.is_set():
                return
            if run.record.group_id in stopped:
                # Handed back unstarted. A later record of its token in a group that still runs takes the task
                # over: a healthy group is not stopped by another group's failure.
                _pass_on(run, lane, stopped)
                run.cancel_unstarted()
                continue
            result = self._context.copy().run(run.run)
            if result.status.redeliver and self.fifo:
                stopped.add(run.record.group_id)  # its group's later records are handed back unstarted

    def _run_pool(self) -> None:
        lanes = collections.deque(self._lanes())
        workers = min(self.concurrency, len(lanes))
        if not workers:
            return  # an empty batch
        # A few workers drain the lanes on the process-wide pool: no thread is started per invocation. The last
        # worker to finish sets ``drained``: one latch for the batch rather than a future per worker.
        self._left = workers
        self._drained = drained = Latch()
        # Near the deadline, let the workers get going before the deadline is looked at, so that a deadline already
        # past fails the first tasks rather than handing them back unstarted. Bounded as a whole (not per worker: 32
        # slow thread starts would otherwise hold the guard for seconds), and never past the guard's own time.
        # Further from it, or with no deadline, the guard's first look cannot fire: the handshake would only cost
        # every invocation a thread switch.
        remaining = _remaining(self.context)
        handshake = remaining is not None and remaining - self.margin <= DEADLINE_POLL
        awake = threading.Semaphore(0) if handshake else None
        pool = shared_pool()
        for _ in range(workers):
            pool.submit(self._drain, lanes, awake)
        if awake is not None and remaining is not None:
            until = self.clock() + min(DEADLINE_POLL, max(0.0, remaining - self.margin))
            for _ in range(workers):
                if not awake.acquire(timeout=max(0.0, until - self.clock())):
                    break
        if not self._wait(drained):
            self._expire_unfinished()

    def _drain(self, lanes: collections.deque[list[TaskRun]], awake: threading.Semaphore | None) -> None:
        try:
            if awake is not None:
                awake.release()
            while not self.stop.is_set():
                try:
                    lane = lanes.popleft()
                except IndexError:
                    return
                self._run_lane(lane)
        finally:
            with self._left_lock:
                self._left -= 1
                last = self._left == 0
            if last and self._drained is not None:
                self._drained.set()

    def _wait(self, drained: Latch) -> bool:
        """Wait for the workers; False when the guard's time came first."""
        while True:
            remaining = _remaining(self.context)
            if remaining is not None and remaining <= self.margin:
                return False
            timeout = None if remaining is None else min(remaining - self.margin, DEADLINE_POLL)
            if drained.wait(timeout):
                return True

    def _expire_unfinished(self) -> None:
        self.stop.set()
        remaining = _remaining(self.context) or 0.0
        deadline = self.clock() + max(0.0, remaining - self.reserve)
        if self.hard_deadline is not None:
            deadline = min(deadline, self.hard_deadline)
        pending = [run for run in self.runs if not run.done.is_set()]
        # Records that never started are settled here and now: they need no call. Only the running tasks get a
        # pooled job (no more than the lanes that run), all at once: one after another, ten slow calls would
        # overrun the deadline; one job per record would start a thread for each that found no idle one.
        for run in pending:
            if not run.cancel_unstarted():
                shared_pool().submit(
                    functools.partial(run.expire, ERROR_LAMBDA_DEADLINE, MESSAGE_DEADLINE, deadline=deadline)
                )
        # Each answer, the guard's or that of a task that finished just now, is bounded by the deadline; give the
        # runs half the reserve beyond it to settle after their last call's timeout (still well before the end).
        settle_by = deadline + self.reserve / 2
        for run in pending:
            run.done.wait(timeout=max(0.0, settle_by - self.clock()))


def _pass_on(run: TaskRun, lane: Sequence[TaskRun], stopped: set[str | None]) -> None:
    """Make the first later record of ``run``'s token in a running group its owner, and the others its twins.

    Only the lane's own thread calls this, before any of those records has started: nothing else reads ``twin``.
    """
    heir: TaskRun | None = None
    for later in lane:
        if later.twin is not run:
            continue
        if heir is None and later.record.group_id not in stopped:
            heir, later.twin = later, None
        elif heir is not None:
            later.twin = heir


def invocation_deadline(context: Any, margin: float, clock: Callable[[], float] = time.monotonic) -> float | None:
    """The ``clock`` time by which every Step Functions call of a Lambda invocation must be over, or ``None``.

    The same hard deadline :class:`Batch` gives its runs: the Lambda's end less a reserve (a quarter of
    ``margin``, itself cut down for a short Lambda timeout), so that an answer made with
    :meth:`~callback_kit.task.completion.Completer.complete` under it is over before the handler must return. For
    handlers that answer without running a user function (the ECS reaper).

    Example:
        >>> from callback_kit.testing import FakeLambdaContext
        >>> deadline = invocation_deadline(FakeLambdaContext(remaining_ms=10_000), 2.0, clock=lambda: 100.0)
        >>> 109.0 < deadline <= 109.5
        True
        >>> invocation_deadline(None, 2.0) is None
        True
    """
    remaining = _remaining(context)
    if remaining is None:
        return None
    return _hard_deadline(clock(), remaining, _effective_margin(margin, remaining) * RESERVE_FRACTION)


def _hard_deadline(now: float, remaining: float, reserve: float) -> float:
    return now + remaining - reserve


def _effective_margin(margin: float, remaining: float) -> float:
    global _warned_margin
    if margin <= remaining * MAX_MARGIN_FRACTION:
        return margin
    ceiling = remaining * SHORT_MARGIN_FRACTION
    if not _warned_margin:
        _warned_margin = True
        get_logger().warning(
            "deadline_margin is large for this function's timeout; using a fraction of the time left instead "
            "(raise the Lambda timeout or lower CALLBACK_KIT_DEADLINE_MARGIN)",
            extra={"deadline_margin": margin, "remaining": round(remaining, 3), "used": round(ceiling, 3)},
        )
    return ceiling


def _remaining(context: Any) -> float | None:
    get = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(get):
        return None
    try:
        return float(get()) / 1000.0
    except (TypeError, ValueError):
        return None
