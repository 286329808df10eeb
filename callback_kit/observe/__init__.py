"""Metrics and traces of the task path, fed by the runner's results and out of the way when off.

* :mod:`callback_kit.observe.metrics`: ``metrics=`` (a powertools ``Metrics``) on ``callback_handler``,
  ``process_event`` and ``ActivityWorker``: counts and timings, one EMF document per Lambda invocation.
* :mod:`callback_kit.observe.tracing`: OpenTelemetry spans of each task and each SendTask* call, made only when
  ``opentelemetry-api`` is imported and a tracer provider is configured (``pip install 'callback-kit[otel]'``).

See docs/observability.md for the names, which dashboards and alarms rely on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callback_kit.observe.tracing import TASK_SPAN, span_scope, tracer

if TYPE_CHECKING:
    from callback_kit.observe.metrics import MetricsRecorder

__all__ = ["TASK_SPAN", "MetricsRecorder", "recorder_for", "span_scope", "tracer"]


def recorder_for(metrics: Any) -> MetricsRecorder | None:
    """The recorder that feeds ``metrics=`` (a powertools ``Metrics``), or ``None`` without one.

    The metrics module, and powertools' Metrics with it, is imported only when there is one.

    Example:
        >>> recorder_for(None) is None
        True
    """
    if metrics is None:
        return None
    from callback_kit.observe.metrics import MetricsRecorder

    return MetricsRecorder(metrics)


def __getattr__(name: str) -> Any:
    # The metrics module is imported only by handlers and workers given metrics=: a cold start without pays nothing.
    if name == "MetricsRecorder":
        from callback_kit.observe.metrics import MetricsRecorder

        return MetricsRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
