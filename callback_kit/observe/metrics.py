"""Metrics through a powertools ``Metrics`` (CloudWatch EMF): counted from the runs' results, written in one flush.

A :class:`MetricsRecorder` only counts while tasks run (under a lock: results, heartbeats and throttles come from
many threads) and touches the ``Metrics`` object once, at :meth:`MetricsRecorder.flush`, on the thread that
flushes: powertools' metric set is a plain dictionary shared by every ``Metrics`` instance, not made for
concurrent writers.

Each flush writes every count, zeros included (an alarm on ``TaskHandedBack`` then sees 0 rather than missing
data), the durations measured since the last flush, and the ``Source`` dimension beside the ``Metrics``' service.
Inside the user's own ``@metrics.log_metrics`` the recorder adds its metrics and leaves the flush to that
decorator, so that an invocation writes one EMF document and powertools never warns of an empty one.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Sequence
from types import CodeType
from typing import TYPE_CHECKING, Any

from callback_kit.logs import get_logger

if TYPE_CHECKING:
    from callback_kit.task.runner import TaskResult

SUCCEEDED = "TaskSucceeded"
FAILED = "TaskFailed"
CLOSED = "TaskClosed"
HANDED_BACK = "TaskHandedBack"
HANDED_OFF = "TaskHandedOff"
DUPLICATE = "TaskDuplicate"
HEARTBEAT_SENT = "HeartbeatSent"
HEARTBEAT_FAILED = "HeartbeatFailed"
THROTTLED = "CompletionThrottled"
DURATION = "TaskDuration"
LATENCY = "CompletionLatency"

#: The Count metrics, written at every flush.
COUNTS = (SUCCEEDED, FAILED, CLOSED, HANDED_BACK, HANDED_OFF, DUPLICATE, HEARTBEAT_SENT, HEARTBEAT_FAILED, THROTTLED)
#: The status of a run -> the metric it counts under (every status that hands the message back: TaskHandedBack).
BY_STATUS = {
    "succeeded": SUCCEEDED,
    "failed": FAILED,
    "closed": CLOSED,
    "handed_off": HANDED_OFF,
    "duplicate": DUPLICATE,
    "undeliverable": HANDED_BACK,
    "no_token": HANDED_BACK,
    "not_started": HANDED_BACK,
}
#: Values one flush writes per timing metric. EMF takes at most 100 per metric, and powertools flushes on its own
#: when a metric reaches 100, which would make a second document: beyond this, evenly spaced quantiles are kept.
MAX_SAMPLES = 99

_decorate_codes: dict[type, CodeType | None] = {}


class MetricsRecorder:
    """Counts what the runs of a handler or worker did, for one ``Metrics`` object.

    Example:
        >>> from aws_lambda_powertools import Metrics
        >>> recorder = MetricsRecorder(Metrics(namespace="Orders", service="approvals"))
        >>> recorder.heartbeat(True)
        >>> recorder.pending()[HEARTBEAT_SENT]
        1
    """

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(COUNTS, 0)
        self._durations: list[float] = []
        self._latencies: list[float] = []
        self._warned = False

    def record(self, result: TaskResult) -> None:
        """Count one settled run: its status, and its timings in milliseconds when it has them."""
        self.count(result.status.value, result.duration, result.latency)

    def count(self, status: str, duration: float | None = None, latency: float | None = None) -> None:
        """Count one task that ended with ``status`` (a key of :data:`BY_STATUS`); timings in seconds."""
        name = BY_STATUS[status]
        with self._lock:
            self._counts[name] += 1
            if duration is not None:
                self._durations.append(duration * 1000.0)
            if latency is not None:
                self._latencies.append(latency * 1000.0)

    def heartbeat(self, accepted: bool) -> None:
        """Count one heartbeat request: accepted by Step Functions, or not (an error, a throttle, a closed task)."""
        with self._lock:
            self._counts[HEARTBEAT_SENT if accepted else HEARTBEAT_FAILED] += 1

    def throttled(self) -> None:
        """Count one completion attempt refused with a throttling error."""
        with self._lock:
            self._counts[THROTTLED] += 1

    def pending(self) -> dict[str, int]:
        """The counts not flushed yet (a copy)."""
        with self._lock:
            return dict(self._counts)

    def flush(self, source: str) -> None:
        """Write what was counted since the last flush, with ``Source=source``; never raises.

        Inside an enclosing ``@metrics.log_metrics`` of the same metric set, the metrics are added and that
        decorator's flush writes them (one document for the invocation, the user's metrics with it).
        """
        with self._lock:
            counts, self._counts = self._counts, dict.fromkeys(COUNTS, 0)
            durations, self._durations = self._durations, []
            latencies, self._latencies = self._latencies, []
        metrics = self.metrics
        try:
            for name in COUNTS:
                metrics.add_metric(name=name, unit="Count", value=counts[name])
            add_values(metrics, DURATION, "Milliseconds", quantiles(durations, MAX_SAMPLES))
            add_values(metrics, LATENCY, "Milliseconds", quantiles(latencies, MAX_SAMPLES))
            metrics.add_dimension(name="Source", value=source)
            if not inside_log_metrics(metrics):
                metrics.flush_metrics()
        except Exception as exc:  # metrics must never fail a task or a batch: say so once and go on
            # What could not be written never will be (a missing namespace does not heal): drop it, so that the
            # shared set neither grows with every invocation nor carries this Source into the next one.
            with contextlib.suppress(Exception):
                metrics.clear_metrics()
            if not self._warned:
                self._warned = True
                get_logger().warning(
                    "callback-kit could not write its metrics (is POWERTOOLS_METRICS_NAMESPACE set?)",
                    extra={"error": type(exc).__name__, "detail": str(exc)[:500]},
                )


def add_values(metrics: Any, name: str, unit: str, values: Sequence[float]) -> None:
    """Add every value of ``values`` to the metric ``name``, as that many ``add_metric`` calls would.

    powertools checks the name and unit at each call and formats the metric's whole value list into a debug
    message, so that n values cost O(n^2): 99 durations took more than the rest of a flush. The first value goes
    through ``add_metric``, which checks the name and unit and makes the entry; the others are appended to that
    entry's list in the provider's ``metric_set`` (``{name: {"Unit", "StorageResolution", "Value": [...]}}``, the
    shape powertools' EMF serializer reads; a contract test holds it). Where the entry is not that shape, every
    value goes through ``add_metric``.

    Example:
        >>> from aws_lambda_powertools import Metrics
        >>> metrics = Metrics(namespace="Orders")
        >>> add_values(metrics, "TaskDuration", "Milliseconds", [12.0, 30.5])
        >>> metrics.metric_set["TaskDuration"]["Value"]
        [12.0, 30.5]
        >>> metrics.clear_metrics()
    """
    if not values:
        return
    metrics.add_metric(name=name, unit=unit, value=values[0])
    provider = getattr(metrics, "provider", metrics)
    entry = getattr(provider, "metric_set", {}).get(name)
    kept = entry.get("Value") if isinstance(entry, dict) else None
    if isinstance(kept, list) and kept and kept[-1] == float(values[0]):
        kept.extend(float(v) for v in values[1:])
        return
    for value in values[1:]:
        metrics.add_metric(name=name, unit=unit, value=value)


def quantiles(values: Sequence[float], count: int) -> list[float]:
    """``values`` if there are at most ``count``, else ``count`` evenly spaced order statistics of them.

    The kept values have the distribution of the whole, so that CloudWatch's percentiles stay close.

    Example:
        >>> quantiles([3.0, 1.0], 5)
        [3.0, 1.0]
        >>> quantiles([float(v) for v in range(1001)], 3)
        [0.0, 500.0, 1000.0]
    """
    if len(values) <= count:
        return list(values)
    ordered = sorted(values)
    last = len(ordered) - 1
    return [ordered[round(i * last / (count - 1))] for i in range(count)]


def inside_log_metrics(metrics: Any) -> bool:
    """Whether this thread runs inside a ``log_metrics`` decorator that will flush ``metrics``' metric set.

    powertools offers no way to ask, so the stack is looked at: a frame running the code of the wrapper that
    ``log_metrics`` makes, whose provider holds the same metric set (powertools shares one set between every
    ``Metrics`` instance, so any of them flushes ours). A few frames per invocation: about a microsecond.
    """
    provider = getattr(metrics, "provider", metrics)
    metric_set = getattr(provider, "metric_set", None)
    code = _decorate_code(metrics)
    if code is None or metric_set is None:
        return False
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            owner = frame.f_locals.get("self")
            if getattr(owner, "metric_set", None) is metric_set:
                return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _decorate_code(metrics: Any) -> CodeType | None:
    """The code of the wrapper ``metrics.log_metrics`` returns (the same for every function it wraps)."""
    kind = type(metrics)
    if kind not in _decorate_codes:
        code = None
        try:
            wrapper = metrics.log_metrics(_probe)
            code = getattr(wrapper, "__code__", None)
        except Exception:  # not a powertools Metrics: it cannot be flushing anything of ours
            code = None
        _decorate_codes[kind] = code if isinstance(code, CodeType) else None
    return _decorate_codes[kind]


def _probe(event: Any, context: Any) -> None:
    """Never called: only wrapped, to find the code of ``log_metrics``' wrapper."""
