"""``events:putEvents.waitForTaskToken`` end to end: state machine -> bus -> rule -> decorated handler (async)."""

from __future__ import annotations

from typing import Any

import pytest

import callback_kit as ck
from callback_kit.simulator import Delivery, LocalStepFunctions
from tests.e2e.asl import WAIT, events_task, machine

pytestmark = pytest.mark.e2e


@ck.callback_handler(heartbeat_interval=0)
def ship(payload: dict[str, Any]) -> dict[str, Any]:
    return {"shipped": payload["n"], "execution": ck.current_task().execution_arn}


@ck.callback_handler(heartbeat_interval=0)
def out_of_stock(payload: dict[str, Any]) -> dict[str, Any]:
    raise LookupError(f"item {payload['n']} is out of stock")


def routed(local_sfn: LocalStepFunctions, handler: Any, bus: str) -> list[Delivery]:
    """Route a new custom bus's ``shop`` events to ``handler`` as Lambda's async invoke; return its deliveries."""
    queue = local_sfn.create_queue(f"{bus}-target")
    # moto's rules cannot target an in-process function, so the rule targets a queue and the simulator hands each
    # envelope to the handler as EventBridge's async invoke of a Lambda would (the envelope is the full event).
    local_sfn.create_event_bus_to_queue(bus, queue, event_pattern={"source": ["shop"]})
    local_sfn.route_eventbridge(queue, handler, retries=2)
    deliveries: list[Delivery] = []
    local_sfn.on_delivery(deliveries.append)
    return deliveries


def test_eventbridge_detail_is_answered_with_the_return_value(local_sfn: LocalStepFunctions) -> None:
    """The handler finds the token in the envelope's detail; the execution SUCCEEDS with the returned value."""
    # GIVEN putEvents.waitForTaskToken on a custom bus whose rule reaches a decorated handler
    deliveries = routed(local_sfn, ship, "orders")
    arn = local_sfn.create_state_machine("events-success", machine(events_task("orders")))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 3}, timeout=WAIT)

    # THEN it succeeded with the return value; the task info carried the execution ARN, which EventBridge puts in
    # the envelope's resources; the async invoke returned normally, so Lambda would not retry it
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"shipped": 3, "execution": result["executionArn"]}
    assert deliveries[0].event["detail-type"] == "OrderPlaced"
    assert [(d.result, d.error, d.attempt) for d in deliveries] == [(None, None, 1)]


def test_eventbridge_handler_exception_fails_the_execution_without_retries(local_sfn: LocalStepFunctions) -> None:
    """A raised exception is a delivered failure callback: the execution FAILS and Lambda's async retries stay idle."""
    # GIVEN the same wiring with a handler that raises LookupError (async retries allowed: 2)
    deliveries = routed(local_sfn, out_of_stock, "stock")
    arn = local_sfn.create_state_machine("events-failure", machine(events_task("stock")))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 9}, timeout=WAIT)

    # THEN the execution FAILED with the class name, and the handler was called once and returned normally: the
    # failure reached Step Functions, so there is nothing for Lambda to retry and nothing in the DLQ.
    # moto drops SendTaskFailure's cause for EventBridge tasks (AWS keeps it).
    assert result["status"] == "FAILED"
    assert result["error"] == "LookupError"
    assert [(d.error, d.attempt) for d in deliveries] == [(None, 1)]
    assert local_sfn.dead_letters == []
