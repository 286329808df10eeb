"""A durable function as the worker of ``lambda:invoke.waitForTaskToken``, end to end.

The state machine runs on moto's simulator; the invoke is routed in-process (as in test_lambda_invoke) to what a
durable function's invoke does on Lambda: it starts a durable execution, here on AWS's local durable runner, and
returns. The execution waits and is replayed, then answers the state machine's token with callback-kit's default
client, as deployed.
"""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 11):
    pytest.skip(
        "the Lambda durable execution SDK and its local runner install on Python 3.11 and later only",
        allow_module_level=True,
    )

import json
from collections.abc import Callable, Iterator
from typing import Any

from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration
from aws_durable_execution_sdk_python_testing import DurableFunctionTestRunner

import callback_kit as ck
from callback_kit.simulator import LocalStepFunctions
from tests.durable_task.helpers import EXECUTION_TIMEOUT, Body
from tests.e2e.asl import WAIT, lambda_task, machine

pytestmark = pytest.mark.e2e

DurableHandler = Callable[[Any, Any], Any]


@pytest.fixture
def durable_lambda(local_sfn: LocalStepFunctions) -> Iterator[Callable[[str, DurableHandler], str]]:
    """Route a function name to a durable handler: each invoke starts a durable execution of it and returns."""
    runners: list[DurableFunctionTestRunner] = []

    def route(name: str, handler: DurableHandler) -> str:
        runner = DurableFunctionTestRunner(handler=handler)
        runners.append(runner)
        started = iter(range(1_000_000))

        def invoke(payload: Any, _context: Any = None) -> None:
            # Lambda starts the execution and the invoke returns: the answer comes later, from the execution.
            runner.run_async(
                input=json.dumps(payload),
                execution_timeout=EXECUTION_TIMEOUT,
                execution_name=f"{name}-{next(started)}",
            )

        return local_sfn.route_lambda(name, invoke)

    yield route
    for runner in runners:
        runner.close()


def test_a_state_machine_gets_the_durable_functions_answer_once(
    local_sfn: LocalStepFunctions, durable_lambda: Callable[[str, DurableHandler], str]
) -> None:
    # GIVEN a state machine that invokes a durable function with waitForTaskToken, the token in the payload as in
    # AWS's sample, and a function that waits twice (so that it is replayed) before it decides
    body = Body()

    @durable_execution
    @ck.durable_task_handler
    def approve(order: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        body.runs += 1
        body.payloads.append(order)
        context.wait(Duration.from_hours(12), name="overnight")
        total = context.step(lambda _step: order["n"] * 10, name="price")
        context.wait(Duration.from_minutes(10), name="settle")
        return {"approved": total < 100, "total": total}

    function_arn = durable_lambda("approver", approve)
    payload = {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"}
    arn = local_sfn.create_state_machine("durable-approve", machine(lambda_task(function_arn, payload)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 4}, timeout=WAIT)

    # THEN the task's output is the function's return value; the body was replayed, never saw the token, and the
    # task was answered once (a second answer would have been refused and logged, and the execution is over)
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"approved": True, "total": 40}
    assert body.runs >= 3
    assert all(p == {"n": 4} for p in body.payloads)


def test_an_exception_in_the_durable_function_fails_the_task_by_name(
    local_sfn: LocalStepFunctions, durable_lambda: Callable[[str, DurableHandler], str]
) -> None:
    # GIVEN a durable function that waits, then refuses with a chosen error name
    @durable_execution
    @ck.durable_task_handler
    def approve(order: dict[str, Any], context: DurableContext) -> None:
        context.wait(Duration.from_hours(1))
        raise ck.TaskFailed(f"order {order['n']} is too large", error="Order.TooLarge")

    function_arn = durable_lambda("refuser", approve)
    payload = {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"}
    arn = local_sfn.create_state_machine("durable-refuse", machine(lambda_task(function_arn, payload)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 99}, timeout=WAIT)

    # THEN it failed with the function's error name and cause
    assert result["status"] == "FAILED"
    assert result["error"] == "Order.TooLarge"
    assert result["cause"] == "order 99 is too large"
