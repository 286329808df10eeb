"""Recognise what arrived and pull the task token and payload out of it.

Five sources deliver task tokens, told apart by the event's shape (``source=`` forces one):

* ``sqs``: a Lambda SQS event; each record's ``body`` is a JSON string holding the message that the state
  machine's ``sqs:sendMessage.waitForTaskToken`` task sent. A body that is an SNS notification (a topic delivering
  to the queue without ``RawMessageDelivery``: the message is its ``Message``, a JSON string) or an EventBridge
  event (a rule targeting the queue: the message is its ``detail``) is unwrapped first, and
  :attr:`TaskRecord.envelope` (``ck.current_task().envelope``) says which.
* ``sns``: a Lambda SNS event (``Records[].EventSource`` is ``aws:sns``); the message is ``Records[].Sns.Message``,
  a JSON string (``sns:publish.waitForTaskToken``).
* ``eventbridge``: an EventBridge envelope (``version, id, detail-type, source, ..., detail``); the message is
  ``detail``.
* ``direct``: the payload of ``lambda:invoke.waitForTaskToken`` itself: any object with a task token in one of
  the places below.
* ``activity``: a GetActivityTask response (``taskToken`` beside ``input``, a JSON string).

An empty ``Records`` list is an empty SQS batch (answered ``{"batchItemFailures": []}``); an event of no known
shape raises :class:`~callback_kit.exceptions.MalformedEventError` saying what arrived.

Within a message, the token is looked up at ``token_path`` when given, else in this order, first found wins
(key names compared without regard to case and ``_``):

1. ``context.Task.Token`` (a payload built with ``"context.$": "$$"``),
2. ``TaskToken``, ``taskToken``, ``tasktoken``, ``TASK_TOKEN``, ``task_token``,
3. ``MyTaskToken``,
4. ``token``, ``Token`` (last: a business field such as a card token may be called that).

The user function receives the message with every copy of the task token removed (the key it was found under
and any other entry holding the same token, e.g. both ``TaskToken`` and ``context.Task.Token``), or the object at
``payload_path``, likewise stripped. Both paths are dotted and relative to the message (the SQS body or what its
envelope held, the SNS message, the EventBridge ``detail``, the direct payload or the activity input).
"""

from __future__ import annotations

from callback_kit.sources.detect import describe_event, detect_source
from callback_kit.sources.envelopes import unwrap
from callback_kit.sources.parse import parse_activity_task, parse_event, parse_message
from callback_kit.sources.records import SOURCES, Envelope, Source, TaskRecord
from callback_kit.sources.tokens import MAX_TOKEN_CHARS, TOKEN_KEYS, find_token_path

__all__ = [
    "MAX_TOKEN_CHARS",
    "SOURCES",
    "TOKEN_KEYS",
    "Envelope",
    "Source",
    "TaskRecord",
    "describe_event",
    "detect_source",
    "find_token_path",
    "parse_activity_task",
    "parse_event",
    "parse_message",
    "unwrap",
]
