"""The Lambda entry point: ``callback_handler`` and the function it wraps, ``process_event``.

One decorator serves SQS batches, EventBridge events and direct invokes. What it returns to Lambda:

* SQS: ``{"batchItemFailures": [...]}`` listing only the records whose callback could not be delivered or that
  carry no usable token, so that exactly those are redelivered and, in the end, reach the DLQ. A function that
  raised is a *delivered* failure callback, not a batch item failure. Records run concurrently on a thread pool
  (``max_concurrency``); a FIFO batch keeps each message group in order and, at the first record that must be
  redelivered, starts no further record and reports every record not yet answered.
* EventBridge and direct: ``None``; :class:`~callback_kit.exceptions.CallbackDeliveryError` or
  :class:`~callback_kit.exceptions.MissingTokenError` is raised when the task could not be answered, so that
  Lambda's retries and the on-failure destination take over.

Deadline guard (:mod:`callback_kit.batch`): when the Lambda context says fewer than ``deadline_margin`` seconds
remain while tasks still run, the running tasks are failed with ``CallbackKit.LambdaDeadline`` (records not yet
started are handed back for redelivery), and every call of the invocation ends before the Lambda does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from callback_kit.batch import Batch
from callback_kit.exceptions import CallbackDeliveryError, MissingTokenError
from callback_kit.observe import recorder_for, span_scope, tracing
from callback_kit.options import (
    DEFAULT_DEADLINE_MARGIN,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_MAX_CONCURRENCY,
    ENV_DEADLINE_MARGIN,
    ENV_HEARTBEAT_INTERVAL,
    ENV_MAX_CONCURRENCY,
    OPTION_NAMES,
    HandlerOptions,
    environment_key,
)
from callback_kit.outcome import ErrorMap
from callback_kit.sources import Source, TaskRecord, parse_event
from callback_kit.task.clients import expect_concurrent_calls
from callback_kit.task.completion import Completer, RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler, get_scheduler
from callback_kit.task.runner import RunOptions, Status, TaskResult, TaskRun
from callback_kit.validation import check_function, check_option_names, check_options

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from callback_kit.idempotency import Idempotency

P = TypeVar("P")
R = TypeVar("R")


__all__ = [
    "DEFAULT_DEADLINE_MARGIN",
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_CONCURRENCY",
    "ENV_DEADLINE_MARGIN",
    "ENV_HEARTBEAT_INTERVAL",
    "ENV_MAX_CONCURRENCY",
    "CallbackHandler",
    "HandlerOptions",
    "callback_handler",
    "process_event",
]


class CallbackHandler(Generic[P, R]):
    """A Lambda handler made by :func:`callback_handler`: call it as ``handler(event, context)``.

    The undecorated function stays reachable as ``.fn`` (and ``__wrapped__``), so tests can call it directly.
    Options left unset follow their ``CALLBACK_KIT_*`` variables as they are at each invocation.
    """

    __wrapped__: Callable[[P], R]
    __name__: str
    __qualname__: str

    def __init__(self, fn: Callable[[P], R], options: Mapping[str, Any]) -> None:
        check_function(fn)  # refuse at decoration what cannot take the payload (see callback_kit.validation)
        self.fn = fn
        self._options = dict(options)
        # What the invocations of one environment share, built once: the resolved options, the completer and the
        # runner's options, under the environment key they were resolved for. One tuple, replaced whole, so that
        # concurrent invocations never see half of an update.
        self._parts: tuple[tuple[str | None, ...], HandlerOptions, Completer, RunOptions] | None = None
        functools.update_wrapper(self, fn)

    @property
    def options(self) -> HandlerOptions:
        """The options in force now: those given, the rest from the environment as it is now, else the defaults."""
        return self._current()[1]

    def with_options(self, **changes: Any) -> CallbackHandler[P, R]:
        """A new handler of the same function with some options changed; this one is left as it was.

        For tests: point a module's handler at a fake Step Functions, or turn its heartbeats off, without
        touching the module. Takes the options of :func:`callback_handler` and checks them the same way.

        Example:
            >>> import callback_kit as ck
            >>> from callback_kit.testing import FakeStepFunctions
            >>> @ck.callback_handler(heartbeat_interval=20)
            ... def handler(order: dict) -> dict:
            ...     return {"approved": order["total"] < 100}
            >>> fake = FakeStepFunctions()
            >>> under_test = handler.with_options(client=fake, heartbeat_interval=0)
            >>> token = fake.open_task()
            >>> under_test({"TaskToken": token, "total": 12})
            >>> fake.outcome(token), handler.options.heartbeat_interval, handler.options.client is None
            (('success', {'approved': True}), 20.0, True)

        Raises:
            TypeError: an option :func:`callback_handler` does not take (the closest one is suggested).
            ValueError: a bad value, as for :func:`callback_handler`.
        """
        check_option_names(changes, OPTION_NAMES, "with_options()")
        options = {**self._options, **changes}
        check_options(options)
        HandlerOptions.resolve(**options)
        return CallbackHandler(self.fn, options)

    def __call__(self, event: Any, context: Any = None) -> PartialItemFailureResponse | None:
        _, options, completer, run_options = self._current()
        return _process(event, context, self.fn, options, completer, run_options)

    def _current(self) -> tuple[tuple[str | None, ...], HandlerOptions, Completer, RunOptions]:
        key = environment_key(self._options)
        parts = self._parts
        if parts is None or parts[0] != key:
            options = HandlerOptions.resolve(**self._options)
            parts = self._parts = (key, options, *_task_parts(options))
        return parts


@overload
def callback_handler(fn: Callable[[P], R], /) -> CallbackHandler[P, R]: ...


@overload
def callback_handler(
    fn: None = None,
    /,
    *,
    model: Any = None,
    token_path: str | None = None,
    payload_path: str | None = None,
    heartbeat_interval: float | None = None,
    source: str | None = None,
    client: Any = None,
    lambda_client: Any = None,
    error_map: ErrorMap | None = None,
    deadline_margin: float | None = None,
    max_concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    scheduler: HeartbeatScheduler | None = None,
    idempotency: Idempotency | None = None,
    metrics: Metrics | None = None,
) -> Callable[[Callable[[P], R]], CallbackHandler[P, R]]: ...


def callback_handler(
    fn: Callable[[P], R] | None = None, /, **options: Any
) -> CallbackHandler[P, R] | Callable[[Callable[[P], R]], CallbackHandler[P, R]]:
    """Turn a plain function of the payload into a Lambda handler that answers Step Functions callback tasks.

    The function's return value becomes SendTaskSuccess output; an exception becomes SendTaskFailure with the
    exception's class name as the error (or ``TaskFailed.error``, or ``error_map``). Heartbeats are sent while it
    runs. A message that carries a Lambda durable function's ``callbackId`` instead of a task token is answered
    the same way through the Lambda API (SendDurableExecutionCallbackSuccess/Failure/Heartbeat).

    Args:
        model: a pydantic model (or any type pydantic validates) the payload is validated into; a payload that
            does not validate fails the task with ``CallbackKit.InvalidPayload``.
        token_path: dotted path of the token in the message; default: the first of ``sources.TOKEN_KEYS``.
        payload_path: dotted path of the object handed to the function; default: the message minus its token.
        heartbeat_interval: seconds between heartbeats; 0 turns them off. Default: ``$CALLBACK_KIT_HEARTBEAT_INTERVAL``
            or 30. Give the task a ``HeartbeatSeconds`` of about 3x this.
        source: ``"sqs"``, ``"sns"``, ``"eventbridge"`` or ``"direct"`` to skip shape detection.
        client: a boto3 ``stepfunctions`` client to use instead of the default one.
        lambda_client: what Lambda durable callbacks (messages with a ``callbackId`` and no task token) are
            answered with instead of the default ``lambda`` client: a boto3 ``lambda`` client, or any object with
            its ``send_durable_execution_callback_success/failure/heartbeat`` methods (a test fake). See
            docs/durable.md.
        error_map: exception class -> error name, matched along the exception's class hierarchy.
        deadline_margin: seconds before the Lambda timeout at which running tasks are failed with
            ``CallbackKit.LambdaDeadline``. Default: ``$CALLBACK_KIT_DEADLINE_MARGIN`` or 2.
        max_concurrency: SQS records run at once. Default: ``$CALLBACK_KIT_MAX_CONCURRENCY`` or 10.
        retry: the :class:`~callback_kit.task.completion.RetryPolicy` of completion calls (tests inject its ``sleep``).
        scheduler: the heartbeat scheduler to use instead of the process-wide one (tests drive it by hand).
        idempotency: a :class:`callback_kit.idempotency.Idempotency` so that a redelivered message whose task
            already ran does not run the function again (off by default).
        metrics: a powertools ``Metrics``: each invocation writes the task counts and timings of
            docs/observability.md in one EMF document, with the ``Source`` dimension (flushed by an enclosing
            ``@metrics.log_metrics`` when there is one, else by callback-kit, also when the handler raises).

    Example:
        >>> import callback_kit as ck
        >>> @ck.callback_handler
        ... def handler(payload: dict) -> dict:
        ...     return {"ack": "success"}
        >>> @ck.callback_handler(token_path="MyTaskToken", heartbeat_interval=20)
        ... def handle_order(order: dict) -> dict:
        ...     return {"approved": order["total"] < 100}
    """
    check_option_names(options, OPTION_NAMES, "callback_handler()")
    check_options(options)  # a model pydantic cannot use, error_map keys that are not exceptions: fail at import
    HandlerOptions.resolve(**options)  # fail at import time on a bad option, not at the first event
    if fn is not None:
        return CallbackHandler(fn, options)
    return functools.partial(CallbackHandler, options=options)


def process_event(
    event: Any, context: Any, fn: Callable[[Any], Any], **options: Any
) -> PartialItemFailureResponse | None:
    """Handle one Lambda event with ``fn``: the function form of :func:`callback_handler` (same options).

    Example:
        >>> import callback_kit as ck
        >>> def check(order: dict) -> dict:
        ...     return {"approved": True}
        >>> def lambda_handler(event, context):
        ...     return ck.process_event(event, context, check, heartbeat_interval=20)

        A durable callback, answered through a fake Lambda:

        >>> from callback_kit.testing import FakeDurableCallbacks
        >>> lam = FakeDurableCallbacks()
        >>> callback_id = lam.open_callback()
        >>> ck.process_event({"callbackId": callback_id, "total": 3}, None, check, lambda_client=lam,
        ...                  heartbeat_interval=0)
        >>> lam.outcome(callback_id)
        ('success', {'approved': True})
    """
    check_option_names(options, OPTION_NAMES, "process_event()")
    resolved = HandlerOptions.resolve(**options)
    return _process(event, context, fn, resolved, *_task_parts(resolved))


def _task_parts(options: HandlerOptions) -> tuple[Completer, RunOptions]:
    """The completer and runner options of every invocation under ``options`` (both stateless)."""
    if options.client is None or options.lambda_client is None:
        expect_concurrent_calls(options.max_concurrency)  # the default client's connections (built on first use)
    recorder = recorder_for(options.metrics)
    completer = Completer(
        options.client, options.retry or RetryPolicy(), observer=recorder, lambda_client=options.lambda_client
    )
    return completer, RunOptions(options.model, options.error_map, options.heartbeat_interval)


def _process(
    event: Any,
    context: Any,
    fn: Callable[[Any], Any],
    options: HandlerOptions,
    completer: Completer,
    run_options: RunOptions,
) -> PartialItemFailureResponse | None:
    recorder = completer.observer
    invocation = getattr(context, "aws_request_id", None)
    scope = span_scope.set({"faas.invocation_id": invocation} if isinstance(invocation, str) else None)
    source: Source = options.source or "direct"
    results: list[TaskResult] | None = None
    try:
        records = parse_event(
            event, source=options.source, token_path=options.token_path, payload_path=options.payload_path
        )
        results = []
        if records:
            source = records[0].source
        results = _run(event, context, fn, records, options, completer, run_options)
        return _response(records, results)
    finally:
        span_scope.reset(scope)
        if recorder is not None:
            if results is None:
                # An event that raised before any task was found (no known shape): Lambda retries it, then the DLQ.
                results = [TaskResult(Status.NO_TOKEN, TaskRecord(source, None))]
            for result in results:
                recorder.record(result)
            recorder.flush(source)  # once per invocation, also when the handler raises


def _run(
    event: Any,
    context: Any,
    fn: Callable[[Any], Any],
    records: list[TaskRecord],
    options: HandlerOptions,
    completer: Completer,
    run_options: RunOptions,
) -> list[TaskResult]:
    scheduler = options.scheduler or get_scheduler()
    idem = options.idempotency
    runs = [
        TaskRun(r, idem.wrap(fn, r.token, context) if idem and r.token else fn, run_options, completer, scheduler)
        for r in records
    ]
    _link_duplicates(runs)
    fifo = bool(records) and records[0].source == "sqs" and _is_fifo(event)
    results = Batch(runs, fifo, options.max_concurrency, context, options.deadline_margin).run()
    for run, result in zip(runs, results, strict=True):
        result.log_end()  # settled now: one line per record, whichever of the function or the guard ended it
        if run.result is None:
            tracing.unstarted(result)  # never ran (a FIFO stop, the deadline): its record still gets its span
    return results


def _response(records: list[TaskRecord], results: list[TaskResult]) -> PartialItemFailureResponse | None:
    if not records or records[0].source == "sqs":  # no records: an empty SQS batch
        return {
            "batchItemFailures": [{"itemIdentifier": r.record.record_id or ""} for r in results if r.status.redeliver]
        }
    for result in results:
        if result.status is Status.NO_TOKEN:
            raise MissingTokenError(result.detail or "no task token in the event")
        if result.status.redeliver:
            raise CallbackDeliveryError(result.detail or "the callback could not be delivered", api="callback")
    return None


def _link_duplicates(runs: list[TaskRun]) -> None:
    """Point every later record of a token in this batch at the first: only that one runs and answers."""
    first: dict[str, TaskRun] = {}
    for run in runs:
        token = run.record.token
        if token is None:
            continue
        owner = first.setdefault(token, run)
        if owner is not run:
            run.twin = owner


def _is_fifo(event: Mapping[str, Any]) -> bool:
    records = event.get("Records") or []
    first = records[0] if records else {}
    arn = first.get("eventSourceARN") if isinstance(first, Mapping) else None
    return isinstance(arn, str) and arn.endswith(".fifo")
