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

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from callback_kit.batch import Batch
from callback_kit.completion import Completer, RetryPolicy, expect_concurrent_calls
from callback_kit.exceptions import (
    CallbackDeliveryError,
    MissingTokenError,
    validate_error_name,
)
from callback_kit.heartbeat import HeartbeatScheduler, get_scheduler
from callback_kit.outcome import ErrorMap
from callback_kit.runner import RunOptions, Status, TaskRun
from callback_kit.sources import SOURCES, Source, parse_event
from callback_kit.validation import check_function, check_option_names, check_options

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from callback_kit.idempotency import Idempotency

ENV_HEARTBEAT_INTERVAL = "CALLBACK_KIT_HEARTBEAT_INTERVAL"
ENV_DEADLINE_MARGIN = "CALLBACK_KIT_DEADLINE_MARGIN"
ENV_MAX_CONCURRENCY = "CALLBACK_KIT_MAX_CONCURRENCY"
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_DEADLINE_MARGIN = 2.0
DEFAULT_MAX_CONCURRENCY = 10

P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True)
class HandlerOptions:
    """The options of :func:`callback_handler`, with environment defaults resolved (see its docstring)."""

    model: Any = None
    token_path: str | None = None
    payload_path: str | None = None
    heartbeat_interval: float | None = None
    source: Source | None = None
    client: Any = None
    error_map: ErrorMap | None = None
    deadline_margin: float = DEFAULT_DEADLINE_MARGIN
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retry: RetryPolicy | None = None
    scheduler: HeartbeatScheduler | None = None
    idempotency: Idempotency | None = None

    @classmethod
    def resolve(
        cls,
        *,
        heartbeat_interval: float | None = None,
        deadline_margin: float | None = None,
        max_concurrency: int | None = None,
        source: str | None = None,
        error_map: ErrorMap | None = None,
        **rest: Any,
    ) -> HandlerOptions:
        """Fill unset options from the environment, then from the defaults; reject bad values early."""
        # Each error names the option, the value and where it came from (the argument or its variable).
        interval = _env_float(
            ENV_HEARTBEAT_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL, heartbeat_interval, "heartbeat_interval"
        )
        margin = _env_float(ENV_DEADLINE_MARGIN, DEFAULT_DEADLINE_MARGIN, deadline_margin, "deadline_margin")
        concurrency = _env_float(
            ENV_MAX_CONCURRENCY, DEFAULT_MAX_CONCURRENCY, max_concurrency, "max_concurrency", minimum=1, whole=True
        )
        if source is not None and source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        for name in (error_map or {}).values():
            validate_error_name(name)
        return cls(
            heartbeat_interval=interval or None,
            deadline_margin=margin,
            max_concurrency=int(concurrency),
            source=source,
            error_map=error_map,
            **rest,
        )


#: The options :func:`callback_handler` and :func:`process_event` take.
OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(HandlerOptions))


class CallbackHandler(Generic[P, R]):
    """A Lambda handler made by :func:`callback_handler`: call it as ``handler(event, context)``.

    The undecorated function stays reachable as ``.fn`` (and ``__wrapped__``), so tests can call it directly.
    """

    __wrapped__: Callable[[P], R]
    __name__: str
    __qualname__: str

    def __init__(self, fn: Callable[[P], R], options: Mapping[str, Any]) -> None:
        check_function(fn)  # refuse at decoration what cannot take the payload (see callback_kit.validation)
        self.fn = fn
        self._options = dict(options)
        self._resolved: HandlerOptions | None = None
        # What every invocation shares, built once from the options: the completer and the runner's options.
        self._parts: tuple[HandlerOptions, Completer, RunOptions] | None = None
        functools.update_wrapper(self, fn)

    @property
    def options(self) -> HandlerOptions:
        """The options in force (environment variables are read on first use)."""
        if self._resolved is None:
            self._resolved = HandlerOptions.resolve(**self._options)
        return self._resolved

    def __call__(self, event: Any, context: Any = None) -> PartialItemFailureResponse | None:
        options = self.options
        parts = self._parts
        if parts is None or parts[0] is not options:
            parts = self._parts = (options, *_task_parts(options))
        return _process(event, context, self.fn, options, parts[1], parts[2])


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
    error_map: ErrorMap | None = None,
    deadline_margin: float | None = None,
    max_concurrency: int | None = None,
    retry: RetryPolicy | None = None,
    scheduler: HeartbeatScheduler | None = None,
    idempotency: Idempotency | None = None,
) -> Callable[[Callable[[P], R]], CallbackHandler[P, R]]: ...


