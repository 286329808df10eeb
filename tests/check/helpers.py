"""Small builders for the checker's tests: a well-formed callback task each test breaks one thing of."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callback_kit.check import Finding

SQS_TOKEN = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"


def task(**fields: Any) -> dict[str, Any]:
    """A well-formed SQS callback task (timeout, heartbeat, Catch, token): each rule test breaks one thing."""
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": SQS_TOKEN,
        "Parameters": {"QueueUrl": "https://sqs/q", "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
        "TimeoutSeconds": 3600,
        "HeartbeatSeconds": 90,
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
        "End": True,
    }
    state.update(fields)
    return {k: v for k, v in state.items() if v is not None}


def machine(states: Mapping[str, Any], **top: Any) -> dict[str, Any]:
    """A definition holding ``states`` plus the ``Failed`` state their Catch goes to."""
    return {"StartAt": next(iter(states)), "States": {**states, "Failed": {"Type": "Fail"}}, **top}


def codes(findings: list[Finding]) -> list[str]:
    """The codes of the findings, in order."""
    return [f.code for f in findings]
