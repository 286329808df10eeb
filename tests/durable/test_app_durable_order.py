"""The SAM app's durable function (handlers/durable_order.py) and the app's order-check worker, on AWS's local
durable runner: an order approved, an order rejected, and a callback nobody answers.

The demo runs the approved path through moto's SQS. Here OrderQueue is the simulator's :class:`CallbackQueue`
(what the function's SQS client sends lands on it), so that each outcome of the function is checked in seconds.
"""

from __future__ import annotations

import copy
import json
import pathlib
import time
from typing import Any

import pytest

from tests.durable.runner import CallbackQueue, RunnerLambdaClient, callback_failure, running

from aws_durable_execution_sdk_python.config import Duration  # isort: skip (the runner import skips on 3.10)

pytestmark = pytest.mark.slow

EVENT = json.loads((pathlib.Path(__file__).parents[2] / "events" / "durable_order.json").read_text())
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/OrderQueue"


class _OrderQueueClient:
    """The function's boto3 SQS client, sending to OrderQueue: the body goes on ``queue`` as SQS would carry it."""

    def __init__(self, queue: CallbackQueue) -> None:
        self.queue = queue
        self.sent: list[dict[str, Any]] = []

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        assert QueueUrl == QUEUE_URL
        self.sent.append(json.loads(MessageBody))
        return {"MessageId": self.queue.send(MessageBody)}


def _run(monkeypatch: pytest.MonkeyPatch, order: dict[str, Any], *, worker: bool = True) -> tuple[Any, ...]:
    """Run the app's durable function on ``order``, answered by the app's worker unless ``worker`` is False: the
    execution's result, what it sent, the callback calls made and the callback's failure, if any."""
    from handlers import durable_order, order_check

    queue = CallbackQueue()
    sqs = _OrderQueueClient(queue)
    monkeypatch.setenv(durable_order.QUEUE_URL_ENV, QUEUE_URL)
    monkeypatch.setattr(durable_order, "_sqs", lambda: sqs)
    with running(durable_order.handler) as runner:
        client = RunnerLambdaClient(runner)
        if worker:
            queue.route(order_check.handler.with_options(lambda_client=client, heartbeat_interval=0))
        with queue.pumping():
            arn = runner.run_async(input=json.dumps({"order": order}), execution_timeout=60)
            result = runner.wait_for_result(arn, timeout=60)
            deadline = time.monotonic() + 10  # the pump may still hold the batch whose answer ended the wait
            while worker and queue.depth() and time.monotonic() < deadline:
                time.sleep(0.05)
        failure = callback_failure(runner, arn)
    return result, sqs.sent, client.calls, failure, queue


def test_an_order_the_worker_approves_returns_its_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the app's sample order WHEN the durable function runs and the worker answers
    result, sent, calls, failure, queue = _run(monkeypatch, EVENT["order"])
    # THEN it sent the callback id with the order, and returned the worker's approval
    assert result.status.name == "SUCCEEDED"
    output = json.loads(result.result)
    assert output["status"] == "approved"
    assert output["orderCheck"]["orderId"] == "ord-2001"
    assert [sorted(m) for m in sent] == [["callbackId", "order"]]
    assert calls == [("SendDurableExecutionCallbackSuccess", "ok")]
    assert failure is None
    assert queue.dead_letters == []


def test_an_order_the_worker_rejects_returns_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an order above the worker's limit
    order = copy.deepcopy(EVENT["order"])
    order["items"] = [{"sku": "PIANO", "quantity": 1, "unitPrice": "9000.00"}]
    # WHEN the durable function runs and the worker answers
    result, _, calls, failure, queue = _run(monkeypatch, order)
    # THEN the worker's failure is the function's "rejected" result, with its message as the reason, and the
    # history holds the error name the worker sent
    assert result.status.name == "SUCCEEDED"
    output = json.loads(result.result)
    assert output == {"status": "rejected", "reason": "order ord-2001 totals 9000.00 EUR, above the 5000.00 limit"}
    assert calls == [("SendDurableExecutionCallbackFailure", "ok")]
    assert failure is not None
    assert failure[0] == "Order.Rejected"
    assert queue.dead_letters == []


def test_a_callback_nobody_answers_fails_the_execution_at_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no worker on the queue, and the function's callback timeout cut from 35 minutes to 2 s
    from handlers import durable_order

    monkeypatch.setattr(durable_order, "CALLBACK_TIMEOUT", Duration.from_seconds(2))
    # WHEN the durable function runs
    result, sent, calls, _, _ = _run(monkeypatch, EVENT["order"], worker=False)
    # THEN the execution fails with the SDK's callback timeout, as the module docstring says, after sending once
    assert result.status.name == "FAILED"
    assert "CallbackTimeout" in json.dumps(result.error.to_dict() if result.error else None)
    assert len(sent) == 1
    assert calls == []
