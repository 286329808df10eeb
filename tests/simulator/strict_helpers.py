"""Helpers for the tests of the simulator's AWS strictness: ASL builders and reading tokens off queues."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from callback_kit.simulator import LocalStepFunctions, Queue


def sqs_task(queue: Queue, *, timeout: int = 3, heartbeat: int | None = None, **extra: Any) -> dict[str, Any]:
    """``sqs:sendMessage.waitForTaskToken`` with the token under ``TaskToken``; ends the machine unless told."""
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "TimeoutSeconds": timeout,
        "Parameters": {"QueueUrl": queue.url, "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
        "End": True,
    }
    if heartbeat is not None:
        task["HeartbeatSeconds"] = heartbeat
    if "Next" in extra:
        del task["End"]
    task.update(extra)
    return task


def take_token(sim: LocalStepFunctions, queue: Queue, timeout: float = 5.0) -> str:
    """Receive the next message of ``queue`` (deleting it) and return the task token in its body."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sim.sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=1).get("Messages", [])
        if messages:
            sim.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=messages[0]["ReceiptHandle"])
            return str(json.loads(messages[0]["Body"])["TaskToken"])
        time.sleep(0.02)
    raise TimeoutError(f"no message on {queue.name} after {timeout}s")


def error_code(call: Any, **kwargs: Any) -> str:
    """Make a Step Functions client call that must fail; return its error code."""
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return str(info.value.response["Error"]["Code"])


def wait_for_status(sim: LocalStepFunctions, execution_arn: str, status: str, timeout: float = 5.0) -> None:
    """Wait until the execution reaches ``status`` (raises TimeoutError otherwise)."""
    deadline = time.monotonic() + timeout
    while sim.sfn.describe_execution(executionArn=execution_arn)["status"] != status:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{execution_arn} not {status} after {timeout}s")
        time.sleep(0.02)
