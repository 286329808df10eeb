"""Every place a token travels, end to end on moto's simulator: SNS, envelopes in SQS bodies, hand-off, containers.

The simulator routes SQS, EventBridge, SNS and direct invokes to handlers in the shape Lambda delivers them; the
envelope cases also read what moto's own SNS/SQS/EventBridge delivered to a queue and hand it to the handler
themselves, to check the exact records.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.cli import main as cli_main
from callback_kit.simulator import LocalStepFunctions, Queue
from callback_kit.testing import FakeLambdaContext
from tests.apphandlers import load_handler
from tests.e2e.asl import events_task, machine, sqs_task

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: Long enough for moto under CPU load; only reached when something is broken.
WAIT = 15.0


def receive(sim: LocalStepFunctions, queue: Queue) -> list[dict[str, Any]]:
    """Wait for the queue's messages, as ReceiveMessage returns them."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = sim.sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if found.get("Messages"):
            return [dict(m) for m in found["Messages"]]
    raise AssertionError(f"nothing arrived on {queue.name} within {WAIT}s")


def topic_to_queue(sim: LocalStepFunctions, name: str, *, raw: bool = False) -> tuple[str, Queue]:
    """An SNS topic with a queue subscribed to it (``RawMessageDelivery`` off unless ``raw``)."""
    topic = sim.create_topic(name)
    queue = sim.create_queue(f"{name}-inbox")
    sim.subscribe_queue(topic, queue, raw=raw)
    return topic, queue


def sns_publish_task(topic: str, *, timeout: int = 10) -> dict[str, Any]:
    """``sns:publish.waitForTaskToken`` with the token under ``TaskToken`` in the message."""
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::sns:publish.waitForTaskToken",
        "TimeoutSeconds": timeout,
        "Parameters": {"TopicArn": topic, "Message": {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"}},
        "End": True,
    }


def seen_handler(seen: list[tuple[Any, ck.TaskInfo]]) -> ck.CallbackHandler[Any, Any]:
    @ck.callback_handler(heartbeat_interval=0)
    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append((payload, ck.current_task()))
        return {"doubled": payload["n"] * 2}

    return handler


# --- SNS and envelopes --------------------------------------------------------------------------------------------


def test_sns_publish_to_a_subscribed_lambda(local_sfn: LocalStepFunctions) -> None:
    # GIVEN sns:publish.waitForTaskToken on a topic that a decorated handler is subscribed to
    topic = local_sfn.create_topic("orders")
    seen: list[tuple[Any, ck.TaskInfo]] = []
    local_sfn.route_sns(topic, seen_handler(seen))
    arn = local_sfn.create_state_machine("sns-lambda", machine(sns_publish_task(topic)))

    # WHEN an execution runs (SNS invokes the function with Records[].Sns, the message a JSON string)
    result = local_sfn.run(arn, {"n": 4}, timeout=WAIT)

    # THEN the handler found the token in Records[].Sns.Message, and its answer ended the execution
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"doubled": 8}
    assert [(p, i.source, i.envelope) for p, i in seen] == [({"n": 4}, "sns", None)]


def test_sns_to_sqs_without_raw_delivery_is_unwrapped(local_sfn: LocalStepFunctions) -> None:
    # GIVEN the topic delivering to the worker's queue without RawMessageDelivery: the body is the SNS envelope
    topic, inbox = topic_to_queue(local_sfn, "orders-env")
    arn = local_sfn.create_state_machine("sns-sqs", machine(sns_publish_task(topic)))
    execution = local_sfn.start_execution(arn, {"n": 5})
    messages = receive(local_sfn, inbox)
    assert json.loads(messages[0]["Body"])["Type"] == "Notification"
    seen: list[tuple[Any, ck.TaskInfo]] = []

    # WHEN the SQS worker gets the batch
    event = {"Records": [local_sfn.sqs_record(inbox, m) for m in messages]}
    response = seen_handler(seen)(event, FakeLambdaContext())

    # THEN the notification was unwrapped, current_task() says so, and the answer ended the execution
    assert response == {"batchItemFailures": []}
    assert local_sfn.wait_for_execution(execution, timeout=WAIT)["status"] == "SUCCEEDED"
    assert [(p, i.source, i.envelope, i.record_id) for p, i in seen] == [
        ({"n": 5}, "sqs", "sns", messages[0]["MessageId"])
    ]


