"""Tests for the moto-backed harness: real state machines, callbacks delivered to in-process handlers.

The handlers here complete their tokens with boto3 themselves, so that the harness is tested on its own,
independently of callback_kit's core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from callback_kit.simulator import (
    CallbackCall,
    Delivery,
    LocalStepFunctions,
    Queue,
    format_event,
    substitute,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def sqs_task(queue: Queue, *, heartbeat: int | None = None, timeout: int = 3, **extra: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "TimeoutSeconds": timeout,
        "Parameters": {"QueueUrl": queue.url, "MessageBody": {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"}},
        "End": True,
    }
    if heartbeat:
        task["HeartbeatSeconds"] = heartbeat
    if queue.fifo:
        task["Parameters"]["MessageGroupId"] = "group-1"
    task.update(extra)
    return task


def one_state(task: dict[str, Any], **states: Any) -> dict[str, Any]:
    return {"StartAt": "Work", "States": {"Work": task, **states}}


def sfn_client() -> Any:
    # Built per call, as a real worker would: it must reach the simulator through the environment alone.
    return boto3.client("stepfunctions")


def answering_sqs_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    for record in event["Records"]:
        body = json.loads(record["body"])
        sfn_client().send_task_success(taskToken=body["TaskToken"], output=json.dumps({"doubled": body["n"] * 2}))
    return {"batchItemFailures": []}


# ----------------------------------------------------------------------------------------------------------
# SQS
# ----------------------------------------------------------------------------------------------------------


def test_sqs_success_reaches_the_state_machine_and_empties_the_queue(sim: LocalStepFunctions) -> None:
    # GIVEN a state machine whose task sends its token through SQS to a routed handler
    queue = sim.create_queue("work")
    sim.route_sqs(queue, answering_sqs_handler)
    arn = sim.create_state_machine("sqs-ok", one_state(sqs_task(queue)))
    deliveries: list[Delivery] = []
    sim.on_delivery(deliveries.append)

    # WHEN it runs
    result = sim.run(arn, {"n": 21}, timeout=3)

    # THEN the handler's callback is the task's result, the handler got a Lambda SQS event, the queue is empty
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"doubled": 42}
    record = deliveries[0].event["Records"][0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == "us-east-1"
    assert set(record) >= {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert deliveries[0].tokens[0].startswith("tok-")
    attrs = sim.sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_sqs_failure_callback_is_caught_by_the_state_machine(sim: LocalStepFunctions) -> None:
    # GIVEN a handler that answers with a failure and a Catch on that error name
    def failing(event: dict[str, Any], context: Any) -> dict[str, Any]:
        token = json.loads(event["Records"][0]["body"])["TaskToken"]
        sfn_client().send_task_failure(taskToken=token, error="Order.Invalid", cause="negative total")
        return {"batchItemFailures": []}

    queue = sim.create_queue("fails")
    sim.route_sqs(queue, failing)
    catch = [{"ErrorEquals": ["Order.Invalid"], "ResultPath": "$.error", "Next": "Rejected"}]
    definition = one_state(sqs_task(queue, Catch=catch), Rejected={"Type": "Pass", "End": True})
    arn = sim.create_state_machine("sqs-fail", definition)

    # WHEN it runs
    result = sim.run(arn, {"n": 1}, timeout=3)

    # THEN the Catch routed it, with the error name the handler chose
    assert result["status"] == "SUCCEEDED"
    assert result["output"]["error"]["Error"] == "Order.Invalid"
    assert "TaskFailed" in [e["type"] for e in sim.history(result["executionArn"])]


def test_fifo_records_carry_the_message_group(sim: LocalStepFunctions) -> None:
    # GIVEN a FIFO queue behind the task
    queue = sim.create_queue("ordered", fifo=True)
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.extend(event["Records"])
        return answering_sqs_handler(event, context)

    sim.route_sqs(queue, handler)
    arn = sim.create_state_machine("fifo", one_state(sqs_task(queue)))

    # WHEN it runs
    result = sim.run(arn, {"n": 2}, timeout=3)

    # THEN the record has FIFO attributes, as Lambda delivers them
    assert queue.name == "ordered.fifo"
    assert result["status"] == "SUCCEEDED"
    assert seen[0]["attributes"]["MessageGroupId"] == "group-1"
    assert "MessageDeduplicationId" in seen[0]["attributes"]


def test_batch_item_failure_leaves_the_record_for_redelivery(sim: LocalStepFunctions) -> None:
    # GIVEN a handler that reports its record as failed the first time and answers the second time
    queue = sim.create_queue("retry")
    calls: list[dict[str, Any]] = []

    def flaky(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(event)
        if len(calls) == 1:
            return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        return answering_sqs_handler(event, context)

    sim.route_sqs(queue, flaky, visibility_timeout=1)
    arn = sim.create_state_machine("bif", one_state(sqs_task(queue)))
    execution = sim.start_execution(arn, {"n": 5})

    # WHEN one delivery round runs
    assert sim.deliver_once(wait=2) == 1

    # THEN the failed record was not deleted: it is in flight, then comes back with a higher receive count
    attrs = sim.sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert sim.deliver_once(wait=3) == 1
    assert calls[1]["Records"][0]["messageId"] == calls[0]["Records"][0]["messageId"]
    assert calls[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert sim.wait_for_execution(execution, timeout=2)["output"] == {"doubled": 10}


def test_heartbeats_keep_a_long_task_alive(sim: LocalStepFunctions) -> None:
    # GIVEN a task with HeartbeatSeconds=2 whose handler works 3 s, beating every 0.3 s
    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        token = json.loads(event["Records"][0]["body"])["TaskToken"]
        for _ in range(10):
            time.sleep(0.3)
            sfn_client().send_task_heartbeat(taskToken=token)
        sfn_client().send_task_success(taskToken=token, output='{"done": true}')
        return {"batchItemFailures": []}

    queue = sim.create_queue("slow")
    sim.route_sqs(queue, slow)
    arn = sim.create_state_machine("beats", one_state(sqs_task(queue, heartbeat=2, timeout=8)))
    callbacks: list[CallbackCall] = []
    sim.on_callback(callbacks.append)

    # WHEN it runs
    result = sim.run(arn, {"n": 0}, timeout=8)

    # THEN it succeeded, and the observer saw every heartbeat accepted, then the success
    assert result["status"] == "SUCCEEDED"
    assert [c.kind for c in callbacks] == ["heartbeat"] * 10 + ["success"]
    assert all(c.rejected is None and c.token.startswith("tok-") for c in callbacks)


def test_pump_runs_slow_handlers_of_different_executions_at_once(sim: LocalStepFunctions) -> None:
    # GIVEN a handler that takes 1 s per message, one message per batch
    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(1)
        return answering_sqs_handler(event, context)

    queue = sim.create_queue("parallel")
    sim.route_sqs(queue, slow, batch_size=1)
    arn = sim.create_state_machine("parallel", one_state(sqs_task(queue)))

    # WHEN two executions run under a pump with two threads
    started = time.monotonic()
    with sim.pump(concurrency=2):
        executions = [sim.start_execution(arn, {"n": n}) for n in (1, 2)]
        results = [sim.wait_for_execution(e, timeout=3) for e in executions]

    # THEN both succeeded in about the time of one
    assert [r["output"] for r in results] == [{"doubled": 2}, {"doubled": 4}]
    assert time.monotonic() - started < 1.9


def test_missing_heartbeats_time_the_task_out(sim: LocalStepFunctions) -> None:
    # GIVEN the same task with a handler that never beats and answers too late
    def silent(event: dict[str, Any], context: Any) -> dict[str, Any]:
        time.sleep(1.5)
        return answering_sqs_handler(event, context)

    queue = sim.create_queue("silent")
    sim.route_sqs(queue, silent)
    arn = sim.create_state_machine("no-beats", one_state(sqs_task(queue, heartbeat=1, timeout=6)))
    callbacks: list[CallbackCall] = []
    sim.on_callback(callbacks.append)

    # WHEN it runs
    result = sim.run(arn, {"n": 0}, timeout=4)

    # THEN the simulator enforced HeartbeatSeconds, and the late callback was told TaskTimedOut, as on AWS
    assert result["status"] == "FAILED"
    assert result["error"] == "States.Timeout"
    assert callbacks[-1].kind == "success"
    assert callbacks[-1].rejected == "TaskTimedOut"


# ----------------------------------------------------------------------------------------------------------
# EventBridge and Lambda
# ----------------------------------------------------------------------------------------------------------


def test_eventbridge_envelope_reaches_the_handler(sim: LocalStepFunctions) -> None:
    # GIVEN putEvents.waitForTaskToken -> custom bus -> rule -> queue -> routed handler
    queue = sim.create_queue("bus-target")
    sim.create_event_bus_to_queue("orders", queue, event_pattern={"source": ["shop"]})
    envelopes: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        envelopes.append(event)
        sfn_client().send_task_success(taskToken=event["detail"]["TaskToken"], output='{"via": "events"}')

    sim.route_eventbridge(queue, handler)
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::events:putEvents.waitForTaskToken",
        "TimeoutSeconds": 3,
        "Parameters": {
            "Entries": [
                {
                    "EventBusName": "orders",
                    "Source": "shop",
                    "DetailType": "OrderPlaced",
                    "Detail": {"TaskToken.$": "$$.Task.Token", "n.$": "$.n"},
                }
            ]
        },
        "End": True,
    }
    arn = sim.create_state_machine("events", one_state(task))

    # WHEN it runs
    result = sim.run(arn, {"n": 3}, timeout=3)

    # THEN the handler got the full envelope (account filled in where moto leaves it out)
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"via": "events"}
    envelope = envelopes[0]
    assert envelope["detail-type"] == "OrderPlaced"
    assert envelope["source"] == "shop"
    assert envelope["account"] == "123456789012"
    assert result["executionArn"] in envelope["resources"]
    assert envelope["detail"]["n"] == 3


def test_eventbridge_handler_that_raises_is_retried_then_dead_lettered(sim: LocalStepFunctions) -> None:
    # GIVEN an async target whose handler always raises
    queue = sim.create_queue("bus-target-2")
    sim.create_event_bus_to_queue("default", queue)
    attempts: list[int] = []

    def broken(event: dict[str, Any], context: Any) -> None:
        attempts.append(1)
        raise RuntimeError("down")

    sim.route_eventbridge(queue, broken, retries=2)
    sim.events.put_events(Entries=[{"Source": "x", "DetailType": "y", "Detail": "{}"}])

    # WHEN deliveries run until nothing is left
    while sim.deliver_once(wait=0.3):
        pass

    # THEN it was tried three times, as Lambda's async invoke does, then kept as a dead letter
    assert len(attempts) == 3
    assert len(sim.dead_letters) == 1
    assert isinstance(sim.dead_letters[0].error, RuntimeError)


def lambda_task(function_arn: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "TimeoutSeconds": 3,
        "Parameters": {"FunctionName": function_arn, "Payload": {"token.$": "$$.Task.Token", "n.$": "$.n"}},
        "End": True,
    }


def test_lambda_invoke_is_routed_to_the_handler(sim: LocalStepFunctions) -> None:
    # GIVEN lambda:invoke.waitForTaskToken on a function routed to an in-process handler
    payloads: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        payloads.append(event)
        assert context.function_name == "notify"
        assert context.get_remaining_time_in_millis() > 0
        sfn_client().send_task_success(taskToken=event["token"], output=json.dumps({"n": event["n"] + 1}))

    function_arn = sim.route_lambda("notify", handler)
    arn = sim.create_state_machine("invoke", one_state(lambda_task(function_arn)))

    # WHEN it runs
    result = sim.run(arn, {"n": 1}, timeout=3)

    # THEN the handler got the Payload itself and its callback is the result
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"n": 2}
    assert payloads[0]["n"] == 1


def test_lambda_handler_that_raises_fails_the_task_like_a_sync_invoke(sim: LocalStepFunctions) -> None:
    # GIVEN a routed function whose handler raises
    def handler(event: dict[str, Any], context: Any) -> None:
        raise ValueError("bad order")

    function_arn = sim.route_lambda("broken", handler)
    arn = sim.create_state_machine("invoke-fail", one_state(lambda_task(function_arn)))

    # WHEN it runs
    result = sim.run(arn, {"n": 1}, timeout=3)

    # THEN the task failed with the exception's type name, as Lambda's errorType would
    assert result["status"] == "FAILED"
    assert result["error"] == "ValueError"


# ----------------------------------------------------------------------------------------------------------
# Observation, definitions, environment
# ----------------------------------------------------------------------------------------------------------


def test_follow_shows_progress_without_raw_tokens(sim: LocalStepFunctions) -> None:
    # GIVEN a running execution
    queue = sim.create_queue("watched")
    sim.route_sqs(queue, answering_sqs_handler)
    arn = sim.create_state_machine("watched", one_state(sqs_task(queue)))

    # WHEN it is followed while the pump delivers
    with sim.pump():
        execution = sim.start_execution(arn, {"n": 4})
        lines = [format_event(e) for e in sim.follow(execution, timeout=3)]

    # THEN every step shows, and the token only as a fingerprint
    text = "\n".join(lines)
    assert "TaskStateEntered Work" in text
    assert "TaskScheduled Work sqs:sendMessage.waitForTaskToken" in text
    assert "TaskSucceeded" in text
    assert lines[-1].startswith(f"[{len(lines)}] ExecutionSucceeded")
    scheduled = next(e for e in sim.history(execution) if e["type"] == "TaskScheduled")
    token = json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["MessageBody"]["TaskToken"]
    assert token not in text
    assert "tok-" in text


def test_asl_file_with_definition_substitutions(sim: LocalStepFunctions, tmp_path: Path) -> None:
    # GIVEN an ASL file written for SAM, with a ${QueueUrl} placeholder
    queue = sim.create_queue("from-file")
    sim.route_sqs(queue, answering_sqs_handler)
    task = sqs_task(queue)
    task["Parameters"]["QueueUrl"] = "${QueueUrl}"
    asl = tmp_path / "flow.asl.json"
    asl.write_text(json.dumps(one_state(task)), encoding="utf-8")

    # WHEN it is created with the substitution and run
    arn = sim.create_state_machine("from-file", asl, substitutions={"QueueUrl": queue.url})

    # THEN it runs; a missing substitution is an error
    assert sim.run(arn, {"n": 1}, timeout=3)["output"] == {"doubled": 2}
    with pytest.raises(KeyError, match="QueueUrl"):
        substitute(asl.read_text(encoding="utf-8"), {})


def test_environment_is_restored_after_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a user environment with a profile and a different region
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)

    # WHEN the simulator runs and exits
    with LocalStepFunctions(region="us-west-2") as sim:
        assert os.environ["AWS_DEFAULT_REGION"] == "us-west-2"
        assert "AWS_PROFILE" not in os.environ
        assert sim.sfn.list_state_machines()["stateMachines"] == []

    # THEN nothing leaked
    assert os.environ["AWS_PROFILE"] == "prod"
    assert os.environ["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "AWS_ACCESS_KEY_ID" not in os.environ


def test_module_imports_without_moto_and_says_how_to_get_it() -> None:
    # GIVEN a Python where importing moto fails
    code = (
        "import sys; sys.modules['moto'] = None\n"
        "import callback_kit.simulator as s\n"
        "try:\n    s.LocalStepFunctions().__enter__()\n"
        "except ImportError as e:\n    print(e)\n"
    )
    # WHEN the module is imported and the simulator entered
    out = subprocess.run(  # noqa: S603 - our own interpreter running a fixed snippet
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    # THEN the import worked and the error names the extra to install
    assert "pip install 'callback-kit[test]'" in out.stdout
