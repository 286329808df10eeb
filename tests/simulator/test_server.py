"""moto_server(), the endpoint for code in other processes, answers callbacks as the in-process simulator does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from callback_kit.simulator import moto_server

pytestmark = pytest.mark.e2e


@pytest.fixture
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


def client(endpoint: str, service: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service, endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def test_the_server_answers_task_timed_out_and_accepts_heartbeats_without_heartbeat_seconds(endpoint: str) -> None:
    # GIVEN a state machine on the server whose task (no HeartbeatSeconds) sends its token through SQS
    sfn, sqs, iam = client(endpoint, "stepfunctions"), client(endpoint, "sqs"), client(endpoint, "iam")
    queue_url = sqs.create_queue(QueueName="work")["QueueUrl"]
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "TimeoutSeconds": 20,
        "Parameters": {"QueueUrl": queue_url, "MessageBody": {"TaskToken.$": "$$.Task.Token"}},
        "End": True,
    }
    definition = json.dumps({"StartAt": "W", "States": {"W": task}})
    arn = sfn.create_state_machine(name="m", definition=definition, roleArn=role)["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="e-1", input="{}")["executionArn"]
    deadline = time.monotonic() + 10
    messages: list[Any] = []
    while not messages and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url).get("Messages", [])
    token = json.loads(messages[0]["Body"])["TaskToken"]

    # WHEN a worker in another process beats, answers, and answers again
    sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output='{"ok": true}')
    with pytest.raises(ClientError) as again:
        sfn.send_task_success(taskToken=token, output='{"ok": true}')

    # THEN as on AWS: the beat accepted, the second answer TaskTimedOut (moto alone: InvalidToken for both)
    assert again.value.response["Error"]["Code"] == "TaskTimedOut"
    while sfn.describe_execution(executionArn=execution)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sfn.describe_execution(executionArn=execution)["status"] == "SUCCEEDED"
