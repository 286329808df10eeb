"""A batch mixing success, failure, a missing token and a closed task, read back from EMF and from the spans."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import callback_kit as ck
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, direct_event, sqs_event
from tests.observe.conftest import SERVICE, emf_documents, everything_in, metric_names, task_spans, total, values

NO_SLEEP = RetryPolicy(sleep=lambda s: None)
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:Orders:run-1"


def work(order: dict[str, Any]) -> dict[str, Any]:
    ck.heartbeat()  # a manual beat (automatic ones are off); the closed task's one fails
    if order["kind"] == "fail":
        raise ValueError(f"order {order['id']} is invalid")
    return {"id": order["id"]}


def mixed_batch(sfn: FakeStepFunctions) -> tuple[dict[str, Any], dict[str, str]]:
    tokens = {kind: sfn.open_task() for kind in ("ok", "fail", "closed")}
    sfn.close_task(tokens["closed"])
    event = sqs_event(
        {"TaskToken": tokens["ok"], "kind": "ok", "id": 1, "context": {"Execution": {"Id": EXECUTION}}},
        {"TaskToken": tokens["fail"], "kind": "fail", "id": 2, "traceparent": TRACEPARENT},
        {"kind": "ok", "id": 3},  # no token: handed back
        {"TaskToken": tokens["closed"], "kind": "ok", "id": 4},
    )
    event["Records"][0]["attributes"]["AWSTraceHeader"] = XRAY
    return event, tokens


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


def test_counts_are_right_and_written_in_one_flush(
    sfn: FakeStepFunctions, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a handler with metrics on, and a batch of a success, a failure, a record without token, a closed task
    handler = ck.callback_handler(client=sfn, retry=NO_SLEEP, heartbeat_interval=0, metrics=metrics)(work)
    event, tokens = mixed_batch(sfn)
    sfn.inject("SendTaskSuccess", "ThrottlingException")  # one throttled attempt, then delivered
    # WHEN it handles the batch
    response = handler(event, FakeLambdaContext())
    assert response is not None
    # THEN one EMF document carries every count, the timings, and only the service and Source dimensions
    assert len(response["batchItemFailures"]) == 1
    out = capsys.readouterr().out
    [document] = emf_documents(out)
    counts = {name: total(document, name) for name in ("TaskSucceeded", "TaskFailed", "TaskClosed", "TaskHandedBack")}
    assert counts == {"TaskSucceeded": 1, "TaskFailed": 1, "TaskClosed": 1, "TaskHandedBack": 1}
    assert (total(document, "TaskHandedOff"), total(document, "TaskDuplicate")) == (0, 0)
    assert (
        total(document, "HeartbeatSent"),
        total(document, "HeartbeatFailed"),
        total(document, "CompletionThrottled"),
    ) == (2, 1, 1)
    assert len(values(document, "TaskDuration")) == 3
    assert len(values(document, "CompletionLatency")) == 2  # the closed task sent nothing
    assert metric_names(document) >= {"TaskDuration", "CompletionLatency"}
    units = {m["Name"]: m["Unit"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["TaskDuration"] == units["CompletionLatency"] == "Milliseconds"
    assert units["TaskSucceeded"] == "Count"
    [dimensions] = document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
    assert sorted(dimensions) == ["Source", "service"]
    assert (document["service"], document["Source"]) == (SERVICE, "sqs")
    # AND no token appears in anything written
    assert not any(token in out for token in tokens.values())


def test_spans_have_statuses_links_and_children(sfn: FakeStepFunctions, spans: InMemorySpanExporter) -> None:
    # GIVEN tracing configured and the same mixed batch
    handler = ck.callback_handler(client=sfn, retry=NO_SLEEP, heartbeat_interval=0)(work)
    event, tokens = mixed_batch(sfn)
    context = FakeLambdaContext()
    # WHEN it handles the batch
    handler(event, context)
    # THEN each record has one CONSUMER task span with its status, ERROR for the failure only
    tasks = task_spans(spans)
    by_status = {str(s.attributes["callback_kit.status"]): s for s in tasks if s.attributes}
    assert sorted(by_status) == ["closed", "failed", "no_token", "succeeded"]
    assert all(s.kind is SpanKind.CONSUMER for s in tasks)
    assert all(s.attributes and s.attributes["faas.invocation_id"] == context.aws_request_id for s in tasks)
    assert by_status["failed"].status.status_code is StatusCode.ERROR
    assert by_status["succeeded"].status.status_code is StatusCode.UNSET
    [exception] = [e for e in by_status["failed"].events if e.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert "order 2 is invalid" in str(exception.attributes["exception.message"])
    # AND the SQS trace header and the message's traceparent are linked
    ok, failed = by_status["succeeded"], by_status["failed"]
    assert [f"{link.context.trace_id:032x}" for link in ok.links] == ["5759e988bd862e3fe1be46a994272793"]
    assert [f"{link.context.span_id:016x}" for link in ok.links] == ["53995c3f42cd8ad8"]
    assert [f"{link.context.trace_id:032x}" for link in failed.links] == ["4bf92f3577b34da6a3ce929d0e0e4736"]
    assert ok.attributes is not None
    assert ok.attributes["callback_kit.execution.arn"] == EXECUTION
    assert str(ok.attributes["aws.step_functions.state_machine.arn"]).endswith(":stateMachine:Orders")
    # AND every SendTask* call is a CLIENT child of its task's span, with rpc attributes
    calls = [s for s in spans.get_finished_spans() if s.name.startswith("SFN.")]
    assert calls
    assert all(s.attributes and s.attributes["rpc.system"] == "aws-api" for s in calls)
    assert all(s.kind is SpanKind.CLIENT for s in calls)
    task_ids = {s.context.span_id for s in tasks if s.context}
    assert all(s.parent is not None and s.parent.span_id in task_ids for s in calls)
    methods = sorted(str(s.attributes["rpc.method"]) for s in calls if s.attributes)
    assert methods.count("SendTaskHeartbeat") == 3
    assert {"SendTaskSuccess", "SendTaskFailure"} <= set(methods)
    # AND no raw token appears in any span
    text = everything_in(spans)
    assert not any(token in text for token in tokens.values())


def test_a_token_in_the_exception_message_is_redacted(sfn: FakeStepFunctions, spans: InMemorySpanExporter) -> None:
    # GIVEN a function whose exception message quotes the token
    token = sfn.open_task()

    def leaky(order: dict[str, Any]) -> None:
        raise RuntimeError(f"cannot handle task {token}")

    handler = ck.callback_handler(client=sfn, retry=NO_SLEEP, heartbeat_interval=0)(leaky)
    # WHEN it runs
    handler(direct_event(token, {"n": 1}))
    # THEN the span's exception says the fingerprint, never the token
    [span] = task_spans(spans)
    assert token not in everything_in(spans)
    [event] = [e for e in span.events if e.name == "exception"]
    assert event.attributes is not None
    assert "tok-" in str(event.attributes["exception.message"])


def test_a_handler_that_raises_still_flushes_once(
    sfn: FakeStepFunctions, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a direct invoke with an empty token (the handler raises so that Lambda retries it)
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=metrics)(work)
    # WHEN it handles it
    with pytest.raises(ck.MissingTokenError):
        handler({"TaskToken": "", "kind": "ok", "id": 1})
    # THEN one document says one task was handed back, from a direct invoke
    [document] = emf_documents(capsys.readouterr().out)
    assert (total(document, "TaskHandedBack"), total(document, "TaskSucceeded"), document["Source"]) == (1, 0, "direct")


def test_an_event_of_no_known_shape_is_counted_as_handed_back(
    sfn: FakeStepFunctions, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an event callback-kit cannot read
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=metrics)(work)
    # WHEN it arrives
    with pytest.raises(ck.MalformedEventError):
        handler(["not", "an", "event"])
    # THEN the invocation still writes its one document
    [document] = emf_documents(capsys.readouterr().out)
    assert total(document, "TaskHandedBack") == 1


def test_process_event_takes_metrics_too(
    sfn: FakeStepFunctions, metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the function form
    token = sfn.open_task()
    # WHEN it handles a direct invoke
    ck.process_event(direct_event(token, {"kind": "ok", "id": 7}), None, work, client=sfn, metrics=metrics)
    # THEN it writes its document
    [document] = emf_documents(capsys.readouterr().out)
    assert (total(document, "TaskSucceeded"), document["Source"]) == (1, "direct")
    assert json.dumps(document).count(token) == 0


def test_metrics_off_writes_nothing(sfn: FakeStepFunctions, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a handler without metrics=
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0)(work)
    # WHEN it runs a task
    handler(direct_event(sfn.open_task(), {"kind": "ok", "id": 1}))
    # THEN no EMF document is written
    assert emf_documents(capsys.readouterr().out) == []
