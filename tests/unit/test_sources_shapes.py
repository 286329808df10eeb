"""Every place a token arrives: key spellings and their order, SNS, envelopes in SQS bodies, batch shapes."""

from __future__ import annotations

import json
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.exceptions import MalformedEventError
from callback_kit.sources import TOKEN_KEYS, describe_event, parse_event
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import (
    FakeLambdaContext,
    FakeStepFunctions,
    eventbridge_event,
    sns_event,
    sns_notification,
    sqs_event,
)

NO_SLEEP = RetryPolicy(sleep=lambda s: None)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:sm:run-1"


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


def make(sfn: FakeStepFunctions, fn: Any, **options: Any) -> ck.CallbackHandler[Any, Any]:
    options.setdefault("heartbeat_interval", 0)
    return ck.callback_handler(client=sfn, retry=NO_SLEEP, **options)(fn)


# --- key spellings and their order ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        *("TaskToken", "taskToken", "tasktoken", "TASK_TOKEN", "task_token", "Task_Token"),
        *("MyTaskToken", "MY_TASK_TOKEN", "token", "Token", "TOKEN"),
    ],
)
def test_every_spelling_is_found_regardless_of_case_and_underscores(key: str) -> None:
    # GIVEN a direct payload with the token under one spelling
    # WHEN it is parsed
    [record] = parse_event({key: "tok-1", "order": 7})
    # THEN the token is found and the function gets the rest
    assert (record.source, record.token, record.payload, record.problem) == ("direct", "tok-1", {"order": 7}, None)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"context": {"Task": {"Token": "win"}}}, {"TaskToken": "lose"}),
        ({"TASK_TOKEN": "win"}, {"MyTaskToken": "lose"}),
        ({"tasktoken": "win"}, {"token": "lose"}),
        ({"MyTaskToken": "win"}, {"Token": "lose"}),
        ({"context": {"task": {"token": "win"}}}, {"token": "lose"}),
    ],
)
def test_unambiguous_places_win_whatever_the_key_order(first: dict[str, Any], then: dict[str, Any]) -> None:
    # GIVEN a message with two places holding different values, the weaker one written first
    message = {**then, **first}
    # WHEN it is parsed
    [record] = parse_event(message)
    # THEN the place earlier in the documented order wins, and the other value reaches the function untouched
    assert record.token == "win"
    assert json.dumps(record.payload).count("lose") == 1
    assert "win" not in json.dumps(record.payload)


def test_token_keys_list_the_documented_order() -> None:
    # GIVEN / WHEN the public list of spellings / THEN it starts with the context path and ends with the generic ones
    assert TOKEN_KEYS[0] == "context.Task.Token"
    assert TOKEN_KEYS[-2:] == ("token", "Token")
    assert TOKEN_KEYS.index("MyTaskToken") > TOKEN_KEYS.index("task_token")


