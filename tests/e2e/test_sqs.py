"""``sqs:sendMessage.waitForTaskToken`` end to end: state machine -> moto SQS -> Lambda SQS event -> decorated handler.

Each test runs a real state machine on moto's simulator (the ``local_sfn`` fixture of callback-kit's pytest
plugin); the simulator receives the message the task sent, builds the SQS event Lambda's event source mapping
would deliver, and calls a handler made with ``@ck.callback_handler``, which answers with its default client.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.exceptions import ERROR_OUTPUT_TOO_LARGE
from callback_kit.outcome import MAX_OUTPUT_BYTES
from callback_kit.simulator import CallbackCall, Delivery, LocalStepFunctions, Queue
from callback_kit.task.clients import default_client
from callback_kit.task.ledger import ledger_for
from tests.e2e.asl import WAIT, machine, sqs_task

pytestmark = pytest.mark.e2e


class OrderRejected(Exception):
    """A user exception: its class name becomes the task's error."""


# heartbeat_interval=0: these functions are quick. (Heartbeats would be fine too: the simulator, like AWS, accepts
# them on tasks without HeartbeatSeconds, where bare moto answers InvalidToken.)
@ck.callback_handler(heartbeat_interval=0)
def double(payload: dict[str, Any]) -> dict[str, Any]:
    return {"doubled": payload["n"] * 2}


@ck.callback_handler(heartbeat_interval=0)
def reject(payload: dict[str, Any]) -> dict[str, Any]:
    raise OrderRejected(f"order {payload['n']} is not allowed")


@ck.callback_handler(heartbeat_interval=0)
def reject_with_name(payload: dict[str, Any]) -> dict[str, Any]:
    raise ck.TaskFailed("negative total", error="Order.Invalid")


@ck.callback_handler(heartbeat_interval=0)
def huge(payload: dict[str, Any]) -> dict[str, Any]:
    return {"blob": "x" * MAX_OUTPUT_BYTES}  # one JSON envelope over the 262,144-byte limit


def queue_depth(sim: LocalStepFunctions, queue: Queue) -> int:
    """Messages still in the queue, visible or in flight (0 = every message was acknowledged)."""
    attributes = sim.sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_returned_value_is_the_task_output(local_sfn: LocalStepFunctions) -> None:
    """A decorated handler behind SQS answers the task: the execution SUCCEEDS with the returned value."""
    # GIVEN a state machine whose task sends its token through SQS to a decorated handler
    queue = local_sfn.create_queue("double")
    local_sfn.route_sqs(queue, double)
    deliveries: list[Delivery] = []
    local_sfn.on_delivery(deliveries.append)
    arn = local_sfn.create_state_machine("sqs-success", machine(sqs_task(queue)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 21}, timeout=WAIT)

    # THEN it succeeded with the function's return value, the batch reported no failures and the queue is empty
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"doubled": 42}
    assert deliveries[0].event["Records"][0]["eventSource"] == "aws:sqs"
    assert deliveries[0].result == {"batchItemFailures": []}
    assert queue_depth(local_sfn, queue) == 0


def test_raised_exception_fails_the_execution_with_its_class_name(local_sfn: LocalStepFunctions) -> None:
    """An exception in the function is a SendTaskFailure named after its class; the message is still acknowledged."""
    # GIVEN a decorated handler that raises OrderRejected
    queue = local_sfn.create_queue("reject")
    local_sfn.route_sqs(queue, reject)
    deliveries: list[Delivery] = []
    local_sfn.on_delivery(deliveries.append)
    arn = local_sfn.create_state_machine("sqs-failure", machine(sqs_task(queue)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 7}, timeout=WAIT)

    # THEN the execution FAILED with the class name as the error; the failure was a delivered callback, so the
    # record is not a batch item failure and is not redelivered.
    # moto drops SendTaskFailure's cause for SQS tasks (AWS keeps Lambda's error JSON), so only the error is checked.
    assert result["status"] == "FAILED"
    assert result["error"] == "OrderRejected"
    assert deliveries[0].result == {"batchItemFailures": []}
    assert queue_depth(local_sfn, queue) == 0


def test_task_failed_error_name_is_routed_by_catch(local_sfn: LocalStepFunctions) -> None:
    """``ck.TaskFailed(error="Order.Invalid")`` is the name that the state machine's Catch matches."""
    # GIVEN a task with a Catch on Order.Invalid that leads to a Pass state, and a handler raising TaskFailed
    queue = local_sfn.create_queue("validate")
    local_sfn.route_sqs(queue, reject_with_name)
    task = sqs_task(
        queue,
        Catch=[{"ErrorEquals": ["Order.Invalid"], "ResultPath": "$.failure", "Next": "Rejected"}],
    )
    arn = local_sfn.create_state_machine("sqs-catch", machine(task, Rejected={"Type": "Pass", "End": True}))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": -1}, timeout=WAIT)

    # THEN the Catch routed it: the execution SUCCEEDED through "Rejected", carrying the error name
    assert result["status"] == "SUCCEEDED"
    assert result["output"]["n"] == -1
    assert result["output"]["failure"]["Error"] == "Order.Invalid"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in local_sfn.history(result["executionArn"])
        if "stateEnteredEventDetails" in e
    ]
    assert entered == ["Work", "Rejected"]


