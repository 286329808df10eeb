"""Token discovery and payload extraction for every source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callback_kit.exceptions import MalformedEventError
from callback_kit.sources import MAX_TOKEN_CHARS, TOKEN_KEYS, detect_source, parse_activity_task, parse_event
from callback_kit.testing import eventbridge_event, sqs_event


@pytest.mark.parametrize("key", [k for k in TOKEN_KEYS if "." not in k])
def test_each_known_key_is_found_and_removed_from_the_payload(key: str) -> None:
    # GIVEN a direct payload with the token under one of the known keys
    event = {key: "tok-123", "order": 7}
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN the token is found and the function gets the rest
    assert record.token == "tok-123"
    assert record.payload == {"order": 7}
    assert record.problem is None


def test_keys_are_tried_in_the_documented_order() -> None:
    # GIVEN a message carrying two of the known keys
    event = {"token": "second", "TaskToken": "first", "x": 1}
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN TaskToken wins, and only that key is removed
    assert record.token == "first"
    assert record.payload == {"token": "second", "x": 1}


def test_context_task_token_from_a_whole_context_object() -> None:
    # GIVEN a payload built with "context.$": "$$"
    event: dict[str, Any] = {
        "input": {"age": 30},
        "context": {"Task": {"Token": "ctx-token"}, "Execution": {"Id": "arn:aws:states:us-east-1:1:execution:sm:e1"}},
    }
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN the token comes from context.Task.Token, the execution ARN is known, and the rest is kept
    assert record.token == "ctx-token"
    assert record.execution_arn == "arn:aws:states:us-east-1:1:execution:sm:e1"
    assert record.payload == {"input": {"age": 30}, "context": {"Task": {}, "Execution": event["context"]["Execution"]}}
    assert event["context"]["Task"] == {"Token": "ctx-token"}, "the event itself must not be modified"


def test_token_path_and_payload_path() -> None:
    # GIVEN a nested message and explicit paths
    event = {"meta": {"cb": "tok"}, "Record": {"id": 3}, "noise": True}
    # WHEN it is parsed with token_path and payload_path
    [record] = parse_event(event, token_path="meta.cb", payload_path="Record")
    # THEN the function gets exactly the object at payload_path
    assert record.token == "tok"
    assert record.payload == {"id": 3}


def test_missing_payload_path_with_a_token_is_a_problem_to_answer() -> None:
    [record] = parse_event({"token": "tok"}, payload_path="Record")
    assert record.token == "tok"
    assert record.problem is not None
    assert "payload_path" in record.problem


def test_sqs_bodies_are_json_strings() -> None:
    # GIVEN an SQS batch with good, token-less, non-JSON and non-string bodies
    event = sqs_event({"TaskToken": "a", "n": 1}, {"n": 2}, "{not json", fifo=True, group_id="g")
    event["Records"].append({**event["Records"][0], "body": None, "messageId": "m-4"})
    # WHEN it is parsed
    records = parse_event(event)
    # THEN each record is classified, with its message id and group
    assert [r.token for r in records] == ["a", None, None, None]
    assert records[0].payload == {"n": 1}
    assert records[0].group_id == "g"
    assert records[1].problem is not None
    assert "no task token" in records[1].problem
    assert records[2].problem is not None
    assert "not valid JSON" in records[2].problem
    assert records[3].record_id == "m-4"
    assert all(r.source == "sqs" for r in records)


def test_eventbridge_detail_holds_the_message() -> None:
    # GIVEN an EventBridge envelope as putEvents.waitForTaskToken delivers it
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:run-1"
    event = eventbridge_event({"TaskToken": "eb", "user": "u1"}, execution_arn=arn)
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN the payload is the detail without the token, and the execution ARN comes from resources
    assert (record.source, record.token, record.payload) == ("eventbridge", "eb", {"user": "u1"})
    assert record.execution_arn == arn
    assert record.record_id == event["id"]


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "sqs"),
        ({"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "{}"}}]}, "sns"),
        ({"Records": [{"eventSource": "aws:sqs"}, {"EventSource": "aws:sns"}]}, None),
        ({"Records": [{"eventSource": "aws:s3"}]}, None),
        ({"Records": []}, "sqs"),
        ({"Records": [], "TaskToken": "t"}, "direct"),
        ({"detail-type": "t", "source": "s", "detail": {}}, "eventbridge"),
        ({"detail-type": "t", "source": "s"}, "eventbridge"),
        ({"detail": {}}, None),
        ({"token": "t"}, "direct"),
        ({"context": {"Task": {"Token": "t"}}}, "direct"),
        ({"order": 7}, None),
        ({}, None),
        ([1, 2], None),
        ("text", None),
        (None, None),
    ],
)
def test_detect_source(event: Any, expected: str | None) -> None:
    assert detect_source(event) == expected


def test_forced_source_that_does_not_fit_is_a_clear_error() -> None:
    with pytest.raises(MalformedEventError, match="Records"):
        parse_event({"token": "t"}, source="sqs")
    with pytest.raises(MalformedEventError, match="detail"):
        parse_event({"token": "t"}, source="eventbridge")


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "non-empty string"), (42, "non-empty string"), ("x" * (MAX_TOKEN_CHARS + 1), "at most 2048")],
)
def test_unusable_tokens_are_not_tokens(value: Any, reason: str) -> None:
    [record] = parse_event({"TaskToken": value})
    assert record.token is None
    assert record.problem is not None
    assert reason in record.problem


def test_longest_valid_token_is_accepted() -> None:
    [record] = parse_event({"TaskToken": "x" * MAX_TOKEN_CHARS})
    assert record.token == "x" * MAX_TOKEN_CHARS


def test_non_object_messages_have_no_token() -> None:
    for message in ([1, 2], "str", 3, None):
        [record] = parse_event(message, source="direct")
        assert record.token is None


def test_activity_task() -> None:
    record = parse_activity_task("tok", json.dumps({"age": 20}))
    assert (record.source, record.token, record.payload) == ("activity", "tok", {"age": 20})
    bad = parse_activity_task("tok", "{oops")
    assert bad.token == "tok"
    assert bad.problem is not None
    assert "not valid JSON" in bad.problem
    assert parse_activity_task("tok", None).payload == {}


def test_activity_input_is_handed_over_whole_even_with_token_like_keys() -> None:
    # GIVEN an activity input that happens to carry a "token" field of its own
    record = parse_activity_task("real-token", json.dumps({"token": "user-data", "n": 1}))
    # THEN the real token is the one from GetActivityTask and the input is untouched
    assert record.token == "real-token"
    assert record.payload == {"token": "user-data", "n": 1}
    assert parse_activity_task("t", json.dumps({"a": {"b": 2}}), payload_path="a").payload == {"b": 2}
    missing = parse_activity_task("t", "{}", payload_path="a")
    assert missing.problem is not None
