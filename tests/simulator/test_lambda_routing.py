"""Routed functions run as Lambda runs them: an ordinary invoke returns the function's value to the state machine.

The simulator used to answer every routed invoke ``{}`` at once and run the handler later, which is right only for
``lambda:invoke.waitForTaskToken``: state machines that mix plain and callback Lambda tasks lost the plain tasks'
results.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from callback_kit.simulator import Delivery, LocalStepFunctions

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def invoke(function_arn: str, payload: Any, **extra: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "TimeoutSeconds": 3,
        **extra,
    }


def callback_invoke(function_arn: str, *, heartbeat: int | None = None, **parameters: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {"FunctionName": function_arn, "Payload": {"token.$": "$$.Task.Token", "n.$": "$.n"}},
        "TimeoutSeconds": 5,
        "End": True,
    }
    task["Parameters"].update(parameters)
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    return task


def test_plain_and_callback_lambda_tasks_in_one_machine_both_deliver_their_results(sim: LocalStepFunctions) -> None:
    # GIVEN a plain invoke whose return value feeds a callback task answered by another routed function
    def price(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"n": event["quantity"] * 3}

    def approve(event: dict[str, Any], context: Any) -> None:
        output = json.dumps({"approved": event["n"] < 10, "n": event["n"]})
        boto3.client("stepfunctions").send_task_success(taskToken=event["token"], output=output)

    definition = {
        "StartAt": "Price",
        "States": {
            "Price": invoke(
                sim.route_lambda("price", price), {"quantity.$": "$.quantity"}, OutputPath="$.Payload", Next="Approve"
            ),
            "Approve": callback_invoke(sim.route_lambda("approve", approve)),
        },
    }

    # WHEN it runs
    result = sim.run(sim.create_state_machine("mixed", definition), {"quantity": 2}, timeout=4)

    # THEN the plain task's value reached the callback task (before: {} and a KeyError on "n")
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"approved": True, "n": 6}


def test_a_plain_invoke_answers_the_lambda_response_and_the_legacy_arn_the_value_itself(
    sim: LocalStepFunctions,
) -> None:
    # GIVEN the same function called through the service integration and through its bare ARN
    def hello(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"hello": event["who"]}

    arn = sim.route_lambda("hello", hello)
    definition = {
        "StartAt": "Integration",
        "States": {
            "Integration": invoke(arn, {"who": "sfn"}, ResultPath="$.integration", Next="Legacy"),
            "Legacy": {
                "Type": "Task",
                "Resource": arn,
                "Parameters": {"who": "arn"},
                "ResultPath": "$.legacy",
                "End": True,
            },
        },
    }

    # WHEN it runs
    result = sim.run(sim.create_state_machine("shapes", definition), {}, timeout=4)

    # THEN the integration wraps it in Lambda's response (Payload, StatusCode); the bare ARN gives the value
    assert result["status"] == "SUCCEEDED"
    assert result["output"]["integration"]["Payload"] == {"hello": "sfn"}
    assert result["output"]["integration"]["StatusCode"] == 200
    assert result["output"]["legacy"] == {"hello": "arn"}


def test_a_raise_in_a_plain_invoke_is_retried_then_caught_with_lambdas_error_document(sim: LocalStepFunctions) -> None:
    # GIVEN a function that always raises, a Retry of one attempt and a Catch
    calls: list[int] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        calls.append(1)
        raise ValueError("no price for o-1")

    retry = [{"ErrorEquals": ["ValueError"], "MaxAttempts": 1, "IntervalSeconds": 1}]
    catch = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}]
    task = invoke(sim.route_lambda("broken", broken), {}, Retry=retry, Catch=catch, End=True)
    definition = {"StartAt": "Price", "States": {"Price": task, "Failed": {"Type": "Pass", "End": True}}}

    # WHEN it runs
    result = sim.run(sim.create_state_machine("raising", definition), {}, timeout=5)

    # THEN it was called twice; Catch got the exception's type as Error and Lambda's error JSON as Cause
    assert len(calls) == 2
    error = result["output"]["error"]
    assert error["Error"] == "ValueError"
    cause = json.loads(error["Cause"])
    assert (cause["errorType"], cause["errorMessage"]) == ("ValueError", "no price for o-1")
    assert cause["stackTrace"]


def test_a_return_value_that_is_not_json_is_a_marshal_error(sim: LocalStepFunctions) -> None:
    # GIVEN a function returning something Lambda's Python runtime cannot serialise
    def odd(event: dict[str, Any], context: Any) -> object:
        return object()

    definition = {"StartAt": "Odd", "States": {"Odd": invoke(sim.route_lambda("odd", odd), {}, End=True)}}

    # WHEN / THEN the task fails as on AWS
    result = sim.run(sim.create_state_machine("odd", definition), {}, timeout=4)
    assert (result["status"], result["error"]) == ("FAILED", "Runtime.MarshalError")


def test_a_callback_sent_from_inside_the_invoke_of_a_heartbeat_task_is_kept(sim: LocalStepFunctions) -> None:
    # GIVEN a callback task with HeartbeatSeconds whose function beats and answers before its invoke returns
    def fast(event: dict[str, Any], context: Any) -> dict[str, str]:
        client = boto3.client("stepfunctions")
        client.send_task_heartbeat(taskToken=event["token"])
        client.send_task_success(taskToken=event["token"], output=json.dumps({"n": event["n"]}))
        return {"status": "sent"}

    definition = {"StartAt": "W", "States": {"W": callback_invoke(sim.route_lambda("fast", fast), heartbeat=1)}}

    # WHEN it runs
    result = sim.run(sim.create_state_machine("fast", definition), {"n": 7}, timeout=4)

    # THEN the answer is the result (moto alone: heartbeat InvalidToken, answer lost, States.Timeout at 1 s)
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"n": 7}


def test_an_event_invoke_is_queued_and_retried_like_an_async_lambda(sim: LocalStepFunctions) -> None:
    # GIVEN a routed function that fails once, invoked asynchronously by code under test
    # (moto's interpreter drops a task's InvocationType, so state machines always invoke synchronously)
    deliveries: list[Delivery] = []
    sim.on_delivery(deliveries.append)

    def flaky(event: dict[str, Any], context: Any) -> None:
        if not deliveries:
            raise RuntimeError("cold start")

    sim.route_lambda("flaky", flaky)

    # WHEN it is invoked with InvocationType=Event and the pump delivers
    response = sim.lambda_.invoke(FunctionName="flaky", InvocationType="Event", Payload=b'{"n": 1}')
    assert deliveries == []
    while sim.deliver_once(wait=0.5):
        pass

    # THEN the invoke answered 202 at once, and the handler ran twice (Lambda's async retry), nothing dead-lettered
    assert response["StatusCode"] == 202
    assert [d.attempt for d in deliveries] == [1, 2]
    assert deliveries[1].error is None
    assert sim.dead_letters == []
