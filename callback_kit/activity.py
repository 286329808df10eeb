"""The activity worker: long-poll GetActivityTask and answer each task through the same runner as Lambda.

:class:`ActivityWorker` runs ``concurrency`` slots. Each slot is one thread that holds one long poll open and,
when the poll hands it a task, runs that task itself; so the worker never holds more open polls than free slots
and never takes a task it cannot start at once. A task goes through :class:`~callback_kit.task.runner.TaskRun`, as a
Lambda record does: the same payload handling (``sources.parse_activity_task``), ``model=`` validation, outcome
mapping, error names and heartbeats, so one function serves both.

What the worker adds on top of the runner:

* **Polling.** The poll client has a 70 s read timeout (Step Functions holds a poll up to 60 s) and botocore's
  retries off. An empty ``taskToken`` means no work. Errors (``ActivityWorkerLimitExceeded``,
  ``ThrottlingException``, connection errors, anything else) are counted and followed by an exponential backoff
  with jitter, and polling goes on; the worker never polls in a tight loop. Only an AWS configuration that cannot
  work (no region, no or rejected credentials: :func:`~callback_kit.awsconfig.configuration_problem`) stops it,
  since waiting never heals that: it drains, and :meth:`ActivityWorker.run` raises the error.
* **Time limit.** A task that runs longer than ``max_task_seconds`` is answered with
  ``CallbackKit.TaskTimeout`` (:data:`~callback_kit.exceptions.ERROR_TASK_TIMEOUT`); its heartbeats stop and
  ``ck.is_cancelled()`` turns true. Python cannot kill a thread, so the slot stays taken until the function
  returns: long functions should look at ``ck.is_cancelled()`` now and then.
* **Shutdown.** SIGTERM/SIGINT (handled by :meth:`ActivityWorker.run`) or :meth:`ActivityWorker.stop` stop new
  polls at once; tasks in flight get ``shutdown_grace_seconds`` to finish, and those still running then are
  answered with ``CallbackKit.WorkerShutdown`` (:data:`~callback_kit.exceptions.ERROR_WORKER_SHUTDOWN`) so the
  state machine can retry at once. A task that a poll already open hands over after the stop is answered with
  the same error without being started. A second signal skips the rest of the grace period. At the grace's end
  every unfinished task is expired at once, and all their answers (and those of tasks that finished during the
  grace) are waited for against one deadline, :data:`FINAL_DELIVERY_SECONDS` later: with the default 25 s grace,
  every answer is over 28 s after the stop, before the SIGKILL that ECS and Kubernetes send at 30 s.

Example:
    >>> import callback_kit as ck
    >>> def check_age(person: dict) -> dict:
    ...     return {"adult": person["age"] >= 18}
    >>> worker = ck.ActivityWorker("arn:aws:states:eu-west-1:123456789012:activity:ageCheck", check_age,
    ...                            concurrency=8, max_task_seconds=300)
    >>> # worker.run()  # blocks until SIGTERM/SIGINT, then drains and returns worker.stats
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from callback_kit.awsconfig import configuration_problem
from callback_kit.exceptions import ERROR_TASK_TIMEOUT, ERROR_WORKER_SHUTDOWN, CallbackDeliveryError
from callback_kit.handler import CallbackHandler
from callback_kit.logs import fingerprint, get_logger
from callback_kit.observe import recorder_for, span_scope
from callback_kit.outcome import ErrorMap, Failure, describe, failure
from callback_kit.poller import (
    MAX_OPEN_POLLS,
    POLL_HOLD_SECONDS,
    POLL_READ_TIMEOUT,
    PollBackoff,
    poll_client,
)
from callback_kit.sources import TaskRecord, parse_activity_task
from callback_kit.task.classify import error_code, is_transient
from callback_kit.task.clients import expect_concurrent_calls
from callback_kit.task.completion import Completer, Delivery, RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler, get_scheduler
from callback_kit.task.runner import RunOptions, Status, TaskResult, TaskRun
from callback_kit.task.workers import shared_pool
from callback_kit.validation import check_metrics, check_worker

__all__ = [
    "MAX_OPEN_POLLS",
    "POLL_HOLD_SECONDS",
    "POLL_READ_TIMEOUT",
    "ActivityWorker",
    "PollBackoff",
    "WorkerStats",
    "poll_client",
]

#: Default heartbeat interval; give the activity task a ``HeartbeatSeconds`` of about 3x this.
DEFAULT_HEARTBEAT_INTERVAL = 30.0
#: Default time in-flight tasks get to finish after a stop (fits under ECS's and Kubernetes' default 30 s).
DEFAULT_SHUTDOWN_GRACE = 25.0
ENV_HEARTBEAT_INTERVAL = "CALLBACK_KIT_HEARTBEAT_INTERVAL"
#: After the grace period, the time every answer still out has, together: the WorkerShutdown failures and the
#: answers of tasks that finished during the grace. Each call is bounded by it (not one after another).
FINAL_DELIVERY_SECONDS = 3.0
#: Seconds between two flushes of ``metrics=`` (CloudWatch keeps standard metrics per minute; a worker flushes on
#: stop too).
METRICS_FLUSH_SECONDS = 60.0


@dataclass
class WorkerStats:
    """Counters of one worker. ``failed`` counts every delivered failure, including ``timed_out`` and ``shut_down``.

    Attributes:
        polls: GetActivityTask calls that returned (with or without a task).
        poll_errors: GetActivityTask calls that raised.
        started: tasks taken and started.
        succeeded / failed: SendTaskSuccess / SendTaskFailure delivered.
        closed: tasks Step Functions had already closed (timed out, stopped) when answered.
        undeliverable: tasks whose callback could not be delivered (the task will time out).
        handed_off: tasks whose function called ``ck.hand_off()``: someone else answers them.
        duplicates: tasks whose token this process had already answered (nothing run, nothing sent).
        timed_out: tasks answered with ``CallbackKit.TaskTimeout``.
        shut_down: tasks answered with ``CallbackKit.WorkerShutdown``.
        heartbeats: heartbeats sent.
        running: tasks taken and not answered yet (running, or being refused after a stop).
        polling: GetActivityTask calls open now. One still open after :meth:`ActivityWorker.wait` returned (a
            long poll, or a retry of the client's own) can still be handed a task: its slot answers it
            ``CallbackKit.WorkerShutdown`` and counts it then.
    """

    polls: int = 0
    poll_errors: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    closed: int = 0
    undeliverable: int = 0
    handed_off: int = 0
    duplicates: int = 0
    timed_out: int = 0
    shut_down: int = 0
    heartbeats: int = 0
    running: int = 0
    polling: int = 0


@dataclass(eq=False)
class _InFlight:
    run: TaskRun | None
    started_at: float
    counted: bool = False
    #: Claimed for expiry (time limit or shutdown): its answer is on its way, from the pool.
    expiring: bool = False


@dataclass
class _CountingCompleter(Completer):
    on_beat: Callable[[], None] = field(default=lambda: None)

    def heartbeat_sending(self) -> None:
        self.on_beat()  # counts requests made, not beats the rate limiter skipped


class ActivityWorker:
    """Polls one activity and runs ``fn`` on each task; see the module docstring for the guarantees.

    Args:
        activity_arn: the activity to poll.
        fn: a plain function of the payload (the decoded task input), or a ``@ck.callback_handler``: its function,
            ``model``, ``error_map``, ``payload_path``, ``heartbeat_interval`` and ``metrics`` are used unless given
            here, so one decorated function serves Lambda and activities.
        concurrency: slots: open polls and tasks running at once (at most 1,000 polls per ARN across workers).
        heartbeat_interval: seconds between heartbeats, 0 for none. Default ``$CALLBACK_KIT_HEARTBEAT_INTERVAL``
            or 30.
        model: a pydantic model (or type) the payload is validated into.
        client: a ``stepfunctions`` client (or :class:`~callback_kit.testing.FakeStepFunctions`) for polls and
            callbacks. Default: a poll client with a 70 s read timeout, and callback-kit's default client.
        worker_name: sent with each poll (shown in the execution history). Default: ``host:pid``.
        max_task_seconds: fail a task that runs longer with ``CallbackKit.TaskTimeout`` (default: no limit).
        shutdown_grace_seconds: how long in-flight tasks may run on after a stop.
        error_map: exception class -> error name, as for the Lambda decorator.
        payload_path: dotted path of the payload inside the task input.
        metrics: a powertools ``Metrics``: task counts and timings (docs/observability.md) with ``Source=activity``,
            flushed once a minute and when the worker stops.
        scheduler, retry, backoff, clock, sleep, tick: injection points for tests (heartbeat scheduler,
            completion retry policy, poll backoff, monotonic clock, the pause after a failed poll, the
            supervisor's check period).
    """

    def __init__(
        self,
        activity_arn: str,
        fn: Callable[[Any], Any],
        *,
        concurrency: int = 1,
        heartbeat_interval: float | None = None,
        model: Any = None,
        client: Any = None,
        worker_name: str | None = None,
        max_task_seconds: float | None = None,
        shutdown_grace_seconds: float = DEFAULT_SHUTDOWN_GRACE,
        error_map: ErrorMap | None = None,
        payload_path: str | None = None,
        metrics: Any = None,
        scheduler: HeartbeatScheduler | None = None,
        retry: RetryPolicy | None = None,
        backoff: PollBackoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        tick: float = 0.05,
    ) -> None:
        if not 1 <= concurrency <= MAX_OPEN_POLLS:
            raise ValueError(f"concurrency must be between 1 and {MAX_OPEN_POLLS}, not {concurrency}")
        if max_task_seconds is not None and max_task_seconds <= 0:
            raise ValueError("max_task_seconds must be positive")
        if shutdown_grace_seconds < 0:
            raise ValueError("shutdown_grace_seconds must be >= 0")
        if isinstance(fn, CallbackHandler):
            # The handler's options come along, so that one decorated function serves Lambda and activities; an
            # argument given here wins. (token_path, source and the batch options mean nothing to an activity.)
            handler = fn.options
            model = model if model is not None else handler.model
            error_map = error_map if error_map is not None else handler.error_map
            payload_path = payload_path if payload_path is not None else handler.payload_path
            metrics = metrics if metrics is not None else handler.metrics
            if heartbeat_interval is None:
                heartbeat_interval = handler.heartbeat_interval or 0  # resolved: None means off
            fn = fn.fn
        check_worker(fn, model=model, error_map=error_map)  # refuse at construction what would fail every task
        check_metrics(metrics)
        interval = _interval(heartbeat_interval)
        self.activity_arn = activity_arn
        self.fn = fn
        self.concurrency = concurrency
        self.worker_name = (worker_name or f"{socket.gethostname()}:{os.getpid()}")[:80]
        self.max_task_seconds = max_task_seconds
        self.shutdown_grace_seconds = shutdown_grace_seconds
        self.payload_path = payload_path
        self._options = RunOptions(model, error_map, interval or None)
        self._client = client
        self._poller: Any = None
        self._recorder = recorder_for(metrics)
        self._completer = _CountingCompleter(
            client, retry or RetryPolicy(), observer=self._recorder, on_beat=self._count_beat
        )
        # The spans of this worker's tasks name the activity (callback_kit.observe.tracing).
        self._span_scope = {"aws.step_functions.activity.arn": activity_arn}
        if client is None:
            expect_concurrent_calls(concurrency)  # the default client's connections (built on first use)
        self._scheduler = scheduler
        self._backoff = backoff or PollBackoff()
        self._clock = clock
        self._sleep = sleep
        self._tick = tick
        self._lock = threading.Lock()
        self._stats = WorkerStats()
        self._in_flight: dict[int, _InFlight] = {}
        self._open_polls = 0
        #: Tasks that arrived after the stop and are being answered without running.
        self._refusing = 0
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._finished = threading.Event()
        #: When the first stop was asked for, on the worker's clock and on the retry policy's.
        self._stopped_at: tuple[float, float] | None = None
        self._threads: list[threading.Thread] = []
        # A poll error that no retry can heal (no region, no credentials; see callback_kit.awsconfig): run() raises it.
        self.configuration_error: Exception | None = None

    # -- public ---------------------------------------------------------------------------------------------
    @property
    def stats(self) -> WorkerStats:
        """A snapshot of the counters."""
        with self._lock:
            return dataclasses.replace(
                self._stats, running=len(self._in_flight) + self._refusing, polling=self._open_polls
            )

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for."""
        return self._stopping.is_set()

    def run(self) -> WorkerStats:
        """Poll and run tasks until SIGTERM/SIGINT (or :meth:`stop`), drain, and return the final counters.

        Signal handlers are installed only when called on the main thread, and restored on return.

        Raises:
            Exception: the poll error that stopped the worker when the AWS configuration cannot work (no region,
                no or rejected credentials; see :attr:`configuration_error`), after the drain.
        """
        previous: dict[signal.Signals, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            self.start()
            while not self.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self.configuration_error is not None:
            raise self.configuration_error
        return self.stats

    def start(self) -> None:
        """Start the slots and the supervisor in background threads, and return at once."""
        if self._threads:
            raise RuntimeError("this worker was already started")
        get_logger().info(
            "activity worker starting",
            extra={"activity_arn": self.activity_arn, "worker": self.worker_name, "concurrency": self.concurrency},
        )
        for i in range(self.concurrency):
            self._threads.append(threading.Thread(target=self._slot, name=f"callback-kit-slot-{i}", daemon=True))
        supervisor = threading.Thread(target=self._supervise, name="callback-kit-supervisor", daemon=True)
        self._threads.append(supervisor)
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop polling now and drain in the background (safe from any thread and from signal handlers)."""
        if self._stopped_at is None:
            # The grace and the answers' deadline count from the stop itself, not from when the supervisor wakes.
            self._stopped_at = (self._clock(), self._completer.policy.clock())
        self._stopping.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the worker has stopped and every task it took is answered; False on timeout."""
        return self._finished.wait(timeout)

    def run_one(self, response: Mapping[str, Any]) -> TaskResult:
        """Run one GetActivityTask response (``taskToken`` and ``input``) to its completion, in this thread."""
        record = parse_activity_task(response.get("taskToken"), response.get("input"), payload_path=self.payload_path)
        scheduler = self._scheduler or get_scheduler()
        run = TaskRun(record, self.fn, self._options, self._completer, scheduler, deadline=self._answers_deadline)
        entry = _InFlight(run, self._clock())
        with self._lock:
            self._in_flight[id(entry)] = entry
            self._stats.started += 1
        get_logger().info("activity task started", extra={"token_fp": fingerprint(record.token)})
        scope = span_scope.set(self._span_scope)
        try:
            result = run.run()
        finally:
            span_scope.reset(scope)
            with self._lock:
                self._in_flight.pop(id(entry), None)
        # NOT_STARTED: the supervisor expired it in the instant before it began, and answered it itself.
        self._record(entry, result)
        return result

    # -- slots ----------------------------------------------------------------------------------------------
    def _slot(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            began = self._clock()
            try:
                with self._polling():
                    response = self._poll_client().get_activity_task(
                        activityArn=self.activity_arn, workerName=self.worker_name
                    )
            except Exception as exc:
                self._poll_failed(exc, failures)
                failures += 1
                continue
            failures = 0
            with self._lock:
                self._stats.polls += 1
            token = response.get("taskToken")
            if not token:
                waited = self._clock() - began
                if waited < self._backoff.min_poll_seconds:
                    self._pause(self._backoff.min_poll_seconds - waited)
                continue
            if self._stopping.is_set():
                self._refuse(token)
                continue
            try:
                self.run_one(response)
            except BaseException as exc:  # the slot must outlive anything a task does: keep polling
                get_logger().error(
                    "activity slot caught an error from a task run; the slot goes on",
                    extra={"error": type(exc).__name__, "detail": describe(exc)},
                )

    @contextmanager
    def _polling(self) -> Iterator[None]:
        with self._lock:
            self._open_polls += 1
        try:
            yield
        finally:
            with self._lock:
                self._open_polls -= 1

    def _poll_failed(self, exc: Exception, failures: int) -> None:
        with self._lock:
            self._stats.poll_errors += 1
        problem = configuration_problem(exc)
        if problem is not None:
            # Missing region or credentials never heal by waiting: stop instead of backing off forever.
            get_logger().error("GetActivityTask cannot be called; stopping", extra={"problem": problem})
            self.configuration_error = exc
            self.stop()
            return
        delay = self._backoff.delay(failures)
        code = error_code(exc) or type(exc).__name__
        transient = is_transient(exc) or code in ("ActivityWorkerLimitExceeded", "ThrottlingException")
        log = get_logger().warning if transient else get_logger().error
        log("GetActivityTask failed; backing off", extra={"code": code, "delay": round(delay, 2)})
        self._pause(delay)

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            self._stopping.wait(seconds)  # a stop ends the pause at once

    def _poll_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._poller is None:
            with self._lock:
                if self._poller is None:
                    self._poller = poll_client(self.concurrency)
        return self._poller

    def _refuse(self, token: str) -> None:
        """Answer a task that arrived after the stop without starting it."""
        get_logger().info(
            "task arrived after the stop; answering WorkerShutdown", extra={"token_fp": fingerprint(token)}
        )
        message = "the activity worker was shutting down when this task arrived"
        record = parse_activity_task(token, None)
        if record.token is None:
            get_logger().error("task arrived with an unusable token", extra={"problem": record.problem})
            return
        with self._lock:
            self._refusing += 1  # the supervisor waits for this answer as for a running task's
        try:
            result = self._answer(record, failure(ERROR_WORKER_SHUTDOWN, message), self._shutdown_deadline())
            if result.status is Status.FAILED:
                with self._lock:
                    self._stats.shut_down += 1
            self._record(_InFlight(None, self._clock()), result)
        finally:
            with self._lock:
                self._refusing -= 1

    def _answer(self, record: TaskRecord, outcome: Failure, deadline: float | None) -> TaskResult:
        """Send a failure for a task that never ran (the runner answers the ones that did)."""
        assert record.token is not None
        try:
            delivery = self._completer.complete(record.token, outcome, deadline=deadline)
        except CallbackDeliveryError as exc:
            return TaskResult(Status.UNDELIVERABLE, record, error=outcome.error, detail=f"{exc.api}: {exc}")
        status = Status.CLOSED if delivery is Delivery.ALREADY_CLOSED else Status.FAILED
        return TaskResult(status, record, error=outcome.error)

    # -- supervisor -----------------------------------------------------------------------------------------
    def _supervise(self) -> None:
        flushed = self._clock()
        try:
            while not self._stopping.is_set():
                self._expire_overdue()
                if self._recorder is not None and self._clock() - flushed >= METRICS_FLUSH_SECONDS:
                    flushed = self._clock()
                    self._recorder.flush("activity")
                self._stopping.wait(self._tick)
            get_logger().info("activity worker stopping: no new polls", extra={"in_flight": self.stats.running})
            deadline = self._stop_times()[0] + self.shutdown_grace_seconds
            while any(t.is_alive() for t in self._threads if t is not threading.current_thread()):
                self._expire_overdue()
                if self._clock() >= deadline or self._hurry.is_set():
                    self._expire_all()
                    break
                self._hurry.wait(self._tick)
        finally:
            if self._recorder is not None:
                self._recorder.flush("activity")  # every task is answered now: the last counts go out
            self._finished.set()
            get_logger().info("activity worker stopped", extra={"stats": dataclasses.asdict(self.stats)})

    def _stop_times(self) -> tuple[float, float]:
        stopped_at = self._stopped_at
        if stopped_at is None:  # stopped by setting the event alone (a configuration error): stop now
            stopped_at = self._stopped_at = (self._clock(), self._completer.policy.clock())
        return stopped_at

    def _answers_deadline(self) -> float | None:
        """The deadline of a task's own answer, read at each look: none while the worker runs (an activity answer
        has all the time it needs), and from the moment :meth:`stop` returns the stop's, so that a task finishing
        during the grace answers by the same deadline as those expired at its end, without waiting for the
        supervisor to wake and say so."""
        return self._shutdown_deadline() if self._stopping.is_set() else None

    def _shutdown_deadline(self) -> float:
        """The ``retry.clock`` time by which every answer of a stopping worker must be over."""
        return self._stop_times()[1] + self.shutdown_grace_seconds + FINAL_DELIVERY_SECONDS

    def _expire_overdue(self) -> None:
        limit = self.max_task_seconds
        if limit is None:
            return
        now = self._clock()
        message = f"the task ran longer than the worker's max_task_seconds ({limit:g} s)"
        deadline = self._shutdown_deadline() if self._stopping.is_set() else None
        for entry in self._claim_for_expiry(lambda e: now - e.started_at >= limit):
            # From the pool, so that one slow answer holds up neither the other tasks' nor the supervisor's watch.
            shared_pool().submit(self._expire, entry, ERROR_TASK_TIMEOUT, message, deadline)

    def _expire_all(self) -> None:
        """Expire every unfinished task at once, then wait for all their answers against one deadline."""
        policy = self._completer.policy
        deadline = min(self._shutdown_deadline(), policy.clock() + FINAL_DELIVERY_SECONDS)
        message = "the activity worker shut down before the task finished"
        for entry in self._claim_for_expiry(lambda e: True):
            shared_pool().submit(self._expire, entry, ERROR_WORKER_SHUTDOWN, message, deadline)
        with self._lock:
            waiting = [e.run for e in self._in_flight.values() if e.run is not None]
            open_polls = self._open_polls
        # Every call is bounded by the deadline; the runs get a moment beyond it to record their answers.
        for run in waiting:
            run.done.wait(max(0.0, deadline + self._tick - policy.clock()))
        # So do the answers of tasks that a poll brought in after the stop: wait() means every taken task is answered.
        budget = max(0.0, deadline + self._tick - policy.clock())
        while self._refusing_now() and budget > 0:
            self._finished.wait(self._tick)  # not set yet: a plain pause that a second signal does not cut short
            budget -= self._tick
        if open_polls:
            get_logger().warning(
                "polls still open at the end of the grace period; a task handed to them is answered WorkerShutdown "
                "if this process lives on, and otherwise waits for its timeout "
                f"(give shutdown_grace_seconds >= {POLL_HOLD_SECONDS + 5} for none to be left)",
                extra={"open_polls": open_polls},
            )

    def _refusing_now(self) -> int:
        with self._lock:
            return self._refusing

    def _claim_for_expiry(self, due: Callable[[_InFlight], bool]) -> list[_InFlight]:
        with self._lock:
            entries = [e for e in self._in_flight.values() if not e.expiring and due(e)]
            for entry in entries:
                entry.expiring = True
        return entries

    def _expire(self, entry: _InFlight, error: str, message: str, deadline: float | None) -> None:
        run = entry.run
        assert run is not None
        result = run.expire(error, message, deadline=deadline)
        if result is None:
            return  # it finished first and sends its own answer (waited for by _expire_all at a stop)
        if result.status is Status.NOT_STARTED and run.record.token is not None:
            result = self._answer(run.record, failure(error, message), deadline)
        with self._lock:
            if result.status is Status.FAILED:
                if error == ERROR_TASK_TIMEOUT:
                    self._stats.timed_out += 1
                else:
                    self._stats.shut_down += 1
        self._record(entry, result)

    def _record(self, entry: _InFlight, result: TaskResult) -> None:
        with self._lock:
            if entry.counted or result.status is Status.NOT_STARTED:
                return
            entry.counted = True
            status = result.status
            if status is Status.SUCCEEDED:
                self._stats.succeeded += 1
            elif status is Status.FAILED:
                self._stats.failed += 1
            elif status is Status.CLOSED:
                self._stats.closed += 1
            elif status is Status.HANDED_OFF:
                self._stats.handed_off += 1
            elif status is Status.DUPLICATE:
                self._stats.duplicates += 1
            else:
                self._stats.undeliverable += 1
        if self._recorder is not None:
            self._recorder.record(result)
        if status in (Status.UNDELIVERABLE, Status.NO_TOKEN):
            result.log_end("activity task could not be answered", level=logging.ERROR)
        else:
            result.log_end("activity task answered")

    def _count_beat(self) -> None:
        with self._lock:
            self._stats.heartbeats += 1

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping.is_set():
            self._hurry.set()  # a second signal: answer the tasks in flight now rather than at the grace's end
        self.stop()


def _interval(given: float | None) -> float:
    if given is None:
        raw = os.environ.get(ENV_HEARTBEAT_INTERVAL, "").strip()
        try:
            given = float(raw) if raw else DEFAULT_HEARTBEAT_INTERVAL
        except ValueError:
            raise ValueError(f"${ENV_HEARTBEAT_INTERVAL} must be a number of seconds, not {raw!r}") from None
    if given < 0:
        raise ValueError("heartbeat_interval must be >= 0")
    return float(given)
