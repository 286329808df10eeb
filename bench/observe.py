"""What metrics and spans cost per record: off (the hooks alone) and on (EMF metrics and OpenTelemetry spans).

SQS batches of 10 against a null client (calls return at once), CPU time of the process per record, three sides
measured in turns in the same run so that the machine's load falls on all of them alike:

* **stubbed**: the observe hooks replaced by the cheapest stand-ins (the baseline);
* **off**: as shipped, with no ``metrics=`` and no tracer provider: what every user pays;
* **on**: ``metrics=`` a powertools ``Metrics`` (one EMF document per batch, written to a sink) and an SDK tracer
  provider with no processor, so finished spans are dropped (an exporter's own cost is the exporter's, not ours);
  then each of the two alone, to show where the cost lies.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import Row, median
from bench.pertask import NullClient, cpu_per_task

Handler = Callable[[dict[str, Any], Any], Any]


@contextlib.contextmanager
def _patched(module: Any, **values: Any) -> Iterator[None]:
    """``module``'s attributes set to ``values`` for the ``with`` block."""
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


@contextlib.contextmanager
def _stubbed() -> Iterator[None]:
    """The observe hooks of the task path replaced by constant stand-ins, as if they were not there."""
    from callback_kit.observe import tracing
    from callback_kit.task import completion

    null = contextlib.nullcontext()
    hooks = {
        "start_task": lambda record: None,
        "activated": lambda span: null,
        "within": lambda span, fn: fn,
        "unstarted": lambda result: None,
    }
    with _patched(tracing, **hooks), _patched(completion, call_span=lambda api: null):
        yield


#: The SDK tracer provider the "on" side uses (set by :func:`run`).
_PROVIDER: list[Any] = []


@contextlib.contextmanager
def _traced() -> Iterator[None]:
    """An SDK tracer provider in force (patched in and out: the API lets a process set one only once)."""
    from opentelemetry import trace

    provider = _PROVIDER[0]
    with _patched(trace, get_tracer_provider=lambda: provider):
        yield


def _handler(metrics: Any = None) -> Handler:
    import callback_kit as ck

    def fn(payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "n": payload.get("n")}

    return ck.callback_handler(client=NullClient(), heartbeat_interval=0, metrics=metrics)(fn)


def run(quick: bool) -> list[Row]:
    """Added CPU per record with metrics and spans off, and on."""
    from aws_lambda_powertools import Metrics
    from opentelemetry.sdk.trace import TracerProvider

    from callback_kit.testing import sqs_event

    _PROVIDER[:] = [TracerProvider()]  # no processor: spans are made, then dropped
    metrics = Metrics(namespace="Bench", service="bench")
    plain, measured = _handler(), _handler(metrics)
    rounds, batches = (3, 50) if quick else (7, 300)
    serial = iter(range(10**9))  # every record its own token: a repeated token is a duplicate, another path

    def events() -> list[dict[str, Any]]:
        return [
            sqs_event(*({"TaskToken": f"token-{next(serial):09d}" + "x" * 600, "n": i} for i in range(10)))
            for _ in range(batches)
        ]

    sides: dict[str, list[float]] = {"stubbed": [], "off": [], "on": [], "metrics": [], "spans": []}
    order = ("stubbed", "off", "on", "metrics", "spans")
    saved, sys.stdout = sys.stdout, io.StringIO()  # log lines and EMF documents: written, as in Lambda, unread
    try:
        for i in range(rounds + 1):
            for side in order if i % 2 else order[::-1]:
                batch = events()
                if side == "stubbed":
                    with _stubbed():
                        cost = cpu_per_task(plain, batch, batches * 10)
                elif side == "off":
                    cost = cpu_per_task(plain, batch, batches * 10)
                elif side == "metrics":
                    cost = cpu_per_task(measured, batch, batches * 10)
                elif side == "spans":
                    with _traced():
                        cost = cpu_per_task(plain, batch, batches * 10)
                else:
                    with _traced():
                        cost = cpu_per_task(measured, batch, batches * 10)
                if i:  # the first round warms up
                    sides[side].append(cost)
                sys.stdout = io.StringIO()  # let the sink's text go
    finally:
        sys.stdout = saved
    stubbed, off, on, metrics_on, spans_on = (median(sides[s]) for s in order)
    bare = _bare_spans(batches * 10)
    return [
        Row(
            "observe",
            "SQS batch of 10, metrics and spans off: added CPU per record",
            f"{(off - stubbed) * 1e6:.1f} us",
            f"{stubbed * 1e6:.1f} us",
            "the same handler with the observe hooks stubbed out",
            off / stubbed,
            "x CPU",
            "<= 10 us added",
            off - stubbed <= 10e-6,
        ),
        Row(
            "observe",
            "SQS batch of 10, metrics (EMF) and spans on: added CPU per record",
            f"{(on - off) * 1e6:.1f} us",
            f"{off * 1e6:.1f} us",
            "the same handler with both off",
            on / off,
            "x CPU",
            "<= 30 us added",
            on - off <= 30e-6,
        ),
        Row(
            "observe",
            "  of which metrics alone (one EMF document per batch)",
            f"{(metrics_on - off) * 1e6:.1f} us",
            f"{off * 1e6:.1f} us",
            "the same handler with both off",
            metrics_on / off,
            "x CPU",
        ),
        Row(
            "observe",
            "  of which spans alone (a task span and a call span per record, OpenTelemetry SDK)",
            f"{(spans_on - off) * 1e6:.1f} us",
            f"{off * 1e6:.1f} us",
            "the same handler with both off",
            spans_on / off,
            "x CPU",
        ),
        Row(
            "observe",
            "  the SDK's own share: two bare spans with the same kinds and attributes, one thread",
            f"{bare * 1e6:.1f} us",
            f"{(spans_on - off) * 1e6:.1f} us",
            "the spans' cost in the handler",
            bare / (spans_on - off) if spans_on > off else 0.0,
            "x CPU",
        ),
    ]


def _bare_spans(records: int) -> float:
    """CPU per record of the two spans a record gets, made straight on the SDK tracer with nothing around them."""
    from opentelemetry import trace

    tracer = _PROVIDER[0].get_tracer("bench")
    task_attributes = {"callback_kit.source": "sqs", "callback_kit.token.fingerprint": "tok-0123456789ab"}
    call_attributes = {"rpc.system": "aws-api", "rpc.service": "SFN", "rpc.method": "SendTaskSuccess"}
    runs = []
    for _ in range(3):
        start = time.process_time()
        for _ in range(records):
            task = tracer.start_span("callback-kit task", kind=trace.SpanKind.CONSUMER, attributes=task_attributes)
            tracer.start_span("SFN.SendTaskSuccess", kind=trace.SpanKind.CLIENT, attributes=call_attributes).end()
            task.end()
        runs.append((time.process_time() - start) / records)
    return median(runs)
