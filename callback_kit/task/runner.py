"""Run one task: set its context, beat, call the user function, and send exactly one completion.

Shared by the Lambda handler and the activity worker, so that one function behaves the same under both. A task
is *claimed* once, by whichever comes first: the end of the user function, or :meth:`TaskRun.expire` (the Lambda
deadline guard, an activity's time limit or shutdown). Only the claimer sends a completion, and none is sent for
a task that a heartbeat found closed, so a token never gets two answers from this process.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callback_kit.context import TaskInfo, TaskState, _current
from callback_kit.exceptions import (
    ERROR_INVALID_PAYLOAD,
    ERROR_MALFORMED_MESSAGE,
    CallbackDeliveryError,
    RedeliverError,
)
from callback_kit.logs import debug_enabled, fingerprint, get_logger
from callback_kit.observe import tracing
from callback_kit.outcome import ErrorMap, Failure, Outcome, describe, failure, from_exception
from callback_kit.payload import mismatch_message, validate
from callback_kit.sources import TaskRecord
from callback_kit.task.answers import Kind
from callback_kit.task.completion import Completer, Deadline, Delivery, resolve_deadline
from callback_kit.task.heartbeat import MIN_MANUAL_GAP, Beat, HeartbeatScheduler
from callback_kit.task.latch import Latch
from callback_kit.task.ledger import Ledger, ledger_for


class Status(enum.Enum):
    """How a task run ended."""

    #: A SendTaskSuccess was delivered.
    SUCCEEDED = "succeeded"
    #: A SendTaskFailure was delivered (the function raised, its output was unusable, or it was expired).
    FAILED = "failed"
    #: Step Functions had already closed the task; no answer was possible or needed.
    CLOSED = "closed"
    #: The callback could not be delivered: the message must be redelivered.
    UNDELIVERABLE = "undeliverable"
    #: The record has no usable token: the message must be redelivered (and so reach the DLQ).
    NO_TOKEN = "no_token"  # noqa: S105 - a status name, not a secret
    #: The run was claimed (expired) before it started: it never ran and sent nothing.
    NOT_STARTED = "not_started"
    #: The function called ``ck.hand_off()`` and returned: someone else completes the task; nothing was sent.
    HANDED_OFF = "handed_off"
    #: Another record of the same token was answered by this process: nothing run, nothing sent.
    DUPLICATE = "duplicate"

    @property
    def redeliver(self) -> bool:
        """Whether the message that carried this task must go back to its queue."""
        return self in (Status.UNDELIVERABLE, Status.NO_TOKEN, Status.NOT_STARTED)

    @property
    def answered(self) -> bool:
        """Whether the task has its answer (delivered, confirmed closed, or left to whoever it was handed off to)."""
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CLOSED, Status.HANDED_OFF, Status.DUPLICATE)


@dataclass(frozen=True)
class TaskResult:
    """The end of one task run."""

    status: Status
    record: TaskRecord
    error: str | None = None
    detail: str | None = None
    #: Seconds the user function ran, when it ran to its end.
    duration: float | None = None
    #: Seconds from the function's end to the answer landing (or being found unneeded), when it was sent.
    latency: float | None = None
    #: The cause sent with a failure (metrics and spans read it; the end-of-task log line does not).
    cause: str | None = None

    def log_end(self, message: str = "task ended", *, level: int = logging.INFO) -> None:
        """Log this end (at INFO by default): status, error name, token fingerprint (never the token), source, record.

        Called once per task by whoever owns its fate (the Lambda handler once the batch is settled, the activity
        worker as it records the answer), so that the logs alone tell how each task ended and why it failed.

        Example:
            >>> from callback_kit.sources import TaskRecord
            >>> TaskResult(Status.FAILED, TaskRecord("direct", "t"), error="Order.Invalid").log_end()
        """
        record = self.record
        extra: dict[str, Any] = {
            "token_fp": fingerprint(record.token),
            "status": self.status.value,
            "error": self.error,
            "source": record.source,
        }
        if record.record_id is not None:
            extra["record_id"] = record.record_id
        if record.execution_arn is not None:
            extra["execution_arn"] = record.execution_arn
        if self.detail is not None:
            extra["detail"] = self.detail
        logger = get_logger()
        (logger.error if level >= logging.ERROR else logger.warning if level >= logging.WARNING else logger.info)(
            message, extra=extra
        )


@dataclass(frozen=True)
class RunOptions:
    """What the runner needs from the handler's or worker's options."""

    model: Any = None
    error_map: ErrorMap | None = None
    heartbeat_interval: float | None = None


class TaskRun:
    """One task from start to its single completion.

    A run is *claimed* once, by whichever comes first: the end of the user function (:meth:`run`) or
    :meth:`expire`. Only the claimer sends a completion and settles :attr:`result`; the other waits for
    :attr:`done`, so a run never has two results and a token never gets two answers from this process.

    Args:
        deadline: a ``clock`` time by which every Step Functions call of this run must be over (the Lambda's
            deadline less a reserve), ``None`` (no limit), or a function that says it at each look (an activity
            worker's: none until its stop, then the stop's). Calls get timeouts that fit it.

    Example:
        >>> from callback_kit.testing import FakeStepFunctions
        >>> from callback_kit.sources import parse_event
        >>> from callback_kit.task.heartbeat import HeartbeatScheduler
        >>> fake = FakeStepFunctions()
        >>> [record] = parse_event({"token": fake.open_task(), "n": 2})
        >>> run = TaskRun(record, lambda p: p["n"] * 2, RunOptions(), Completer(fake), HeartbeatScheduler())
        >>> run.run().status, fake.outputs()
        (<Status.SUCCEEDED: 'succeeded'>, [4])
    """

    # A plain class with slots rather than a dataclass: one is made per record (10,000 in a large SQS batch), and
    # slots make it smaller, quicker to build, and cheaper for the garbage collector.
    __slots__ = (
        "_beat",
        "_claimed",
        "_key",
        "_lock",
        "_span",
        "_started",
        "_state",
        "clock",
        "completer",
        "deadline",
        "done",
        "fn",
        "ledger",
        "options",
        "record",
        "result",
        "scheduler",
        "twin",
    )

    def __init__(
        self,
        record: TaskRecord,
        fn: Callable[[Any], Any],
        options: RunOptions,
        completer: Completer,
        scheduler: HeartbeatScheduler,
        clock: Callable[[], float] = time.monotonic,
        deadline: Deadline = None,
        ledger: Ledger | None = None,
        twin: TaskRun | None = None,
    ) -> None:
        self.record = record
        self.fn = fn
        self.options = options
        self.completer = completer
        self.scheduler = scheduler
        self.clock = clock
        self.deadline = deadline
        #: The tokens this process runs or answered (default: the ledger of the completer's client).
        self.ledger = ledger
        #: An earlier record of the same token in the same event: this one waits for it and never runs itself.
        self.twin = twin
        self._key: str | None = None
        self._lock = threading.Lock()
        self._claimed = False
        self._started = False
        self._state: TaskState | None = None
        self._beat: Beat | None = None
        self._span: Any = None  # the task's span, when tracing is configured (callback_kit.observe.tracing)
        #: The end of this run, once known; ``done`` is set at the same moment.
        self.result: TaskResult | None = None
        self.done = Latch()

    def __repr__(self) -> str:
        status = self.result.status.value if self.result is not None else ("running" if self._started else "new")
        return f"<TaskRun {self.record.source} {self.record.record_id or ''} {status}>"

    @property
    def started(self) -> bool:
        """Whether the user function has been (or is being) called."""
        return self._started

    def run(self) -> TaskResult:
        """Run the user function and send its completion. Never raises for what the function does.

        When :meth:`expire` claimed the run while the function ran, this waits for that answer and returns it.
        """
        span = tracing.start_task(self.record) if self.result is None else None
        if span is not None:
            with self._lock:
                late = self.result is not None
                if not late:
                    self._span = span
            if late:  # expire() settled it (and gave it its span) while this one was being made: close it too
                assert self.result is not None
                tracing.end_task(span, self.result)
                span = None
        try:
            with tracing.activated(span):  # the function's own spans and the SendTask* calls nest under the task's
                result = self._run()
        except BaseException as exc:  # a fault in the framework itself: hand the message back rather than lose it
            get_logger().exception("task run crashed; handing the record back for redelivery")
            result = TaskResult(Status.UNDELIVERABLE, self.record, detail=describe(exc)) if self._claim() else None
        if result is None:
            # expire() claimed the run: only it settles. Wait for its answer (it is bounded by its deadline).
            self.done.wait()
            assert self.result is not None
            return self.result
        return self._settle(result)

    def expire(self, error: str, message: str, *, deadline: float | None = None) -> TaskResult | None:
        """Answer the task with a failure now, while the function may still run (deadline, time limit, shutdown).

        Returns:
            The result, or ``None`` when the run had already been claimed (it finished first; wait for ``done``).
        """
        with self._lock:
            if self._claimed:
                return None
            self._claimed = True
            started = self._started
            state = self._state
            # With the claim, not after it: a hand-off either came before (and is known here) or is refused.
            handed_off = state.expire() if state is not None else False
        if not started or self.record.token is None:
            return self._settle(TaskResult(Status.NOT_STARTED, self.record))
        self.scheduler.unregister(self._beat)  # never waits: a beat in flight may still land, harmlessly
        if state is not None:
            closed = state.cancelled.is_set()
            state.cancelled.set()  # lets the still-running function see is_cancelled()
            if closed:
                # A heartbeat already said Step Functions closed the task: there is nobody to answer. A function
                # that handed the token off ends handed off, as it does when it returns on its own (_finish).
                status = Status.HANDED_OFF if handed_off else Status.CLOSED
                return self._settle(TaskResult(status, self.record, detail="closed while running"))
        get_logger().warning(message, extra={"token_fp": fingerprint(self.record.token), "error": error})
        with tracing.activated(self._span):  # on the guard's or the supervisor's thread: parent the call explicitly
            own = resolve_deadline(self.deadline)
            return self._settle(self._deliver(failure(error, message), _earliest(deadline, own)))

    def cancel_unstarted(self) -> bool:
        """Settle the run as never started if its function has not been called; True unless it needs :meth:`expire`.

        For records that must not start any more (the deadline guard, a stopped FIFO group): no call is made and
        no thread is needed. False means the function runs (or its twin wait does) and only :meth:`expire` can
        answer it; True also when the run was already claimed, since then its claimer settles it.
        """
        with self._lock:
            if self._claimed:
                return True
            if self._started:
                return False
            self._claimed = True
        self._settle(TaskResult(Status.NOT_STARTED, self.record))
        return True

    def _claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def _settle(self, result: TaskResult) -> TaskResult:
        with self._lock:
            settled = self.result is None
            if settled:
                self.result = result
                span, self._span = self._span, None
        if settled:
            # Nothing reads the task's state or beat once the run is settled (the claim comes first everywhere):
            # let them go now rather than with the batch, which may hold 10,000 settled runs.
            self._state = None
            self._beat = None
            if span is not None:
                tracing.end_task(span, result)
            elif not self._started and result.status is Status.NOT_STARTED:
                tracing.unstarted(result)  # expired before it ran: its record still gets its span
            if self._key is not None and self.ledger is not None:
                self.ledger.release(self._key, self, answered=result.status.answered)
            self.done.set()
        assert self.result is not None
        return self.result

    def _run(self) -> TaskResult | None:
        record = self.record
        if record.token is None:
            if not self._claim():
                return None
            get_logger().warning(
                "record has no usable task token; handing it back for redelivery",
                extra={"record_id": record.record_id, "source": record.source, "problem": record.problem},
            )
            return TaskResult(Status.NO_TOKEN, record, detail=record.problem)
        if self.twin is not None:
            return self._duplicate(self.twin, wait=True)
        key = fingerprint(record.token)
        if self.ledger is None:
            self.ledger = ledger_for(self.completer.resolved_client(record.kind))
        twin = self.ledger.claim(key, self)
        if twin is not None:
            return self._duplicate(twin, wait=False)
        info = TaskInfo(
            source=record.source,
            token_fingerprint=key,
            record_id=record.record_id,
            execution_arn=record.execution_arn,
            group_id=record.group_id,
            heartbeat_interval=self.options.heartbeat_interval,
            envelope=record.envelope,
            kind=record.kind,
        )
        state = TaskState(info, token=record.token)
        with self._lock:
            if self._claimed:  # expired before it could start: expire() settled it
                release = True
            else:
                release = False
                self._key = key
                self._started = True
                self._state = state
        if release:
            self.ledger.release(key, self, answered=False)
            return None
        if record.problem:
            return self._finish(failure(ERROR_MALFORMED_MESSAGE, record.problem))
        self._start_heartbeat(record.token, state)
        reset = _current.set(state)
        started = self.clock()
        try:
            outcome = self._call(record.payload)
        except RedeliverError as exc:
            return self._hand_back(describe(exc))
        finally:
            _current.reset(reset)
            # Returns at once; once it has, a heartbeat can no longer mark the task closed, so the check of
            # ``cancelled`` in _finish sees the last word.
            self.scheduler.unregister(self._beat)
        ended = self.clock()
        if debug_enabled():
            get_logger().debug(
                "user function returned",
                extra={"token_fp": info.token_fingerprint, "seconds": round(ended - started, 3)},
            )
        return self._finish(outcome, ended - started, ended)

    def _duplicate(self, twin: Any, *, wait: bool) -> TaskResult | None:
        """This record's token is owned by another run of this process: never run it, never send for it.

        A twin in the same event is waited for (within this run's deadline; the guard hands this record back
        unstarted if it comes first). An owner from another invocation is not: this record goes back at once
        if that one has no answer yet, as an idempotency store's "in progress" would.
        """
        fp = fingerprint(self.record.token)
        if isinstance(twin, TaskRun):
            if wait:
                limit = resolve_deadline(self.deadline)
                timeout = None if limit is None else max(0.0, limit - self.clock())
                twin.done.wait(timeout)
            owner = twin.result
            answered = owner is not None and owner.status.answered
        else:
            answered = True
        if not self._claim():
            return None
        if answered:
            get_logger().info("duplicate of a task this process answered; acknowledged", extra={"token_fp": fp})
            return TaskResult(Status.DUPLICATE, self.record)
        get_logger().info("duplicate of a task not answered yet; handing it back", extra={"token_fp": fp})
        return TaskResult(Status.UNDELIVERABLE, self.record, detail="duplicate of a record not answered yet")

    def _start_heartbeat(self, token: str, state: TaskState) -> None:
        interval = self.options.heartbeat_interval
        if not interval:
            # No automatic beats, but ck.heartbeat() still beats (rate-limited) when the function asks.
            state.beat = _ManualBeat(self.completer, token, state.cancelled.set, self.clock, self.record.kind)
            return
        # A throttled beat may be retried for half an interval: it still lands within 1.5 intervals.
        send = functools.partial(
            self.completer.heartbeat, token, within=interval / 2, wanted=self._beating, kind=self.record.kind
        )
        # Beats go out on the scheduler's threads: give them the task's span as parent (none when tracing is off).
        beat = self.scheduler.register(tracing.within(self._span, send), interval, state.cancelled.set)
        self._beat = beat
        state.beat = functools.partial(self.scheduler.beat_now, beat)

    def _beating(self) -> bool:
        """Whether this run's beats are still wanted (unregistered once its task is being completed)."""
        beat = self._beat
        return beat is not None and beat.active

    def _call(self, payload: Any) -> Outcome:
        model = self.options.model
        if model is not None:
            try:
                payload = validate(model, payload)
            except Exception as exc:
                return failure(ERROR_INVALID_PAYLOAD, mismatch_message(exc, payload), error_type=ERROR_INVALID_PAYLOAD)
        try:
            value = self.fn(payload)
            if type(value) not in _PLAIN and inspect.isawaitable(value):
                value = run_awaitable(value)
        except RedeliverError:
            raise
        except BaseException as exc:
            log = get_logger().info if isinstance(exc, Exception) else get_logger().error
            answer = from_exception(exc, self.options.error_map)
            log(
                "user function raised",
                extra={
                    "token_fp": fingerprint(self.record.token),
                    "exception": type(exc).__name__,
                    "error": answer.error,
                },
            )
            return answer
        return self.completer.encode(value, self.record.kind)

    def _finish(self, outcome: Outcome, duration: float | None = None, ended: float | None = None) -> TaskResult | None:
        if not self._claim():
            return None  # expire() answered while the function ran; that answer stands
        state = self._state
        if state is not None and state.handed_off and not isinstance(outcome, Failure):
            # The function passed the token on and returned: whoever holds it answers. A function that raised
            # after handing off is answered with its failure, so a notifier that crashed leaves no task waiting.
            get_logger().info("task handed off", extra={"token_fp": fingerprint(self.record.token)})
            return TaskResult(Status.HANDED_OFF, self.record, duration=duration)
        if state is not None and state.cancelled.is_set():
            get_logger().info(
                "task was closed by Step Functions while running; sending no completion",
                extra={"token_fp": fingerprint(self.record.token)},
            )
            return TaskResult(Status.CLOSED, self.record, detail="closed while running", duration=duration)
        # Read at each look, not now: an activity worker's stop brings a deadline while this answer may be waiting
        # for its turn at the rate limiter, and it must then be over by that deadline too.
        return self._deliver(outcome, self._deadline_now, duration, ended)

    def _hand_back(self, reason: str) -> TaskResult | None:
        if not self._claim():
            return None  # expire() answered first
        get_logger().info("handing the message back for redelivery", extra={"token_fp": fingerprint(self.record.token)})
        return TaskResult(Status.UNDELIVERABLE, self.record, detail=reason)

    def _deadline_now(self) -> float | None:
        return resolve_deadline(self.deadline)

    def _deliver(
        self, outcome: Outcome, deadline: Deadline, duration: float | None = None, ended: float | None = None
    ) -> TaskResult:
        token = self.record.token
        assert token is not None
        try:
            delivery = self.completer.complete(token, outcome, deadline=deadline, kind=self.record.kind)
        except CallbackDeliveryError as exc:
            return TaskResult(Status.UNDELIVERABLE, self.record, detail=f"{exc.api}: {exc}", duration=duration)
        latency = None if ended is None else self.clock() - ended
        if isinstance(outcome, Failure):
            status = Status.CLOSED if delivery is Delivery.ALREADY_CLOSED else Status.FAILED
            return TaskResult(status, self.record, outcome.error, None, duration, latency, outcome.cause)
        status = Status.CLOSED if delivery is Delivery.ALREADY_CLOSED else Status.SUCCEEDED
        return TaskResult(status, self.record, None, None, duration, latency)