def test_fifo_queue_records_run_in_their_message_group(local_sfn: LocalStepFunctions) -> None:
    """A FIFO queue works end to end: every execution succeeds, and the task sees its message group."""
    # GIVEN a FIFO queue (the task sends MessageGroupId "orders") and a handler that records its task info
    queue = local_sfn.create_queue("orders", fifo=True)
    groups: list[str | None] = []

    @ck.callback_handler(heartbeat_interval=0)
    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        groups.append(ck.current_task().group_id)
        return {"n": payload["n"]}

    local_sfn.route_sqs(queue, handler)
    arn = local_sfn.create_state_machine("sqs-fifo", machine(sqs_task(queue)))

    # WHEN three executions run at once
    with local_sfn.pump():
        executions = [local_sfn.start_execution(arn, {"n": n}) for n in range(3)]
        results = [local_sfn.wait_for_execution(e, timeout=WAIT) for e in executions]

    # THEN each got its own answer, every record came from the "orders" group, and the queue is empty
    assert [r["status"] for r in results] == ["SUCCEEDED"] * 3
    assert [r["output"] for r in results] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert groups == ["orders"] * 3
    assert queue_depth(local_sfn, queue) == 0


def test_duplicate_delivery_is_answered_closed_and_acknowledged(local_sfn: LocalStepFunctions) -> None:
    """A second delivery of the same message (SQS is at-least-once) is acknowledged, not redelivered nor crashed on."""
    # GIVEN an execution that has already SUCCEEDED through a decorated handler
    queue = local_sfn.create_queue("dup")
    local_sfn.route_sqs(queue, double)
    deliveries: list[Delivery] = []
    callbacks: list[CallbackCall] = []
    delivered = [threading.Event(), threading.Event(), threading.Event()]
    local_sfn.on_callback(callbacks.append)

    def on_delivery(delivery: Delivery) -> None:
        deliveries.append(delivery)
        delivered[len(deliveries) - 1].set()

    local_sfn.on_delivery(on_delivery)
    arn = local_sfn.create_state_machine("sqs-dup", machine(sqs_task(queue)))
    with local_sfn.pump():
        first = local_sfn.wait_for_execution(local_sfn.start_execution(arn, {"n": 5}), timeout=WAIT)
        assert first["status"] == "SUCCEEDED"
        # The execution can end while the handler is still returning: wait for the delivery itself to finish.
        assert delivered[0].wait(timeout=WAIT)

        # WHEN SQS delivers the same message body, token included, a second time, to this (warm) sandbox
        body = deliveries[0].event["Records"][0]["body"]
        local_sfn.sqs.send_message(QueueUrl=queue.url, MessageBody=body)
        assert delivered[1].wait(timeout=WAIT)
        # AND a third time, to a sandbox that never answered the token (its ledger is empty)
        ledger_for(default_client()).clear()
        local_sfn.sqs.send_message(QueueUrl=queue.url, MessageBody=body)
        assert delivered[2].wait(timeout=WAIT)

    # THEN the warm sandbox acknowledged the duplicate without a second call; the other one ran it again, Step
    # Functions answered its SendTaskSuccess "closed" (the simulator answers TaskTimedOut for a closed task's
    # token, as AWS does; moto alone: InvalidToken), and it acknowledged the record (no batch item failure, empty
    # queue) instead of raising. The execution's result did not change.
    successes = [c for c in callbacks if c.kind == "success"]
    assert [c.rejected for c in successes] == [None, "TaskTimedOut"]
    assert successes[0].token == successes[1].token
    for later in deliveries[1:]:
        assert later.error is None
        assert later.result == {"batchItemFailures": []}
    assert queue_depth(local_sfn, queue) == 0
    assert local_sfn.wait_for_execution(first["executionArn"])["output"] == {"doubled": 10}


def test_oversized_output_fails_the_task_with_output_too_large(local_sfn: LocalStepFunctions) -> None:
    """An output over 262,144 bytes becomes a CallbackKit.OutputTooLarge failure, never an unanswered token."""
    # GIVEN a handler that returns more than Step Functions accepts as a task output
    queue = local_sfn.create_queue("huge")
    local_sfn.route_sqs(queue, huge)
    callbacks: list[CallbackCall] = []
    local_sfn.on_callback(callbacks.append)
    arn = local_sfn.create_state_machine("sqs-huge", machine(sqs_task(queue)))

    # WHEN an execution runs
    result = local_sfn.run(arn, {"n": 1}, timeout=WAIT)

    # THEN the framework refused to send it and failed the task with its documented error name.
    # moto enforces no size limit (it would have accepted the output); AWS answers ValidationException. The check
    # is the framework's own, before any call: no SendTaskSuccess was attempted.
    assert result["status"] == "FAILED"
    assert result["error"] == ERROR_OUTPUT_TOO_LARGE
    assert [c.kind for c in callbacks] == ["failure"]
    assert len(json.dumps({"blob": "x" * MAX_OUTPUT_BYTES})) > MAX_OUTPUT_BYTES
