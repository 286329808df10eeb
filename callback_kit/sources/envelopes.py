"""Envelopes around a message: an SNS notification or an EventBridge event, as an SQS body can hold them.

An SNS topic that delivers to a queue without ``RawMessageDelivery`` wraps each message in a notification
(``Type: Notification``, ``TopicArn``, ``Message`` a JSON *string*); an EventBridge rule that targets a queue sends
the whole event, whose ``detail`` is the message. :func:`unwrap` takes either off, so that the token and the
payload are looked for in the message the state machine sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from callback_kit.sources.depth import loads
from callback_kit.sources.records import Envelope
from callback_kit.sources.tokens import is_mapping


@dataclass(frozen=True)
class Unwrapped:
    """A message taken out of its envelope (or the body itself, when it had none)."""

    message: Any
    envelope: Envelope | None = None
    #: The waiting execution, when the envelope says it (an EventBridge event's ``resources``).
    execution_arn: str | None = None
    #: Why the message could not be taken out (then ``message`` is ``None``).
    problem: str | None = None


def is_sns_notification(body: Any) -> bool:
    """Whether ``body`` is an SNS notification envelope.

    Example:
        >>> is_sns_notification({"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": "{}"})
        True
    """
    return (
        is_mapping(body)
        and body.get("Type") == "Notification"
        and isinstance(body.get("Message"), str)
        and "TopicArn" in body
    )


def is_eventbridge_event(body: Any) -> bool:
    """Whether ``body`` is an EventBridge event (``detail-type`` and ``source``; ``detail`` may be lost).

    Example:
        >>> is_eventbridge_event({"detail-type": "x", "source": "y", "detail": {}})
        True
    """
    return is_mapping(body) and "detail-type" in body and "source" in body


def unwrap(body: Any) -> Unwrapped:
    """Take the message out of an SNS notification or an EventBridge event; any other body is the message.

    Example:
        >>> note = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": '{"TaskToken": "t"}'}
        >>> unwrap(note)
        Unwrapped(message={'TaskToken': 't'}, envelope='sns', execution_arn=None, problem=None)
        >>> unwrap({"TaskToken": "t"}).envelope is None
        True
    """
    if is_sns_notification(body):
        message, problem = loads(body["Message"], "the SNS notification's Message")
        return Unwrapped(message, "sns", problem=problem)
    if is_eventbridge_event(body):
        arn = execution_from_resources(body.get("resources"))
        if "detail" not in body:
            return Unwrapped(None, "eventbridge", arn, problem="the EventBridge event has no detail")
        return Unwrapped(body["detail"], "eventbridge", arn)
    return Unwrapped(body)


def execution_from_resources(resources: Any) -> str | None:
    """The execution ARN among an EventBridge event's ``resources`` (putEvents.waitForTaskToken puts it there).

    Example:
        >>> execution_from_resources(["arn:aws:states:us-east-1:1:execution:sm:e1"])
        'arn:aws:states:us-east-1:1:execution:sm:e1'
    """
    if isinstance(resources, list):
        for arn in resources:
            if isinstance(arn, str) and ":execution:" in arn:
                return arn
    return None
