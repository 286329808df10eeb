"""Lambda events and a Lambda context, as the SQS, SNS, EventBridge and direct-invoke sources deliver them."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

REGION = "us-east-1"
ACCOUNT = "123456789012"


class FakeLambdaContext:
    """A Lambda context whose remaining time counts down from ``remaining_ms`` (and can be set).

    Example:
        >>> ctx = FakeLambdaContext(remaining_ms=30_000)
        >>> 29_000 < ctx.get_remaining_time_in_millis() <= 30_000
        True
        >>> ctx.set_remaining(500); ctx.get_remaining_time_in_millis() <= 500
        True
    """

    def __init__(
        self,
        remaining_ms: int = 900_000,
        *,
        function_name: str = "callback-worker",
        memory_limit_in_mb: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"
        self._clock = clock
        self._deadline = clock() + remaining_ms / 1000.0

    def set_remaining(self, remaining_ms: int) -> None:
        """Make the remaining time ``remaining_ms`` from now."""
        self._deadline = self._clock() + remaining_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (pretend) Lambda timeout."""
        return max(0, int((self._deadline - self._clock()) * 1000))


def sqs_event(
    *messages: Any,
    queue: str = "callback-queue",
    fifo: bool = False,
    group_id: str | Callable[[int], str] = "group-1",
    envelope: Literal["sns", "eventbridge"] | None = None,
) -> dict[str, Any]:
    """A Lambda SQS event whose records carry ``messages`` (dicts are JSON-encoded; strings are used as is).

    Args:
        messages: the messages, one record each.
        queue: the queue's name (``.fifo`` is added for ``fifo=True``).
        fifo: whether the queue is a FIFO queue (records get a ``MessageGroupId``).
        group_id: the message group, or a function of the record's index giving it.
        envelope: wrap each message as a queue subscribed to something else receives it: ``"sns"``, an SNS
            notification (a topic without ``RawMessageDelivery``); ``"eventbridge"``, an EventBridge event (a rule
            targeting the queue; the message is its ``detail``).

    Example:
        >>> event = sqs_event({"TaskToken": "t-1", "n": 1}, '{"TaskToken": "t-2"}')
        >>> [r["body"] for r in event["Records"]]
        ['{"TaskToken": "t-1", "n": 1}', '{"TaskToken": "t-2"}']
        >>> json.loads(sqs_event({"TaskToken": "t"}, envelope="sns")["Records"][0]["body"])["Type"]
        'Notification'
    """
    name = queue + ".fifo" if fifo and not queue.endswith(".fifo") else queue
    records = []
    for i, message in enumerate(messages):
        if envelope == "sns":
            message = sns_notification(message)
        elif envelope == "eventbridge":
            message = eventbridge_event(message if isinstance(message, Mapping) else json.loads(message))
        body = message if isinstance(message, str) else json.dumps(message)
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AROAEXAMPLE:states",
            "ApproximateFirstReceiveTimestamp": "1767225600001",
        }
        if fifo:
            attributes["MessageGroupId"] = group_id(i) if callable(group_id) else group_id
            attributes["SequenceNumber"] = str(18_000_000_000_000_000_000 + i)
            attributes["MessageDeduplicationId"] = f"dedup-{i}"
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"AQEB{uuid.uuid4().hex}",
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": _md5(body),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def eventbridge_event(
    detail: Mapping[str, Any],
    *,
    source: str = "callback-kit.workflow",
    detail_type: str = "CallbackRequested",
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """An EventBridge envelope around ``detail``, as a rule target receives it.

    Example:
        >>> eventbridge_event({"TaskToken": "t"})["detail"]
        {'TaskToken': 't'}
    """
    resources = [execution_arn] if execution_arn else []
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": resources,
        "detail": dict(detail),
    }


def sns_notification(message: Any, *, topic: str = "callback-topic", subject: str | None = None) -> dict[str, Any]:
    """The SNS notification envelope around ``message`` (dicts are JSON-encoded into ``Message``).

    This is the body an SQS queue subscribed to the topic without ``RawMessageDelivery`` receives.

    Example:
        >>> note = sns_notification({"TaskToken": "t"})
        >>> note["Type"], note["Message"]
        ('Notification', '{"TaskToken": "t"}')
    """
    arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic}"
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": arn,
        "Subject": subject,
        "Message": message if isinstance(message, str) else json.dumps(message),
        "Timestamp": "2026-01-01T00:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={arn}:0",
    }


def sns_event(*messages: Any, topic: str = "callback-topic", subject: str | None = None) -> dict[str, Any]:
    """A Lambda SNS event whose records carry ``messages`` (dicts are JSON-encoded; strings are used as is).

    This is what a Lambda function subscribed to the topic of an ``sns:publish.waitForTaskToken`` task receives
    (Lambda sends one record per event; more are allowed here for tests).

    Example:
        >>> event = sns_event({"TaskToken": "t", "order": 7})
        >>> record = event["Records"][0]
        >>> record["EventSource"], record["Sns"]["Message"]
        ('aws:sns', '{"TaskToken": "t", "order": 7}')
    """
    records = []
    for message in messages:
        note = sns_notification(message, topic=topic, subject=subject)
        # Lambda spells these two URL keys differently from the SQS body (Url, not URL).
        note["SigningCertUrl"] = note.pop("SigningCertURL")
        note["UnsubscribeUrl"] = note.pop("UnsubscribeURL")
        note["MessageAttributes"] = {}
        records.append(
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": f"{note['TopicArn']}:{uuid.uuid4()}",
                "Sns": note,
            }
        )
    return {"Records": records}


def direct_event(token: str, payload: Mapping[str, Any] | None = None, *, key: str = "token") -> dict[str, Any]:
    """The payload ``lambda:invoke.waitForTaskToken`` sends: ``payload`` with the token under ``key``.

    Example:
        >>> direct_event("t", {"age": 30})
        {'age': 30, 'token': 't'}
    """
    return {**(payload or {}), key: token}


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