def test_business_token_beside_context_task_token_reaches_the_function(sfn: FakeStepFunctions) -> None:
    # GIVEN the README's "context.$": "$$" layout with a business field called "token" (a card token)
    task_token = sfn.open_task()
    card_token = sfn.open_task()  # a string that would even be accepted as a task token: nothing may answer it
    seen: list[Any] = []

    def charge(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return {"charged": payload["token"]}

    handler = make(sfn, charge)
    event = {"token": card_token, "amount": 12, "context": {"Task": {"Token": task_token}, "Execution": {"Id": "e"}}}

    # WHEN it is handled
    handler(event, FakeLambdaContext())

    # THEN the task token is the one answered, and the card token reached the function untouched
    assert sfn.outcome(task_token) == ("success", {"charged": card_token})
    assert sfn.calls_for(card_token) == []
    assert seen == [{"token": card_token, "amount": 12, "context": {"Task": {}, "Execution": {"Id": "e"}}}]


def test_every_copy_of_the_task_token_is_stripped() -> None:
    # GIVEN a message holding the token in several places, nested ones and a list included
    tok = "tok-" + "x" * 40
    event = {
        "TaskToken": tok,
        "context": {"Task": {"Token": tok}, "Execution": {"Id": EXECUTION}},
        "input": {"callback": tok, "items": [{"t": tok, "n": 1}], "keep": "other"},
    }
    before = json.dumps(event)
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN the token is found, no copy of it reaches the function, everything else does, and the event is unchanged
    assert record.token == tok
    assert tok not in json.dumps(record.payload)
    assert record.payload["input"] == {"items": [{"n": 1}], "keep": "other"}
    assert record.execution_arn == EXECUTION
    assert json.dumps(event) == before


def test_payload_path_object_is_stripped_too() -> None:
    # GIVEN a payload_path whose object also carries the token
    [record] = parse_event({"TaskToken": "t", "Record": {"id": 3, "TaskToken": "t"}}, payload_path="Record")
    # THEN the function gets it without the token
    assert record.payload == {"id": 3}


# --- SNS ----------------------------------------------------------------------------------------------------------


def test_sns_record_is_parsed_from_its_message_string() -> None:
    # GIVEN the event an SNS-subscribed Lambda receives from sns:publish.waitForTaskToken
    event = sns_event({"TaskToken": "sns-tok", "order": 7})
    # WHEN it is parsed
    [record] = parse_event(event)
    # THEN the source is sns, the record id is the SNS message id, and the payload is the message minus the token
    assert (record.source, record.token, record.payload) == ("sns", "sns-tok", {"order": 7})
    assert record.record_id == event["Records"][0]["Sns"]["MessageId"]
    assert record.envelope is None


def test_sns_handler_answers_and_raises_when_nothing_can_be_answered(sfn: FakeStepFunctions) -> None:
    # GIVEN a handler and an open task
    token = sfn.open_task()
    handler = make(sfn, lambda p: {"notified": p["user"]})
    # WHEN an SNS event carries its token / THEN it is answered and the handler returns nothing
    assert handler(sns_event({"TaskToken": token, "user": "u1"}), FakeLambdaContext()) is None
    assert sfn.outcome(token) == ("success", {"notified": "u1"})
    # WHEN an SNS message has no token, or is not JSON / THEN it is raised, so Lambda retries it, then its DLQ
    with pytest.raises(ck.MissingTokenError, match="no task token"):
        handler(sns_event({"user": "u1"}), FakeLambdaContext())
    with pytest.raises(ck.MissingTokenError, match="not valid JSON"):
        handler(sns_event("plain text, not JSON"), FakeLambdaContext())
    # WHEN the callback cannot be delivered / THEN that is raised too
    other = sfn.open_task()
    sfn.inject("SendTaskSuccess", "InternalFailure", times=99)
    with pytest.raises(ck.CallbackDeliveryError):
        handler(sns_event({"TaskToken": other, "user": "u2"}), FakeLambdaContext())
    assert sfn.outcome(other) is None


def test_forced_sns_source(sfn: FakeStepFunctions) -> None:
    # GIVEN source="sns" forced on events that are not SNS events
    handler = make(sfn, lambda p: None, source="sns")
    # WHEN / THEN no Records: a clear error; a record without an Sns object: nothing to answer, raised
    with pytest.raises(MalformedEventError, match="Records"):
        handler({"token": "t"}, FakeLambdaContext())
    with pytest.raises(ck.MissingTokenError, match="no Sns object"):
        handler(sqs_event({"TaskToken": "t"}), FakeLambdaContext())
    assert sfn.calls == []


# --- envelopes in SQS bodies --------------------------------------------------------------------------------------


def test_sqs_body_holding_an_sns_notification_is_unwrapped(sfn: FakeStepFunctions) -> None:
    # GIVEN an SNS topic delivering to the queue without RawMessageDelivery
    token = sfn.open_task()
    seen: list[tuple[Any, str | None, str | None]] = []

    def work(payload: Any) -> dict[str, Any]:
        task = ck.current_task()
        seen.append((payload, task.envelope, task.record_id))
        return {"ok": True}

    event = sqs_event({"TaskToken": token, "order": 7}, envelope="sns")
    # WHEN it is handled
    response = make(sfn, work)(event, FakeLambdaContext())
    # THEN the message inside the notification ran, current_task() says it was unwrapped, the SQS id is kept
    assert response == {"batchItemFailures": []}
    assert sfn.outcome(token) == ("success", {"ok": True})
    assert seen == [({"order": 7}, "sns", event["Records"][0]["messageId"])]


def test_sqs_body_holding_an_eventbridge_event_is_unwrapped(sfn: FakeStepFunctions) -> None:
    # GIVEN an EventBridge rule targeting the queue: the body is the whole event, the message is its detail
    token = sfn.open_task()
    seen: list[tuple[Any, str | None, str | None]] = []

    def work(payload: Any) -> None:
        task = ck.current_task()
        seen.append((payload, task.envelope, task.execution_arn))

    event = sqs_event(eventbridge_event({"TaskToken": token, "user": "u1"}, execution_arn=EXECUTION))
    # WHEN it is handled
    response = make(sfn, work)(event, FakeLambdaContext())
    # THEN the detail ran, with the execution ARN from the event's resources
    assert response == {"batchItemFailures": []}
    assert sfn.outcome(token) == ("success", None)
    assert seen == [({"user": "u1"}, "eventbridge", EXECUTION)]
    # AND the builder's envelope option makes the same body
    [record] = parse_event(sqs_event({"TaskToken": "t"}, envelope="eventbridge"))
    assert (record.token, record.envelope) == ("t", "eventbridge")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({**sns_notification("{}"), "Message": "not json"}, "Message is not valid JSON"),
        (sns_notification({"order": 7}), "no task token"),
        ({k: v for k, v in eventbridge_event({}).items() if k != "detail"}, "no detail"),
        (eventbridge_event({"user": "u1"}), "no task token"),
    ],
    ids=["sns-not-json", "sns-no-token", "eventbridge-no-detail", "eventbridge-no-token"],
)
def test_unusable_envelopes_are_handed_back(sfn: FakeStepFunctions, body: dict[str, Any], problem: str) -> None:
    # GIVEN a good record and one whose envelope holds nothing answerable
    token = sfn.open_task()
    event = sqs_event({"TaskToken": token}, body)
    # WHEN the batch is handled
    response = make(sfn, lambda p: None)(event, FakeLambdaContext())
    # THEN only the bad record goes back, and the parsed record says why
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert sfn.outcome(token) == ("success", None)
    record = parse_event(event)[1]
    assert record.problem is not None
    assert problem in record.problem


