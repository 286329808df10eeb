"""SNS: ``sns:publish.waitForTaskToken`` end to end, to a routed function or to a subscribed queue.

The handlers here complete their tokens with boto3 themselves, so that the simulator is tested on its own.
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


def publish_task(topic_arn: str) -> dict[str, Any]:
    return {
        "StartAt": "Notify",
        "States": {
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
                "TimeoutSeconds": 20,
                "Parameters": {
                    "TopicArn": topic_arn,
                    "Subject": "Approval needed",
                    "Message": {"TaskToken.$": "$$.Task.Token", "order.$": "$.order"},
                    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "approval"}},
                },
                "End": True,
            }
        },
    }


def approve(message: dict[str, Any]) -> None:
    output = json.dumps({"approved": message["order"]})
    boto3.client("stepfunctions").send_task_success(taskToken=message["TaskToken"], output=output)


def test_publish_reaches_a_routed_function_as_snss_lambda_event(sim: LocalStepFunctions) -> None:
    # GIVEN a topic routed to a function that answers the token it finds in Records[].Sns.Message
    topic = sim.create_topic("approvals")
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        events.append(event)
        approve(json.loads(event["Records"][0]["Sns"]["Message"]))

    subscription = sim.route_sns(topic, handler)
    deliveries: list[Delivery] = []
    sim.on_delivery(deliveries.append)

    # WHEN an execution publishes its token to the topic
    result = sim.run(sim.create_state_machine("sns-lambda", publish_task(topic)), {"order": "o-1"}, timeout=30)

    # THEN the function got SNS's Lambda event (the message a JSON string) and its answer is the result
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"approved": "o-1"}
    record = events[0]["Records"][0]
    assert (record["EventSource"], record["EventVersion"], record["EventSubscriptionArn"]) == (
        "aws:sns",
        "1.0",
        subscription,
    )
    sns = record["Sns"]
    assert (sns["Type"], sns["TopicArn"], sns["Subject"]) == ("Notification", topic, "Approval needed")
    assert isinstance(sns["Message"], str)
    assert sns["MessageAttributes"] == {"kind": {"Type": "String", "Value": "approval"}}
    assert {"MessageId", "Timestamp", "Signature", "SigningCertUrl", "UnsubscribeUrl"} <= set(sns)
    assert (deliveries[0].source, deliveries[0].target) == ("sns", "approvals")
    assert deliveries[0].tokens[0].startswith("tok-")


@pytest.mark.parametrize("raw", [False, True])
def test_publish_reaches_a_subscribed_queue_as_envelope_or_raw_message(sim: LocalStepFunctions, raw: bool) -> None:
    # GIVEN a queue subscribed to the topic, read by a function as Lambda's SQS event source mapping does
    topic = sim.create_topic("orders")
    queue = sim.create_queue("approvals")
    sim.subscribe_queue(topic, queue, raw=raw)
    bodies: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = json.loads(event["Records"][0]["body"])
        bodies.append(body)
        approve(body if raw else json.loads(body["Message"]))
        return {"batchItemFailures": []}

    sim.route_sqs(queue, handler)

    # WHEN an execution publishes its token
    result = sim.run(sim.create_state_machine("sns-sqs", publish_task(topic)), {"order": "o-2"}, timeout=30)

    # THEN the body was the SNS envelope (the message a JSON string under Message), or the message itself when raw
    assert result["output"] == {"approved": "o-2"}
    if raw:
        assert set(bodies[0]) == {"TaskToken", "order"}
    else:
        assert (bodies[0]["Type"], bodies[0]["TopicArn"]) == ("Notification", topic)
        assert json.loads(bodies[0]["Message"])["order"] == "o-2"


def test_a_routed_function_that_raises_is_retried_then_dead_lettered(sim: LocalStepFunctions) -> None:
    # GIVEN a topic routed to a function that always raises
    topic = sim.create_topic("broken")
    attempts: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        attempts.append(1)
        raise RuntimeError("mail server down")

    sim.route_sns(topic, handler, retries=2)

    # WHEN a message is published and deliveries run until nothing is left
    sim.sns.publish(TopicArn=topic, Message=json.dumps({"hello": "world"}))
    while sim.deliver_once(wait=0.5):
        pass

    # THEN it was tried three times, as SNS's async invoke of Lambda is, then kept as a dead letter
    assert len(attempts) == 3
    assert [d.source for d in sim.dead_letters] == ["sns"]
