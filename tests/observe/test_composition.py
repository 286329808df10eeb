"""Stacking with powertools' own decorators: one EMF document per invocation, in any order, and no empty flush."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics, Tracer

import callback_kit as ck
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, direct_event, sqs_event
from tests.observe.conftest import emf_documents, total

Decorator = Callable[[Any], Any]


def approve(order: dict[str, Any]) -> dict[str, Any]:
    return {"approved": True}


def powertools_decorators(metrics: Metrics) -> dict[str, Decorator]:
    logger = Logger(service="orders")
    tracer = Tracer(service="orders", disabled=True)  # no X-Ray daemon here: the wrapper runs, nothing is sent
    return {
        "inject_lambda_context": logger.inject_lambda_context,
        "log_metrics": metrics.log_metrics,
        "capture_lambda_handler": tracer.capture_lambda_handler,
    }


ORDERS = list(itertools.permutations(["inject_lambda_context", "log_metrics", "capture_lambda_handler"]))


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_stacked_over_the_decorator_in_any_order(
    order: tuple[str, ...], metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the three powertools decorators stacked over a callback handler with metrics, in this order
    sfn = FakeStepFunctions()
    handler: Any = ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=metrics)(approve)
    decorators = powertools_decorators(metrics)
    for name in reversed(order):
        handler = decorators[name](handler)
    token = sfn.open_task()
    # WHEN an invocation runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handler(direct_event(token, {"total": 5}), FakeLambdaContext())
    # THEN the task is answered, one EMF document holds callback-kit's metrics, and powertools warned of nothing
    assert sfn.outcome(token) == ("success", {"approved": True})
    [document] = emf_documents(capsys.readouterr().out)
    assert total(document, "TaskSucceeded") == 1
    assert [str(w.message) for w in caught if "metrics" in str(w.message).lower()] == []


def test_the_users_own_metrics_go_out_in_the_same_document(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a function that adds a metric of its own, under the user's log_metrics
    sfn = FakeStepFunctions()

    def priced(order: dict[str, Any]) -> dict[str, Any]:
        metrics.add_metric(name="OrderValue", unit="Count", value=order["total"])
        return {}

    handler = metrics.log_metrics(ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=metrics)(priced))
    # WHEN two invocations run
    for amount in (5, 7):
        handler(direct_event(sfn.open_task(), {"total": amount}), FakeLambdaContext())
    # THEN each wrote one document with both the user's metric and callback-kit's
    documents = emf_documents(capsys.readouterr().out)
    assert [total(d, "OrderValue") for d in documents] == [5, 7]
    assert [total(d, "TaskSucceeded") for d in documents] == [1, 1]


def test_process_event_inside_log_metrics(metrics: Metrics, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the function form inside the user's log_metrics
    sfn = FakeStepFunctions()

    @metrics.log_metrics
    def lambda_handler(event: Any, context: Any) -> Any:
        return ck.process_event(event, context, approve, client=sfn, heartbeat_interval=0, metrics=metrics)

    # WHEN an invocation raises (the event has no usable token)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ck.MissingTokenError):
            lambda_handler({"TaskToken": ""}, FakeLambdaContext())
    # THEN log_metrics still wrote the one document, and nothing warned
    [document] = emf_documents(capsys.readouterr().out)
    assert total(document, "TaskHandedBack") == 1
    assert caught == []


def test_without_log_metrics_callback_kit_flushes_itself_once_per_invocation(
    metrics: Metrics, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a handler with metrics and no log_metrics around it
    sfn = FakeStepFunctions()
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=metrics)(approve)
    # WHEN three invocations run
    for _ in range(3):
        handler(direct_event(sfn.open_task(), {}), FakeLambdaContext())
    # THEN there are three documents, one success each
    assert [total(d, "TaskSucceeded") for d in emf_documents(capsys.readouterr().out)] == [1, 1, 1]


def test_a_metrics_without_namespace_never_fails_the_invocation(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a Metrics that cannot be flushed (no namespace anywhere)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    broken = Metrics(service="orders")
    broken.clear_metrics()
    sfn = FakeStepFunctions()
    handler = ck.callback_handler(client=sfn, heartbeat_interval=0, metrics=broken)(approve)
    token = sfn.open_task()
    # WHEN two invocations from different sources run
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        handler(direct_event(token, {}), FakeLambdaContext())
        handler(sqs_event({"TaskToken": sfn.open_task()}), FakeLambdaContext())
    # THEN the tasks are still answered, nothing was written, and nothing was left behind to pile up
    assert sfn.outcome(token) == ("success", {"approved": True})
    assert emf_documents(capsys.readouterr().out) == []
    assert caught == []
    assert broken.provider.metric_set == {}


def test_a_metrics_that_is_not_a_powertools_metrics_is_refused_at_decoration() -> None:
    # GIVEN a namespace passed where the Metrics object belongs
    # WHEN the handler is decorated / THEN it is refused at once, naming what was given
    with pytest.raises(TypeError, match="powertools Metrics"):
        ck.callback_handler(metrics="Orders")(approve)  # type: ignore[call-overload]
