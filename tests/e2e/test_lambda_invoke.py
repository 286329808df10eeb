"""``lambda:invoke.waitForTaskToken`` end to end: the invocation is routed to the decorated handler in-process.

moto's docker-less Lambda backend does not run code; the simulator takes the invocation and calls the handler with
the task's ``Payload`` within the invoke, as Lambda's synchronous invoke does (see :mod:`callback_kit.simulator`).
"""

from __future__ import annotations

from typing import Any

import pytest

import callback_kit as ck
from callback_kit.simulator import LocalStepFunctions
from tests.e2e.asl import WAIT, lambda_task, machine

pytestmark = pytest.mark.e2e


@ck.callback_handler(heartbeat_interval=0)
def approve(payload: dict[str, Any]) -> dict[str, Any]:
    return {"approved": payload["n"] < 10}


def test_direct_payload_is_answered_with_the_return_value(local_sfn: LocalStepFunctions) -> None:
    """A payload with the token under ``token``: the execution SUCCEEDS with the returned value."""
    # GIVEN lambda:invoke.waitForTaskToken on a function routed to a decorated handler
    function_arn = local_sfn.route_lambda("approve", approve)
    payload = {"token.$": "$$.Task.Token", "n.$": "$.n"}
    arn = local_sfn.create_state_machine("invoke-success", machine(lambda_task(function_arn, payload)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 4}, timeout=WAIT)

    # THEN the callback's output is the task's result (lambda:invoke.waitForTaskToken does not wrap it in Payload)
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"approved": True}


def test_whole_context_object_payload_finds_the_token_at_context_task_token(local_sfn: LocalStepFunctions) -> None:
    """With ``"context.$": "$$"`` the token is found at context.Task.Token and removed from the user's payload."""
    # GIVEN a task that passes the whole context object, and a handler that records what it is given
    seen: list[tuple[dict[str, Any], str | None]] = []

    @ck.callback_handler(heartbeat_interval=0)
    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append((payload, ck.current_task().execution_arn))
        return {"state": payload["context"]["State"]["Name"], "n": payload["n"]}

    function_arn = local_sfn.route_lambda("with-context", handler)
    payload = {"context.$": "$$", "n.$": "$.n"}
    arn = local_sfn.create_state_machine("invoke-context", machine(lambda_task(function_arn, payload)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 2}, timeout=WAIT)

    # THEN it succeeded; the function saw the context without the token, and the task info the execution ARN
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"state": "Work", "n": 2}
    given, execution_arn = seen[0]
    assert "Token" not in given["context"]["Task"]
    assert given["context"]["Execution"]["Id"] == result["executionArn"]
    assert execution_arn == result["executionArn"]


def test_handler_exception_is_sent_by_the_framework_not_the_invoke(local_sfn: LocalStepFunctions) -> None:
    """A raised TaskFailed reaches the execution through callback-kit's own SendTaskFailure."""

    # GIVEN a routed handler that raises, with the simulator's "fail the task like a sync invoke" emulation off,
    # so that only the framework can fail the task
    @ck.callback_handler(heartbeat_interval=0)
    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        raise ck.TaskFailed("too old", error="Age.Rejected")

    function_arn = local_sfn.route_lambda("reject", handler, fail_task_on_error=False)
    payload = {"token.$": "$$.Task.Token", "n.$": "$.n"}
    arn = local_sfn.create_state_machine("invoke-failure", machine(lambda_task(function_arn, payload)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 99}, timeout=WAIT)

    # THEN the execution FAILED with the TaskFailed error name, and the invocation itself did not fail
    assert result["status"] == "FAILED"
    assert result["error"] == "Age.Rejected"
    assert local_sfn.dead_letters == []