def test_look_alike_bodies_are_not_unwrapped() -> None:
    # GIVEN business messages that merely share a key with an envelope
    [a, b] = parse_event(sqs_event({"TaskToken": "a", "Type": "Notification", "Message": "{}"}, {"TaskToken": "b"}))
    # THEN they are the message themselves
    assert (a.token, a.envelope, a.payload) == ("a", None, {"Type": "Notification", "Message": "{}"})
    assert (b.token, b.envelope) == ("b", None)


def test_a_token_path_into_the_envelope_keeps_the_body_whole() -> None:
    # GIVEN a handler configured before envelopes were unwrapped, with paths into the EventBridge event
    event = sqs_event(eventbridge_event({"cb": "t", "user": "u1"}))
    # WHEN it is parsed with those paths
    [record] = parse_event(event, token_path="detail.cb", payload_path="detail")
    # THEN they still work; without the outer path, the path is relative to the unwrapped message
    assert (record.token, record.payload, record.envelope) == ("t", {"user": "u1"}, None)
    [inner] = parse_event(event, token_path="cb")
    assert (inner.token, inner.payload, inner.envelope) == ("t", {"user": "u1"}, "eventbridge")


# --- batch shapes and unknown shapes ------------------------------------------------------------------------------


def test_empty_sqs_batch_answers_no_failures(sfn: FakeStepFunctions) -> None:
    # GIVEN / WHEN an empty batch / THEN an empty list of failures, and no call
    assert make(sfn, lambda p: None)({"Records": []}, FakeLambdaContext()) == {"batchItemFailures": []}
    assert make(sfn, lambda p: None, source="sqs")({"Records": []}, FakeLambdaContext()) == {"batchItemFailures": []}
    assert sfn.calls == []


@pytest.mark.parametrize(
    ("event", "says"),
    [
        ({"order": 7, "user": "u1"}, "an object with keys ['order', 'user']"),
        ({}, "an empty object"),
        ({"Records": [{"eventSource": "aws:s3"}]}, "eventSource 'aws:s3'"),
        ({"Records": ["x"]}, "Records holds 1 record(s): a str"),
        ([1, 2], "a list of 2 item(s)"),
        ("text", "a str"),
        (None, "a NoneType"),
    ],
)
def test_an_event_of_no_known_shape_says_what_arrived(sfn: FakeStepFunctions, event: Any, says: str) -> None:
    # GIVEN an event that is no SQS/SNS batch, no EventBridge event and has no token anywhere
    handler = make(sfn, lambda p: None)
    # WHEN it is handled / THEN MalformedEventError names what arrived, and nothing was sent
    with pytest.raises(MalformedEventError) as raised:
        handler(event, FakeLambdaContext())
    assert says in str(raised.value)
    assert "no known shape" in str(raised.value)
    assert sfn.calls == []


def test_the_description_names_keys_never_values() -> None:
    # GIVEN an unknown event whose values may be secret, and very many keys
    event = {"callback": "secret-value", **{f"k{i}": i for i in range(30)}}
    # WHEN it is described / THEN no value appears, and the key list is bounded
    text = describe_event(event)
    assert "secret-value" not in text
    assert "'callback'" in text
    assert "and 11 more" in text


def test_forced_direct_source_keeps_reporting_a_missing_token(sfn: FakeStepFunctions) -> None:
    # GIVEN source="direct" forced on a payload without a token
    # WHEN it is handled / THEN it is a missing token, as before shape detection refused unknown shapes
    with pytest.raises(ck.MissingTokenError, match="no task token"):
        make(sfn, lambda p: None, source="direct")({"order": 7}, FakeLambdaContext())


def test_a_token_path_makes_a_direct_payload(sfn: FakeStepFunctions) -> None:
    # GIVEN a handler with a token_path and a payload holding it
    token = sfn.open_task()
    handler = make(sfn, lambda p: p, token_path="meta.cb")
    # WHEN it is handled / THEN it is a direct payload, answered with the rest of it
    handler({"meta": {"cb": token}, "n": 1}, FakeLambdaContext())
    assert sfn.outcome(token) == ("success", {"meta": {}, "n": 1})
    # AND without it there, the event has no known shape, and the path is named in the error
    with pytest.raises(MalformedEventError, match=r"meta\.cb"):
        handler({"n": 1}, FakeLambdaContext())
