"""Bad input: every malformed event reaches a defined end, and one bad record never sinks the rest of its batch.

Defined ends: a record with a usable token gets a failure callback with a documented ``CallbackKit.*`` error; a
record without one is handed back for redelivery (SQS batch item failure; a raised ``MissingTokenError`` for
EventBridge and direct invokes) and logged with its message id.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import callback_kit as ck
from callback_kit.exceptions import ERROR_INVALID_PAYLOAD, ERROR_MALFORMED_MESSAGE, MalformedEventError
from callback_kit.sources import MAX_TOKEN_CHARS
from callback_kit.testing import eventbridge_event, sqs_event
from tests.reliability.harness import ScriptedStepFunctions, captured_logs, invoke, new_token, no_sleep_policy

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
TOKEN_KEYS = st.sampled_from(["TaskToken", "taskToken", "token", "MyTaskToken"])
#: Exceptions that are a defined end for a single-task event (Lambda retries it, then its DLQ / destination);
#: MalformedEventError: an event of no known shape (no batch, no envelope, no token anywhere).
DEFINED_RAISES = (ck.MissingTokenError, ck.CallbackDeliveryError, MalformedEventError)


class Order(BaseModel):
    total: int


def _handler(fake: ScriptedStepFunctions, **options: Any) -> ck.CallbackHandler[Any, Any]:
    def work(payload: Any) -> Any:
        return {"seen": True}

    return ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, **options)(work)


def _sqs(bodies: list[Any]) -> dict[str, Any]:
    """An SQS event whose bodies are set as given, even when no real queue would produce them."""
    event = sqs_event(*["{}"] * len(bodies))
    for record, body in zip(event["Records"], bodies, strict=True):
        record["body"] = body
    return event


@FUZZ
@given(event=JSON | st.fixed_dictionaries({"Records": st.lists(JSON, max_size=3)}, optional={"detail": JSON}))
def test_arbitrary_json_reaches_a_defined_end(event: Any) -> None:
    # GIVEN any JSON value as the Lambda event
    fake = ScriptedStepFunctions()
    handler = _handler(fake)

    # WHEN it is handled
    delivery = invoke(fake, handler, event)

    # THEN the handler answered (SQS shape) or raised one of the documented errors; nothing else escaped
    if delivery.raised is not None:
        assert isinstance(delivery.raised, DEFINED_RAISES), repr(delivery.raised)
    else:
        assert delivery.response is None or "batchItemFailures" in delivery.response


# One bad SQS body, and whether it still carries a usable token (then it is answered with a failure callback).
BAD_BODIES: dict[str, tuple[Any, bool]] = {
    "truncated-json": ('{"TaskToken": "AQB', False),
    "not-utf8-latin1-mojibake": (bytes(range(128, 160)).decode("latin-1"), False),
    "not-utf8-lone-surrogate": ('{"n": "\udcff"', False),
    "body-is-bytes": (b'{"TaskToken": "x"}', False),
    "body-is-int": (42, False),
    "body-is-null": (None, False),
    "body-is-object-not-string": ({"TaskToken": "x"}, False),
    "json-array": ("[1, 2, 3]", False),
    "json-string": ('"TaskToken"', False),
    "no-token": ('{"total": 3}', False),
    "token-is-number": ('{"TaskToken": 123}', False),
    "token-is-object": ('{"TaskToken": {"a": 1}}', False),
    "token-0-chars": ('{"TaskToken": ""}', False),
    "token-3000-chars": (json.dumps({"TaskToken": "A" * 3000}), False),
    "payload-wrong-type": ("OPEN_TOKEN_WITH_BAD_PAYLOAD", True),
}


@pytest.mark.parametrize("bad", list(BAD_BODIES), ids=list(BAD_BODIES))
@pytest.mark.parametrize("position", [0, 1, 2], ids=["first", "middle", "last"])
@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
def test_one_bad_sqs_record_does_not_sink_the_batch(bad: str, position: int, fifo: bool) -> None:
    # GIVEN a batch of good records with one bad body among them
    fake = ScriptedStepFunctions()
    handler = _handler(fake, model=Order)
    good = [new_token(fake) for _ in range(2)]
    body, answerable = BAD_BODIES[bad]
    bad_token = new_token(fake)
    if body == "OPEN_TOKEN_WITH_BAD_PAYLOAD":
        body = json.dumps({"TaskToken": bad_token, "total": "three"})
    bodies: list[Any] = [json.dumps({"TaskToken": t, "total": i}) for i, t in enumerate(good)]
    bodies.insert(position, body)
    event = _sqs(bodies)
    if fifo:
        for record in event["Records"]:
            record["eventSourceARN"] += ".fifo"
            record["attributes"]["MessageGroupId"] = record["messageId"]  # one group each: no ordering tie
    bad_id = event["Records"][position]["messageId"]

    # WHEN the batch is handled
    with captured_logs() as logs:
        delivery = invoke(fake, handler, event)

    # THEN nothing escaped, and every good record got its success (FIFO: or, if the batch stopped at the bad
    # record before it started, was handed back with it, as Lambda requires for FIFO queues)
    assert delivery.raised is None
    good_ids = [r["messageId"] for r in event["Records"] if r["messageId"] != bad_id]
    for token, record_id in zip(good, good_ids, strict=True):
        if fifo and record_id in delivery.redelivered_ids:
            assert fake.outcome(token) is None
        else:
            assert fake.outcome(token) == ("success", {"seen": True})
    if answerable:
        # AND a bad record with a token got a failure callback with the documented error, and is acknowledged
        outcome = fake.outcome(bad_token)
        assert outcome is not None
        assert outcome[1] == ERROR_INVALID_PAYLOAD
        assert delivery.redelivered_ids == set()
    else:
        # AND a bad record without a usable token is handed back, and its message id is in the log
        assert bad_id in delivery.redelivered_ids
        assert fifo or delivery.redelivered_ids == {bad_id}
        assert any(getattr(r, "record_id", None) == bad_id for r in logs.records)
        assert [c for c in delivery.calls if c.token not in good] == []


@pytest.mark.parametrize(
    ("token", "problem"),
    [("", "not a non-empty string"), ("A" * 3000, f"at most {MAX_TOKEN_CHARS}")],
    ids=["0-chars", "3000-chars"],
)
@pytest.mark.parametrize("source", ["eventbridge", "direct"])
def test_unusable_token_on_single_invokes_raises_missing_token(token: str, problem: str, source: str) -> None:
    # GIVEN an EventBridge or direct event whose token is empty or longer than Step Functions' tokens
    fake = ScriptedStepFunctions()
    event = eventbridge_event({"TaskToken": token}) if source == "eventbridge" else {"token": token, "n": 1}

    # WHEN it is handled
    with captured_logs() as logs:
        delivery = invoke(fake, _handler(fake), event)

    # THEN no call was made; MissingTokenError tells Lambda to retry and then dead-letter it; the log says why
    assert delivery.calls == []
    assert isinstance(delivery.raised, ck.MissingTokenError)
    assert problem in str(delivery.raised)
    assert any(problem in str(getattr(r, "problem", "")) for r in logs.records)


def test_eventbridge_envelope_without_detail_is_logged_with_its_event_id() -> None:
    # GIVEN an EventBridge envelope that lost its detail
    fake = ScriptedStepFunctions()
    event = eventbridge_event({})
    del event["detail"]

    # WHEN it is handled
    with captured_logs() as logs:
        delivery = invoke(fake, _handler(fake), event)

    # THEN it is refused for redelivery (Lambda's async retries, then the DLQ) and its event id is in the log
    assert isinstance(delivery.raised, ck.MissingTokenError)
    assert "no detail" in str(delivery.raised)
    assert any(getattr(r, "record_id", None) == event["id"] for r in logs.records)


def test_forced_sqs_source_with_a_non_object_record_keeps_the_rest_of_the_batch() -> None:
    # GIVEN source="sqs" forced, and a batch in which one record is not an object
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    event = sqs_event({"TaskToken": token})
    event["Records"].insert(0, "not a record")

    # WHEN it is handled
    delivery = invoke(fake, _handler(fake, source="sqs"), event)

    # THEN the good record is answered; the bad one, having no message id, is reported with an empty id, which
    # makes Lambda retry the whole batch (the only way to redeliver it); the good one is then answered "closed"
    assert delivery.raised is None
    assert fake.outcome(token) == ("success", {"seen": True})
    assert delivery.response == {"batchItemFailures": [{"itemIdentifier": ""}]}


def test_payload_path_missing_fails_the_task_with_malformed_message() -> None:
    # GIVEN a handler that reads its payload at a path the message does not have
    fake = ScriptedStepFunctions()
    token = new_token(fake)

    # WHEN the message is handled
    delivery = invoke(fake, _handler(fake, payload_path="Record"), {"token": token, "other": 1})

    # THEN the task is answered with the documented error rather than left waiting
    assert delivery.raised is None
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_MALFORMED_MESSAGE


def test_forced_source_that_does_not_fit_is_a_clear_error() -> None:
    # GIVEN / WHEN a forced source the event does not have / THEN MalformedEventError, before any call
    fake = ScriptedStepFunctions()
    delivery = invoke(fake, _handler(fake, source="eventbridge"), {"token": "t"})
    assert isinstance(delivery.raised, MalformedEventError)
    assert delivery.calls == []


@FUZZ
@given(
    key=TOKEN_KEYS,
    extra=st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("TaskToken", "taskToken")), JSON, max_size=3),
    cut=st.integers(min_value=1, max_value=60),
)
def test_truncated_sqs_bodies_never_escape(key: str, extra: dict[str, Any], cut: int) -> None:
    # GIVEN a good record and one whose body was cut short at a random point
    fake = ScriptedStepFunctions()
    good = new_token(fake)
    body = json.dumps({key: new_token(fake), **extra})
    event = _sqs([json.dumps({"TaskToken": good}), body[: max(1, len(body) - cut)]])

    # WHEN the batch is handled
    delivery = invoke(fake, _handler(fake), event)

    # THEN the good record is answered whatever the cut, and the cut one is either handed back or (if the cut
    # left valid JSON with its token, e.g. only trailing keys lost) answered
    assert delivery.raised is None
    assert fake.outcome(good) == ("success", {"seen": True})
    cut_id = event["Records"][1]["messageId"]
    assert cut_id in delivery.redelivered_ids or len(fake.applied) == 2