def callback_handler(
    fn: Callable[[P], R] | None = None, /, **options: Any
) -> CallbackHandler[P, R] | Callable[[Callable[[P], R]], CallbackHandler[P, R]]:
    """Turn a plain function of the payload into a Lambda handler that answers Step Functions callback tasks.

    The function's return value becomes SendTaskSuccess output; an exception becomes SendTaskFailure with the
    exception's class name as the error (or ``TaskFailed.error``, or ``error_map``). Heartbeats are sent while it
    runs.

    Args:
        model: a pydantic model (or any type pydantic validates) the payload is validated into; a payload that
            does not validate fails the task with ``CallbackKit.InvalidPayload``.
        token_path: dotted path of the token in the message; default: the first of ``sources.TOKEN_KEYS``.
        payload_path: dotted path of the object handed to the function; default: the message minus its token.
        heartbeat_interval: seconds between heartbeats; 0 turns them off. Default: ``$CALLBACK_KIT_HEARTBEAT_INTERVAL``
            or 30. Give the task a ``HeartbeatSeconds`` of about 3x this.
        source: ``"sqs"``, ``"sns"``, ``"eventbridge"`` or ``"direct"`` to skip shape detection.
        client: a boto3 ``stepfunctions`` client to use instead of the default one.
        error_map: exception class -> error name, matched along the exception's class hierarchy.
        deadline_margin: seconds before the Lambda timeout at which running tasks are failed with
            ``CallbackKit.LambdaDeadline``. Default: ``$CALLBACK_KIT_DEADLINE_MARGIN`` or 2.
        max_concurrency: SQS records run at once. Default: ``$CALLBACK_KIT_MAX_CONCURRENCY`` or 10.
        retry: the :class:`~callback_kit.completion.RetryPolicy` of completion calls (tests inject its ``sleep``).
        scheduler: the heartbeat scheduler to use instead of the process-wide one (tests drive it by hand).
        idempotency: a :class:`callback_kit.idempotency.Idempotency` so that a redelivered message whose task
            already ran does not run the function again (off by default).

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
    """
    check_option_names(options, OPTION_NAMES, "process_event()")
    resolved = HandlerOptions.resolve(**options)
    return _process(event, context, fn, resolved, *_task_parts(resolved))


def _task_parts(options: HandlerOptions) -> tuple[Completer, RunOptions]:
    """The completer and runner options of every invocation under ``options`` (both stateless)."""
    if options.client is None:
        expect_concurrent_calls(options.max_concurrency)  # the default client's connections (built on first use)
    completer = Completer(options.client, options.retry or RetryPolicy())
    return completer, RunOptions(options.model, options.error_map, options.heartbeat_interval)


def _process(
    event: Any,
    context: Any,
    fn: Callable[[Any], Any],
    options: HandlerOptions,
    completer: Completer,
    run_options: RunOptions,
) -> PartialItemFailureResponse | None:
    records = parse_event(
        event, source=options.source, token_path=options.token_path, payload_path=options.payload_path
    )
    scheduler = options.scheduler or get_scheduler()
    idem = options.idempotency
    runs = [
        TaskRun(r, idem.wrap(fn, r.token, context) if idem and r.token else fn, run_options, completer, scheduler)
        for r in records
    ]
    _link_duplicates(runs)
    fifo = bool(records) and records[0].source == "sqs" and _is_fifo(event)
    results = Batch(runs, fifo, options.max_concurrency, context, options.deadline_margin).run()
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


def _env_float(
    name: str, default: float, given: float | None, option: str, *, minimum: float = 0.0, whole: bool = False
) -> float:
    """``given``, else ``$name``, else ``default``; refuses a bad value naming the option, value and source."""
    raw_value: float | str
    if given is not None:
        source, raw_value = option, given
    else:
        raw = os.environ.get(name)
        if raw is None or raw.strip() == "":
            return float(default)
        source, raw_value = f"{option} (from ${name})", raw
    try:
        value = float(raw_value)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a number, not {raw_value!r}") from None
    if not math.isfinite(value) or value < minimum or (whole and not value.is_integer()):
        kind = "a whole number" if whole else "a number of seconds"
        raise ValueError(f"{source} must be {kind} >= {minimum:g}, not {raw_value!r}")
    return value