def test_eventbridge_rule_to_sqs_is_unwrapped(local_sfn: LocalStepFunctions) -> None:
    # GIVEN events:putEvents.waitForTaskToken and a rule whose target is the worker's queue
    inbox = local_sfn.create_queue("eb-inbox")
    local_sfn.create_event_bus_to_queue("shop-bus", inbox, event_pattern={"source": ["shop"]})
    arn = local_sfn.create_state_machine("eb-sqs", machine(events_task("shop-bus", timeout=10)))
    execution = local_sfn.start_execution(arn, {"n": 6})
    messages = receive(local_sfn, inbox)
    seen: list[tuple[Any, ck.TaskInfo]] = []

    # WHEN the SQS worker gets the batch (each body is the whole EventBridge event)
    event = {"Records": [local_sfn.sqs_record(inbox, m) for m in messages]}
    response = seen_handler(seen)(event, FakeLambdaContext())

    # THEN the message was the event's detail, and the answer ended the execution
    assert response == {"batchItemFailures": []}
    assert local_sfn.wait_for_execution(execution, timeout=WAIT)["status"] == "SUCCEEDED"
    assert [(p, i.envelope) for p, i in seen] == [({"n": 6}, "eventbridge")]


# --- hand-off: the SAM app's approval step --------------------------------------------------------------------------


@pytest.fixture
def approval(local_sfn: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Queue]]:
    """The app's RequestApproval step: its notifier routed, its topic read by a queue; yields (state machine, inbox)."""
    topic, inbox = topic_to_queue(local_sfn, "approvals")
    monkeypatch.setenv("APPROVAL_TOPIC_ARN", topic)
    monkeypatch.setenv("APPROVAL_API_URL", "https://abc123.execute-api.us-east-1.amazonaws.com/Prod")
    definition = json.loads((ROOT / "statemachine" / "callbacks.asl.json").read_text())["States"]["RequestApproval"]
    function_arn = local_sfn.route_lambda("request-approval", load_handler("approval_request", "e2e").handler)
    task = {**definition, "TimeoutSeconds": 10, "End": True}
    del task["Next"], task["Catch"]
    task["Parameters"]["FunctionName"] = function_arn
    arn = local_sfn.create_state_machine("approval", machine(task))
    with local_sfn.pump():
        yield arn, inbox


def decide(link: str) -> dict[str, Any]:
    """Open an approve/reject link of the e-mail: the API Gateway event the approval API receives."""
    url = urllib.parse.urlsplit(link)
    event = json.loads((ROOT / "events" / "apigateway_approve.json").read_text())
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = url.path.removeprefix("/Prod")
    event["queryStringParameters"] = dict(urllib.parse.parse_qsl(url.query))
    event["multiValueQueryStringParameters"] = {k: [v] for k, v in event["queryStringParameters"].items()}
    response: dict[str, Any] = load_handler("approval_decision", "e2e").handler(event, FakeLambdaContext())
    return response


def approval_links(local_sfn: LocalStepFunctions, inbox: Queue) -> dict[str, str]:
    [message] = receive(local_sfn, inbox)
    text = json.loads(message["Body"])["Message"]
    return dict(re.findall(r"^(Approve|Reject):\s+(\S+)$", text, flags=re.MULTILINE))


STATE_INPUT = {
    "order": {"orderId": "ord-7", "customerId": "c-1"},
    "orderCheck": {"total": "1500.00", "currency": "EUR"},
}