class _ManualBeat:
    """``ck.heartbeat()`` when automatic heartbeats are off: one beat now, at most one per MIN_MANUAL_GAP."""

    def __init__(
        self,
        completer: Completer,
        token: str,
        on_closed: Callable[[], None],
        clock: Callable[[], float],
        kind: Kind = "stepfunctions",
    ) -> None:
        self._completer = completer
        self._kind = kind
        self._token = token
        self._on_closed = on_closed
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < MIN_MANUAL_GAP:
                return
            self._last = now
        if not self._completer.heartbeat(self._token, kind=self._kind):
            self._on_closed()


def run_awaitable(awaitable: Any) -> Any:
    """Run what an ``async def`` function returned to its result, on a new event loop.

    On a thread that already runs a loop (a user calling ``process_event`` from async code), the coroutine is
    run on a loop in a helper thread, since a loop cannot be nested.
    """

    # Imported here: asyncio (and the ssl and socket modules it pulls in) is ~20 ms of a cold start's import that
    # only async functions need.
    import asyncio

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    box: list[Any] = []

    def in_thread() -> None:
        try:
            box.append((True, asyncio.run(wait())))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(target=in_thread, name="callback-kit-async", daemon=True)
    thread.start()
    thread.join()
    ok, value = box[0]
    if not ok:
        raise value
    return value


#: Return types that are never awaitable: skip the (slower) awaitable check for them.
_PLAIN = frozenset({dict, list, str, int, float, bool, type(None)})


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
