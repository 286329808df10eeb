"""Metrics and traces of the task path, fed by the runner's results and out of the way when off.

* :mod:`callback_kit.observe.metrics`: ``metrics=`` (a powertools ``Metrics``) on ``callback_handler``,
  ``process_event`` and ``ActivityWorker``: counts and timings, one EMF document per Lambda invocation.
* :mod:`callback_kit.observe.tracing`: OpenTelemetry spans of each task and each SendTask* call, made only when
  ``opentelemetry-api`` is imported and a tracer provider is configured (``pip install 'callback-kit[otel]'``).

See docs/observability.md for the names, which dashboards and alarms rely on.
"""

from __future__ import annotations

from callback_kit.observe.metrics import MetricsRecorder
from callback_kit.observe.tracing import TASK_SPAN, span_scope, tracer

__all__ = ["TASK_SPAN", "MetricsRecorder", "span_scope", "tracer"]