def test_hand_off_waits_for_the_approver_then_send_success_completes_it(
    local_sfn: LocalStepFunctions, approval: tuple[str, Queue]
) -> None:
    # GIVEN an order waiting for approval: the notifier handed the token off and e-mailed the links
    arn, inbox = approval
    execution = local_sfn.start_execution(arn, STATE_INPUT)
    links = approval_links(local_sfn, inbox)
    time.sleep(0.5)  # room for a (wrong) callback to land before the check below
    assert local_sfn.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"

    # WHEN the approver opens the approve link (the API completes the token with ck.send_success), then again
    first = decide(links["Approve"])
    result = local_sfn.wait_for_execution(execution, timeout=WAIT)
    again = decide(links["Approve"])

    # THEN the task succeeded with the decision, and the second click was told it was already decided
    assert first["statusCode"] == 200
    assert json.loads(first["body"]) == {"decision": "approved"}
    assert result["status"] == "SUCCEEDED"
    output = json.loads(local_sfn.sfn.describe_execution(executionArn=execution)["output"])
    assert output["approval"]["approved"] is True
    # (AWS answers TaskTimedOut for a closed task; the simulator does too, where bare moto says InvalidToken)
    assert again["statusCode"] == 409


def test_hand_off_rejected_by_send_failure(local_sfn: LocalStepFunctions, approval: tuple[str, Queue]) -> None:
    # GIVEN an order waiting for approval
    arn, inbox = approval
    execution = local_sfn.start_execution(arn, STATE_INPUT)
    links = approval_links(local_sfn, inbox)

    # WHEN the approver opens the reject link, with a reason
    response = decide(links["Reject"] + "&reason=over+budget")

    # THEN the task failed with the error the state machine's Catch sees
    assert response["statusCode"] == 200
    result = local_sfn.wait_for_execution(execution, timeout=WAIT)
    assert (result["status"], result.get("error")) == ("FAILED", "Order.NotApproved")


def test_a_link_that_is_not_a_token_is_refused(local_sfn: LocalStepFunctions, approval: tuple[str, Queue]) -> None:
    # GIVEN a link whose token was cut short, and one with none
    # WHEN they are opened / THEN 400: no task was touched
    cut = decide("https://h/Prod/approval/approve?token=abc")
    none = decide("https://h/Prod/approval/approve")
    assert (cut["statusCode"], none["statusCode"]) == (400, 400)


# --- containers: callback-kit run ------------------------------------------------------------------------------------


def test_callback_kit_run_beats_and_answers_with_a_real_child(
    local_sfn: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a task with HeartbeatSeconds 2 whose token reaches the container's environment (here through a queue:
    # the simulator cannot run ecs:runTask), and a job that takes longer than that
    queue = local_sfn.create_queue("container-jobs")
    task = sqs_task(queue, timeout=20, heartbeat=2)
    arn = local_sfn.create_state_machine("container", machine(task))
    execution = local_sfn.start_execution(arn, {"n": 3})
    [message] = receive(local_sfn, queue)
    monkeypatch.setenv("TASK_TOKEN", json.loads(message["Body"])["TaskToken"])
    job = "import json, time; time.sleep(3); print(json.dumps({'rows': 3}))"

    # WHEN callback-kit run runs it, beating every 0.5 s
    code = cli_main(["run", "--heartbeat-interval", "0.5", "--", sys.executable, "-c", job])

    # THEN the heartbeats kept the task alive past HeartbeatSeconds, and the job's stdout is the output
    assert code == 0
    result = local_sfn.wait_for_execution(execution, timeout=WAIT)
    assert result["status"] == "SUCCEEDED"
    assert json.loads(local_sfn.sfn.describe_execution(executionArn=execution)["output"]) == {"rows": 3}


def test_callback_kit_run_fails_the_task_when_the_child_fails(
    local_sfn: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a task whose job exits 3
    queue = local_sfn.create_queue("container-failing")
    arn = local_sfn.create_state_machine("container-fail", machine(sqs_task(queue, timeout=20)))
    execution = local_sfn.start_execution(arn, {"n": 3})
    [message] = receive(local_sfn, queue)
    monkeypatch.setenv("TASK_TOKEN", json.loads(message["Body"])["TaskToken"])

    # WHEN callback-kit run runs it
    code = cli_main(["run", "--heartbeat-interval", "0", "--", sys.executable, "-c", "raise SystemExit(3)"])

    # THEN the task failed with the documented error, and the run says so in its exit code
    assert code == 4
    result = local_sfn.wait_for_execution(execution, timeout=WAIT)
    assert (result["status"], result.get("error")) == ("FAILED", "CallbackKit.CommandFailed")
