"""Small Amazon States Language builders for the end-to-end tests (JSONPath: moto does not run JSONata)."""

from __future__ import annotations

from typing import Any

from callback_kit.simulator import Queue

# Bounds for tests that do not measure time: a passing execution ends well within a second, so these only matter
# on a loaded machine, where a tight bound turns slowness into a failure that looks like a hang. An execution
# that really hangs (an answer lost) still fails: its task ends States.Timeout after TASK_TIMEOUT.
TASK_TIMEOUT = 20
"""TimeoutSeconds of the tasks built here unless a test sets its own."""
WAIT = 30.0
"""Seconds a test waits for an execution (or a delivery) whose timing it does not test."""


def machine(task: dict[str, Any], **states: Any) -> dict[str, Any]:
    """A state machine that starts at ``task`` (named ``Work``), plus any other states given."""
    return {"StartAt": "Work", "States": {"Work": task, **states}}


def sqs_task(
    queue: Queue,
    *,
    timeout: int = TASK_TIMEOUT,
    heartbeat: int | None = None,
    body: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``sqs:sendMessage.waitForTaskToken`` with the token under ``TaskToken`` and the input's ``n``."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        # Always set: moto's default is 60 s and AWS's about a year; a test must never wait for either.
        "TimeoutSeconds": timeout,
        "Parameters": {
            "QueueUrl": queue.url,
            "MessageBody": body or {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"},
        },
        "End": True,
    }
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    if queue.fifo:
        task["Parameters"]["MessageGroupId"] = "orders"
    task.update(extra)
    return task


def events_task(bus: str, *, timeout: int = TASK_TIMEOUT) -> dict[str, Any]:
    """``events:putEvents.waitForTaskToken`` on ``bus``, source ``shop``, the token in ``Detail.TaskToken``."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
        "TimeoutSeconds": timeout,
        "Parameters": {
            "Entries": [
                {
                    "EventBusName": bus,
                    "Source": "shop",
                    "DetailType": "OrderPlaced",
                    "Detail": {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"},
                }
            ]
        },
        "End": True,
    }


def lambda_task(function_arn: str, payload: dict[str, Any], *, timeout: int = TASK_TIMEOUT) -> dict[str, Any]:
    """``lambda:invoke.waitForTaskToken`` of ``function_arn`` with ``payload``."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "TimeoutSeconds": timeout,
        "Parameters": {"FunctionName": function_arn, "Payload": payload},
        "End": True,
    }
