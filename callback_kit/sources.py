"""Recognise what arrived and pull the task token and payload out of it.

Four sources deliver task tokens:

* ``sqs``: a Lambda SQS event; each record's ``body`` is a JSON string holding the message that the state
  machine's ``sqs:sendMessage.waitForTaskToken`` task sent.
* ``eventbridge``: an EventBridge envelope (``version, id, detail-type, source, ..., detail``); the message is
  ``detail``.
* ``direct``: the payload of ``lambda:invoke.waitForTaskToken`` itself.
* ``activity``: a GetActivityTask response (``taskToken`` beside ``input``, a JSON string).

Within a message, the token is looked up at ``token_path`` when given, else under the first of
:data:`TOKEN_KEYS` present. The user function receives the message without its token key, or the object at
``payload_path``. Both paths are dotted and relative to the message (the SQS body, the EventBridge ``detail``,
the direct payload or the activity input).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from callback_kit.exceptions import MalformedEventError

Source: TypeAlias = Literal["sqs", "eventbridge", "direct", "activity"]
SOURCES: tuple[Source, ...] = ("sqs", "eventbridge", "direct", "activity")

#: Where a token is looked for when no ``token_path`` is given, in this order.
TOKEN_KEYS: tuple[str, ...] = (
    "TaskToken",
    "taskToken",
    "MyTaskToken",
    "token",
    "Token",
    "task_token",
    "context.Task.Token",
)
#: Step Functions' longest task token (botocore's model since 2024; older documents say 1,024).
MAX_TOKEN_CHARS = 2048

_MISSING = object()


@dataclass(frozen=True)
class TaskRecord:
    """One task to run, as found in an event.

    Attributes:
        source: where it came from.
        token: the task token, or ``None`` when there is no usable one (the message must be redelivered).
        payload: what the user function receives (before ``model=`` validation).
        record_id: the SQS message id or the EventBridge event id, for logs and batch item failures.
        group_id: the FIFO message group, which keeps its records in order.
        execution_arn: the waiting execution, where the event says it.
        problem: why the record cannot run; with a token, it is answered with a failure callback.
    """

    source: Source
    token: str | None
    payload: Any = None
    record_id: str | None = None
    group_id: str | None = None
    execution_arn: str | None = None
    problem: str | None = None


def detect_source(event: Any) -> Source:
    """Tell the source of a Lambda event by its shape.

    Example:
        >>> detect_source({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]})
        'sqs'
        >>> detect_source({"detail-type": "x", "source": "y", "detail": {}})
        'eventbridge'
        >>> detect_source({"token": "t"})
        'direct'
    """
    if isinstance(event, Mapping):
        records = event.get("Records")
        if (
            isinstance(records, list)
            and records
            and all(isinstance(r, Mapping) and r.get("eventSource") == "aws:sqs" for r in records)
        ):
            return "sqs"
        if "detail-type" in event and "source" in event:  # an envelope, even one that lost its detail
            return "eventbridge"
    return "direct"


def parse_event(
    event: Any,
    *,
    source: Source | None = None,
    token_path: str | None = None,
    payload_path: str | None = None,
) -> list[TaskRecord]:
    """Split a Lambda event into the task records it carries.

    Example:
        >>> [r] = parse_event({"token": "abc", "order": 7})
        >>> r.source, r.token, r.payload
        ('direct', 'abc', {'order': 7})

    Raises:
        MalformedEventError: if ``source`` forces a shape the event does not have.
    """
    kind = source or detect_source(event)
    if kind == "sqs":
        records = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(records, list):
            raise MalformedEventError("source='sqs' but the event has no Records list")
        return [_sqs_record(r, token_path, payload_path) for r in records]
    if kind == "eventbridge":
        if isinstance(event, Mapping) and "detail" not in event and "detail-type" in event:
            # An envelope without its detail: no token to answer, but its id must reach the log and the DLQ.
            problem = "the EventBridge event has no detail"
            return [TaskRecord("eventbridge", None, record_id=_str_or_none(event.get("id")), problem=problem)]
        if not isinstance(event, Mapping) or "detail" not in event:
            raise MalformedEventError("source='eventbridge' but the event has no detail")
        return [
            parse_message(
                event["detail"],
                "eventbridge",
                token_path=token_path,
                payload_path=payload_path,
                record_id=_str_or_none(event.get("id")),
                execution_arn=_execution_from_resources(event.get("resources")),
            )
        ]
    if kind == "direct":
        return [parse_message(event, "direct", token_path=token_path, payload_path=payload_path)]
    raise MalformedEventError(f"source must be one of 'sqs', 'eventbridge', 'direct', not {kind!r}")


def parse_activity_task(
    task_token: str | None, task_input: str | None, *, payload_path: str | None = None
) -> TaskRecord:
    """Make a task record from a GetActivityTask response's ``taskToken`` and ``input``.

    Example:
        >>> parse_activity_task("tok", '{"age": 30}').payload
        {'age': 30}
    """
    token, problem = _check_token(task_token)
    try:
        message = json.loads(task_input) if task_input else {}
    except ValueError as exc:
        return TaskRecord("activity", token, problem=f"the activity input is not valid JSON: {exc}")
    # The token came beside the input, not inside it: the input is handed over whole (or at payload_path).
    payload = message if payload_path is None else _get(message, payload_path)
    if payload is _MISSING:
        payload, problem = None, problem or f"payload_path {payload_path!r} is not in the input"
    execution_arn = _str_or_none(_get(message, "context.Execution.Id"))
    return TaskRecord("activity", token, payload, execution_arn=execution_arn, problem=problem)


def parse_message(
    message: Any,
    source: Source,
    *,
    token_path: str | None = None,
    payload_path: str | None = None,
    record_id: str | None = None,
    group_id: str | None = None,
    execution_arn: str | None = None,
) -> TaskRecord:
    """Find the token in one message and the payload that goes with it."""
    path = _find_token_path(message, token_path)
    token, problem = _check_token(_get(message, path) if path else None)
    if path is None:
        wanted = token_path or ", ".join(TOKEN_KEYS)
        problem = f"no task token found (looked for {wanted})"
    if execution_arn is None:
        execution_arn = _str_or_none(_get(message, "context.Execution.Id"))
    payload: Any = _without(message, path) if path else message
    if payload_path is not None:
        payload = _get(message, payload_path)
        if payload is _MISSING:
            payload = None
            problem = problem or f"payload_path {payload_path!r} is not in the message"
    return TaskRecord(source, token, payload, record_id, group_id, execution_arn, problem)


def _sqs_record(record: Any, token_path: str | None, payload_path: str | None) -> TaskRecord:
    if not isinstance(record, Mapping):  # only with source="sqs" forced; one bad record must not sink the batch
        return TaskRecord("sqs", None, problem=f"the SQS record is not an object (got {type(record).__name__})")
    record_id = _str_or_none(record.get("messageId"))
    attributes = record.get("attributes")
    group_id = _str_or_none(attributes.get("MessageGroupId")) if isinstance(attributes, Mapping) else None
    body = record.get("body")
    if not isinstance(body, str):
        return TaskRecord("sqs", None, record_id=record_id, group_id=group_id, problem="the SQS body is not a string")
    try:
        message = json.loads(body)
    except ValueError as exc:
        return TaskRecord(
            "sqs", None, record_id=record_id, group_id=group_id, problem=f"the SQS body is not valid JSON: {exc}"
        )
    return parse_message(
        message, "sqs", token_path=token_path, payload_path=payload_path, record_id=record_id, group_id=group_id
    )


def _find_token_path(message: Any, token_path: str | None) -> str | None:
    candidates = (token_path,) if token_path else TOKEN_KEYS
    for path in candidates:
        if _get(message, path) is not _MISSING:
            return path
    return None


def _check_token(value: Any) -> tuple[str | None, str | None]:
    if value is None or value is _MISSING:
        return None, "no task token found"
    if not isinstance(value, str) or not value:
        return None, f"the task token is not a non-empty string (got {type(value).__name__})"
    if len(value) > MAX_TOKEN_CHARS:
        # Step Functions would answer ValidationException: this token can never be completed.
        return None, f"the task token is {len(value)} characters; Step Functions' tokens are at most {MAX_TOKEN_CHARS}"
    return value, None


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


def _without(message: Any, path: str) -> Any:
    """A copy of ``message`` without the key at ``path``, copying only the mappings along the path."""
    head, _, rest = path.partition(".")
    if not isinstance(message, Mapping):
        return message
    copy = dict(message)
    if rest:
        copy[head] = _without(copy[head], rest)
    else:
        copy.pop(head, None)
    return copy


def _execution_from_resources(resources: Any) -> str | None:
    if isinstance(resources, list):
        for arn in resources:
            if isinstance(arn, str) and ":execution:" in arn:
                return arn
    return None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
