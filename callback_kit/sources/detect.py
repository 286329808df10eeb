"""Tell an event's source by its shape, and say what arrived when no shape fits."""

from __future__ import annotations

from typing import Any

from callback_kit.sources.envelopes import is_eventbridge_event
from callback_kit.sources.records import Source
from callback_kit.sources.tokens import (
    CALLBACK_ID_KEY,
    MISSING,
    TOKEN_KEYS,
    find_callback_id_path,
    find_token_path,
    get_path,
    is_mapping,
)

#: How many top-level keys :func:`describe_event` names (an event can be large; the log line should not be).
MAX_KEYS_SHOWN = 20


def detect_source(event: Any, *, token_path: str | None = None) -> Source | None:
    """Tell the source of a Lambda event by its shape; ``None`` when it has no known shape.

    In order: a batch of SQS records, a batch of SNS records, an EventBridge envelope, a direct payload (an
    object with a task token in one of the places looked at, see :mod:`callback_kit.sources.tokens`), and last an
    empty ``Records`` list, which is an empty SQS batch.

    A ``token_path`` that resolves in the event as it stands comes first: the user said where the token is, and
    it is there, so the event is the message (a direct payload), whatever other keys it has. A payload may carry
    ``source`` and ``detail-type`` fields of its own; only when the path does not resolve at the top is it looked
    up inside an envelope's message (an EventBridge ``detail``, an SQS body), as an SQS body is read.

    Example:
        >>> detect_source({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})
        'sqs'
        >>> detect_source({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]})
        'sns'
        >>> detect_source({"detail-type": "x", "source": "y", "detail": {}})
        'eventbridge'
        >>> detect_source({"token": "t"})
        'direct'
        >>> detect_source({"callbackId": "Y2I="})
        'direct'
        >>> detect_source({"order": 7}) is None
        True
        >>> detect_source({"TaskToken": "t", "source": "shop", "detail-type": "order"}, token_path="TaskToken")
        'direct'
    """
    if not is_mapping(event):
        return None
    if token_path and get_path(event, token_path) is not MISSING:
        return "direct"
    records = event.get("Records")
    if isinstance(records, list) and records:
        if all(is_mapping(r) and r.get("eventSource") == "aws:sqs" for r in records):
            return "sqs"
        if all(is_mapping(r) and r.get("EventSource") == "aws:sns" for r in records):
            return "sns"
    if is_eventbridge_event(event):  # an envelope, even one that lost its detail
        return "eventbridge"
    if find_token_path(event, token_path) is not None or (not token_path and find_callback_id_path(event)):
        return "direct"
    if records == []:
        return "sqs"
    return None


def describe_event(event: Any, *, token_path: str | None = None) -> str:
    """Say what arrived, for an event of no known shape: its type and top-level keys (never their values).

    Example:
        >>> describe_event({"order": 7, "user": "u1"})
        "the event has no known shape: got an object with keys ['order', 'user']; expected an SQS or SNS batch (Records), an EventBridge event (detail-type, source, detail) or a direct payload with a task token (looked for context.Task.Token, TaskToken, taskToken, tasktoken, TASK_TOKEN, task_token, MyTaskToken, token, Token) or a durable callback id (callbackId)"
    """  # noqa: E501 - the doctest shows the message as one line
    if is_mapping(event):
        keys = [str(k)[:40] for k in list(event)[:MAX_KEYS_SHOWN]]
        more = f" and {len(event) - MAX_KEYS_SHOWN} more" if len(event) > MAX_KEYS_SHOWN else ""
        got = f"an object with keys {keys}{more}" if keys else "an empty object"
        records = event.get("Records")
        if isinstance(records, list):
            kinds = sorted({_record_kind(r) for r in records})
            got += f" (Records holds {len(records)} record(s): {', '.join(kinds)})"
    elif isinstance(event, list):
        got = f"a list of {len(event)} item(s)"
    else:
        got = f"a {type(event).__name__}"
    wanted = token_path or ", ".join(TOKEN_KEYS)
    durable = "" if token_path else f" or a durable callback id ({CALLBACK_ID_KEY})"
    return (
        f"the event has no known shape: got {got}; expected an SQS or SNS batch (Records), an EventBridge event "
        f"(detail-type, source, detail) or a direct payload with a task token (looked for {wanted}){durable}"
    )


def _record_kind(record: Any) -> str:
    if not is_mapping(record):
        return f"a {type(record).__name__}"
    source = record.get("eventSource", record.get("EventSource"))
    return f"eventSource {str(source)[:40]!r}" if source is not None else "no eventSource"
