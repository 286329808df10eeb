"""Split an event into task records, source by source."""

from __future__ import annotations

import dataclasses
from typing import Any

from callback_kit.exceptions import MalformedEventError
from callback_kit.sources.depth import MessageTooDeepError, loads
from callback_kit.sources.detect import describe_event, detect_source
from callback_kit.sources.envelopes import Unwrapped, execution_from_resources, unwrap
from callback_kit.sources.records import SOURCES, Envelope, Kind, Source, TaskRecord
from callback_kit.sources.tokens import (
    CALLBACK_ID_KEY,
    MISSING,
    TOKEN_KEYS,
    check_callback_id,
    check_token,
    find_callback_id_path,
    find_token_path,
    get_path,
    is_mapping,
    without_token,
)


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
        >>> parse_event({"Records": []})
        []

    Raises:
        MalformedEventError: if the event has no known shape (it says what arrived), or ``source`` forces a shape
            the event does not have.
    """
    kind = source or detect_source(event, token_path=token_path)
    if kind is None:
        raise MalformedEventError(describe_event(event, token_path=token_path))
    if kind in ("sqs", "sns"):
        records = event.get("Records") if is_mapping(event) else None
        if not isinstance(records, list):
            raise MalformedEventError(f"source={kind!r} but the event has no Records list")
        parse = _sqs_record if kind == "sqs" else _sns_record
        return [parse(r, token_path, payload_path) for r in records]
    if kind == "eventbridge":
        if not is_mapping(event) or ("detail" not in event and "detail-type" not in event):
            raise MalformedEventError("source='eventbridge' but the event has no detail")
        record_id = _str_or_none(event.get("id"))
        if "detail" not in event:
            # An envelope without its detail: no token to answer, but its id must reach the log and the DLQ.
            return [TaskRecord("eventbridge", None, record_id=record_id, problem="the EventBridge event has no detail")]
        arn = execution_from_resources(event.get("resources"))
        return [_message(event["detail"], "eventbridge", token_path, payload_path, record_id, execution_arn=arn)]
    if kind == "direct":
        return [parse_message(event, "direct", token_path=token_path, payload_path=payload_path)]
    raise MalformedEventError(f"source must be one of {', '.join(map(repr, SOURCES[:-1]))}, not {kind!r}")


def parse_activity_task(
    task_token: str | None, task_input: str | None, *, payload_path: str | None = None
) -> TaskRecord:
    """Make a task record from a GetActivityTask response's ``taskToken`` and ``input``.

    Example:
        >>> parse_activity_task("tok", '{"age": 30}').payload
        {'age': 30}
    """
    token, problem = check_token(task_token)
    message, unreadable = loads(task_input, "the activity input") if task_input else ({}, None)
    if unreadable:
        return TaskRecord("activity", token, problem=unreadable)
    # The token came beside the input, not inside it: the input is handed over whole (or at payload_path), with
    # any copy of the token the state machine put in it removed.
    payload = message if payload_path is None else get_path(message, payload_path)
    if payload is MISSING:
        payload, problem = None, problem or f"payload_path {payload_path!r} is not in the input"
    payload = without_token(payload, None, token)
    execution_arn = _str_or_none(get_path(message, "context.Execution.Id"))
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
    envelope: Envelope | None = None,
    raw: str | None = None,
) -> TaskRecord:
    """Find the token in one message and the payload that goes with it (``raw``: the JSON text it came from).

    Example:
        >>> r = parse_message({"token": "card-1", "context": {"Task": {"Token": "t"}}}, "direct")
        >>> r.token, r.payload
        ('t', {'token': 'card-1', 'context': {'Task': {}}})
        >>> r = parse_message({"callbackId": "Y2I=", "order": 7}, "sqs")
        >>> r.kind, r.token, r.payload
        ('durable', 'Y2I=', {'order': 7})
    """
    path = find_token_path(message, token_path)
    token, problem = check_token(get_path(message, path) if path else None)
    kind: Kind = "stepfunctions"
    # A durable callback id is looked for only where the user did not say where the token is: with token_path,
    # the message is a Step Functions task's, and a field that merely looks like a callback id is its business.
    id_path = None if token_path else find_callback_id_path(message)
    if id_path is not None and path is not None:
        # Which one waits cannot be told: answering the wrong one leaves the other waiting. Hand it back.
        token, problem = (
            None,
            (
                f"the message carries both a task token ({'.'.join(path)}) and a durable callback id ({id_path[0]}); "
                "say which to answer with token_path"
            ),
        )
    elif id_path is not None:
        kind, path = "durable", id_path
        token, problem = check_callback_id(message[id_path[0]])
    elif path is None:
        problem = f"no task token found (looked for {token_path or ', '.join(TOKEN_KEYS)} and {CALLBACK_ID_KEY})"
    if execution_arn is None:
        execution_arn = _str_or_none(get_path(message, "context.Execution.Id"))
    try:
        if payload_path is None:
            payload = without_token(message, path, token, raw=raw)
        else:
            payload = get_path(message, payload_path)
            if payload is MISSING:
                payload = None
                problem = problem or f"payload_path {payload_path!r} is not in the message"
            payload = without_token(payload, None, token)
    except MessageTooDeepError as exc:
        # The token is readable (it sits near the top), so the task is answered with this reason.
        payload, problem = None, problem or str(exc)
    traceparent = message.get("traceparent") if is_mapping(message) else None
    return TaskRecord(
        source,
        token,
        payload,
        record_id,
        group_id,
        execution_arn,
        problem,
        envelope,
        traceparent=traceparent if isinstance(traceparent, str) else None,
        kind=kind,
    )


def _message(
    message: Any,
    source: Source,
    token_path: str | None,
    payload_path: str | None,
    record_id: str | None,
    group_id: str | None = None,
    execution_arn: str | None = None,
) -> TaskRecord:
    return parse_message(
        message,
        source,
        token_path=token_path,
        payload_path=payload_path,
        record_id=record_id,
        group_id=group_id,
        execution_arn=execution_arn,
    )


def _sqs_record(record: Any, token_path: str | None, payload_path: str | None) -> TaskRecord:
    if not is_mapping(record):  # only with source="sqs" forced; one bad record must not sink the batch
        return TaskRecord("sqs", None, problem=f"the SQS record is not an object (got {type(record).__name__})")
    record_id = _str_or_none(record.get("messageId"))
    attributes = record.get("attributes")
    group_id = _str_or_none(attributes.get("MessageGroupId")) if is_mapping(attributes) else None
    body, problem = _json_string(record.get("body"), "the SQS body")
    if problem:
        return TaskRecord("sqs", None, record_id=record_id, group_id=group_id, problem=problem)
    # A token_path that resolves in the body as it is (say "detail.TaskToken") means the body is the message.
    inner = Unwrapped(body) if token_path and get_path(body, token_path) is not MISSING else unwrap(body)
    if inner.problem:
        return TaskRecord("sqs", None, None, record_id, group_id, inner.execution_arn, inner.problem, inner.envelope)
    parsed = parse_message(
        inner.message,
        "sqs",
        token_path=token_path,
        payload_path=payload_path,
        record_id=record_id,
        group_id=group_id,
        execution_arn=inner.execution_arn,
        envelope=inner.envelope,
        raw=record["body"],
    )
    trace_header = attributes.get("AWSTraceHeader") if is_mapping(attributes) else None
    traceparent = parsed.traceparent or _string_attribute(record.get("messageAttributes"), "traceparent")
    if trace_header is None and traceparent is parsed.traceparent:
        return parsed  # the usual record: nothing to add, no copy made
    return dataclasses.replace(
        parsed, trace_header=trace_header if isinstance(trace_header, str) else None, traceparent=traceparent
    )


def _sns_record(record: Any, token_path: str | None, payload_path: str | None) -> TaskRecord:
    sns = record.get("Sns") if is_mapping(record) else None
    if not is_mapping(sns):  # only with source="sns" forced
        return TaskRecord("sns", None, problem="the SNS record has no Sns object")
    record_id = _str_or_none(sns.get("MessageId"))
    message, problem = _json_string(sns.get("Message"), "the SNS message")
    if problem:
        return TaskRecord("sns", None, record_id=record_id, problem=problem)
    return parse_message(
        message, "sns", token_path=token_path, payload_path=payload_path, record_id=record_id, raw=sns["Message"]
    )


def _string_attribute(attributes: Any, name: str) -> str | None:
    """An SQS message attribute's ``stringValue`` (how OpenTelemetry's SQS propagation carries ``traceparent``)."""
    attribute = attributes.get(name) if is_mapping(attributes) else None
    value = attribute.get("stringValue") if is_mapping(attribute) else None
    return value if isinstance(value, str) else None


def _json_string(text: Any, what: str) -> tuple[Any, str | None]:
    if not isinstance(text, str):
        return None, f"{what} is not a string"
    return loads(text, what)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
