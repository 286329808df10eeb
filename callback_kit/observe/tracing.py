"""Spans through the OpenTelemetry API: one per task, one per SendTask* call, linked to the upstream trace.

Spans are made only when ``opentelemetry-api`` has been imported (by whoever configured tracing: callback-kit
never imports it itself, so a function without it pays nothing) and a real tracer provider is set (not the API's
default proxy or no-op one). :func:`tracer` decides that at each use, in well under a microsecond when off.

What a span may carry: the source, the run's status, the token's fingerprint, the invocation id, the execution,
state machine and activity ARNs, and a redacted exception. Never a raw token or a payload.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from callback_kit.logs import fingerprint, mask_token, redact_tokens
from callback_kit.observe.upstream import Upstream, from_traceparent, from_xray, state_machine_of

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from callback_kit.sources import TaskRecord
    from callback_kit.task.runner import TaskResult

T = TypeVar("T")

TASK_SPAN = "callback-kit task"
#: ``rpc.service`` of the Step Functions calls: botocore's service id, as botocore's own instrumentation names it.
RPC_SERVICE = "SFN"
#: Statuses whose span is marked ERROR: the task was not answered as it should have been.
ERROR_STATUSES = frozenset({"failed", "undeliverable"})
#: The longest exception message put on a span (a cause can be 32 KB of stack trace).
MAX_MESSAGE_CHARS = 4096

#: Attributes of the task spans started in this context (the invocation id, the activity ARN), set by the handler
#: or the worker before the runs start.
span_scope: ContextVar[dict[str, str] | None] = ContextVar("callback_kit_span_scope", default=None)

_cache: tuple[Any, Tracer] | None = None
#: The OpenTelemetry API modules, imported by :func:`tracer` the first time it finds tracing configured (they are
#: in memory by then: whoever configured the provider imported them): no import statement on the per-task path.
_api: Any = None
_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()


def tracer() -> Tracer | None:
    """callback-kit's tracer when tracing is configured, else ``None`` (see the module docstring).

    Example:
        >>> tracer() is None or tracer() is not None
        True
    """
    global _cache
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    cache = _cache
    if cache is None or cache[0] is not provider:
        global _api
        import opentelemetry.context
        import opentelemetry.trace

        from callback_kit import __version__

        _api = opentelemetry
        cache = _cache = (provider, provider.get_tracer("callback_kit", __version__))
    return cache[1]


def start_task(record: TaskRecord) -> Span | None:
    """Start the span of one task (``callback-kit task``, CONSUMER), or return ``None`` when tracing is off."""
    tracer_ = tracer()
    if tracer_ is None:
        return None
    api = _api.trace
    attributes: dict[str, str] = {
        "callback_kit.source": record.source,
        "callback_kit.token.fingerprint": fingerprint(record.token),
    }
    attributes.update(span_scope.get() or {})
    if record.execution_arn:
        attributes["callback_kit.execution.arn"] = record.execution_arn
        machine = state_machine_of(record.execution_arn)
        if machine:
            attributes["aws.step_functions.state_machine.arn"] = machine
    links = []
    for trace_id, span_id, sampled in link_contexts(record):
        flags = api.TraceFlags(api.TraceFlags.SAMPLED if sampled else api.TraceFlags.DEFAULT)
        links.append(api.Link(api.SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags)))
    return tracer_.start_span(TASK_SPAN, kind=api.SpanKind.CONSUMER, attributes=attributes, links=links)


def end_task(span: Span, result: TaskResult) -> None:
    """Close a task's span with the run's status; ERROR, with the redacted exception, for failed and undeliverable."""
    status = result.status.value
    span.set_attribute("callback_kit.status", status)
    if status in ERROR_STATUSES:
        from opentelemetry.trace import Status, StatusCode

        error = result.error or ("CallbackKit.Undeliverable" if status == "undeliverable" else "Error")
        message = redact(result.cause or result.detail or error, result.record.token)
        span.add_event("exception", {"exception.type": error, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, f"{error}: {message}"[:MAX_MESSAGE_CHARS]))
    span.end()


def unstarted(result: TaskResult) -> None:
    """A span for a record that never ran (a FIFO stop, the deadline came first): one span per record, always."""
    span = start_task(result.record)
    if span is not None:
        end_task(span, result)


class _Active:
    """Makes a span current for a ``with`` block (a plain class: cheaper than a generator-based one, per task)."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = _api.context.attach(_api.trace.set_span_in_context(self._span))

    def __exit__(self, *exc: object) -> None:
        _api.context.detach(self._token)


def activated(span: Span | None) -> contextlib.AbstractContextManager[None]:
    """Make ``span`` the current span in this thread for the ``with`` block (nothing when ``None``)."""
    return _NULL if span is None else _Active(span)


def within(span: Span | None, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` run with ``span`` current: for calls another thread makes for the task (its heartbeats)."""
    if span is None:
        return fn

    def call() -> T:
        with _Active(span):
            return fn()

    return call


class _CallSpan:
    """The span of one Step Functions call. Never made current: nothing runs inside the call to nest under it."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        span = self._span
        if isinstance(exc, Exception):
            from opentelemetry.trace import Status, StatusCode

            from callback_kit.task.classify import error_code

            code = error_code(exc) or type(exc).__name__
            span.set_attribute("callback_kit.error_code", code)
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()


#: The attributes of each call's span, made once per API.
_CALL_ATTRIBUTES = {
    api: {"rpc.system": "aws-api", "rpc.service": RPC_SERVICE, "rpc.method": api}
    for api in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")
}


def call_span(api: str) -> contextlib.AbstractContextManager[None]:
    """A CLIENT span around one Step Functions call (``rpc.*`` attributes), a child of the current task's span.

    Example:
        >>> with call_span("SendTaskSuccess"):
        ...     pass
    """
    tracer_ = tracer()
    if tracer_ is None:
        return _NULL
    attributes = _CALL_ATTRIBUTES.get(api) or {"rpc.system": "aws-api", "rpc.service": RPC_SERVICE, "rpc.method": api}
    return _CallSpan(tracer_.start_span(f"{RPC_SERVICE}.{api}", kind=_api.trace.SpanKind.CLIENT, attributes=attributes))


def redact(text: str, token: str | None) -> str:
    """``text`` with the task's token (and any value after a ``taskToken`` key) replaced by fingerprints.

    Example:
        >>> redact("bad token AAAAKgAAAAIAAAAAAAAAA", "AAAAKgAAAAIAAAAAAAAAA")
        'bad token tok-b81e622a5310'
    """
    return redact_tokens(mask_token(text, token))[:MAX_MESSAGE_CHARS]


def link_contexts(record: TaskRecord) -> list[Upstream]:
    """The upstream contexts a record's span links to, in order: its SQS ``AWSTraceHeader``, its ``traceparent``.

    Example:
        >>> from callback_kit.sources import TaskRecord
        >>> record = TaskRecord("sqs", "t", traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        >>> [(f"{trace_id:032x}", sampled) for trace_id, _, sampled in link_contexts(record)]
        [('4bf92f3577b34da6a3ce929d0e0e4736', True)]
    """
    found = (from_xray(record.trace_header), from_traceparent(record.traceparent))
    return [upstream for upstream in found if upstream is not None]
