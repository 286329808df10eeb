"""Fixtures of the observability tests: a powertools Metrics whose EMF lines are read back, and an in-memory tracer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

NAMESPACE = "CallbackKitTest"
SERVICE = "orders"


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    """A Metrics with an empty metric set (powertools shares one set between every instance)."""
    emf = Metrics(namespace=NAMESPACE, service=SERVICE)
    emf.clear_metrics()
    yield emf
    emf.clear_metrics()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """A configured tracer provider whose finished spans are kept in memory.

    Patched in rather than set globally: OpenTelemetry lets a process set its provider once, and the other tests
    of the session must run with tracing off.
    """
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    yield exporter
    provider.shutdown()


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines written to stdout."""
    documents = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_names(document: dict[str, Any]) -> set[str]:
    return {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def values(document: dict[str, Any], name: str) -> list[float]:
    value = document[name]
    return value if isinstance(value, list) else [value]


def task_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == "callback-kit task"]


def everything_in(exporter: InMemorySpanExporter) -> str:
    """Every span's name, attributes, events, status and links, as one text to search for tokens."""
    parts = []
    for span in exporter.get_finished_spans():
        parts.append(span.to_json())
    return "\n".join(parts)


def total(document: dict[str, Any], name: str) -> float:
    """A Count metric's value in a document (powertools writes each metric's values as a list)."""
    return sum(values(document, name))
