"""Lambda durable function: an order that waits for the order-check worker, through the same ``OrderQueue``.

Where the state machine's ``CheckOrder`` task puts ``{"TaskToken": ..., "order": {...}}`` on OrderQueue, this
function (template.yaml's ``DurableOrderFunction``, with a ``DurableConfig``) puts ``{"callbackId": ...,
"order": {...}}`` there and suspends. The one order-check worker (``order_check.handler``) reads both: it checks
the order and answers a callback id with ``SendDurableExecutionCallbackSuccess`` (the approval) or
``...Failure`` (``Order.Rejected``), beating ``SendDurableExecutionCallbackHeartbeat`` meanwhile, as it answers a
task token with ``SendTask*``. Nothing in the worker says which kind it got.

Input: ``{"order": {...}}`` (events/durable_order.json). Result: ``{"status": "approved", "orderCheck": <what the
worker returned>}``, or ``{"status": "rejected", "reason": <the worker's message>}``. A callback nobody answers
in time fails the execution with the SDK's ``CallbackTimeoutError``: the message is in the queue's DLQ by then.

The body is replayed from the top on every resume: the message is sent from the SDK's submitter step, which is
checkpointed, so a replay sends nothing again.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import boto3
from aws_durable_execution_sdk_python import DurableContext, durable_execution
from aws_durable_execution_sdk_python.config import Duration, WaitForCallbackConfig
from aws_durable_execution_sdk_python.exceptions import CallbackExternalError

#: The queue the order-check worker reads (template.yaml sets it to OrderQueue's URL).
QUEUE_URL_ENV = "ORDER_QUEUE_URL"
#: How long the order may wait for the worker: messages are redelivered for up to 5 receives x 360 s of
#: visibility before the DLQ, so a callback still open after that will not be answered.
CALLBACK_TIMEOUT = Duration.from_minutes(35)
#: The worker beats every CALLBACK_KIT_HEARTBEAT_INTERVAL seconds (20 at most): three of them may be lost, as
#: the state machine's HeartbeatSeconds 60 allows, before the callback fails for want of a beat.
HEARTBEAT_TIMEOUT = Duration.from_seconds(60)
#: The name of the wait in the execution's history.
WAIT_NAME = "order-check"


@functools.cache
def _sqs() -> Any:
    return boto3.client("sqs")


def order(event: dict[str, Any], context: DurableContext) -> dict[str, Any]:
    """Have the order checked by the order-check worker, and return what it decided."""

    def submit(callback_id: str, _: Any) -> None:
        # The worker finds the id under "callbackId" and, with its payload_path="order", sees only the order.
        message = {"callbackId": callback_id, "order": event["order"]}
        _sqs().send_message(QueueUrl=os.environ[QUEUE_URL_ENV], MessageBody=json.dumps(message))

    config = WaitForCallbackConfig(timeout=CALLBACK_TIMEOUT, heartbeat_timeout=HEARTBEAT_TIMEOUT)
    try:
        answer = context.wait_for_callback(submit, name=WAIT_NAME, config=config)
    except CallbackExternalError as exc:  # the worker answered with a failure (Order.Rejected)
        return {"status": "rejected", "reason": exc.message}
    # Without a serdes the SDK hands over the Result the worker sent as it arrived: the worker's JSON.
    return {"status": "approved", "orderCheck": json.loads(answer)}


# Applied by hand rather than as a decorator: where the SDK is absent to mypy (Python 3.10), it is untyped.
handler = durable_execution(order)
