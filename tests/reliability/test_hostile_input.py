"""Hostile input: messages nested past any reader's depth, and event shapes that imitate other sources.

A message that cannot be read is contained to its own record: handed back when no token can be read from it,
answered with ``CallbackKit.MalformedMessage`` when its token is known (activity tasks, direct invokes). It never
raises out of the handler or the worker, whatever depth the interpreter's JSON decoder reaches on this Python.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.activity import ActivityWorker, PollBackoff
from callback_kit.exceptions import ERROR_MALFORMED_MESSAGE
from callback_kit.sources import parse_event
from callback_kit.sources.depth import MAX_DEPTH
from callback_kit.task.runner import Status
from callback_kit.testing import FakeStepFunctions, eventbridge_event, sqs_event
from tests.reliability.harness import ScriptedStepFunctions, invoke, new_token, no_sleep_policy

ARN = "arn:aws:states:us-east-1:123456789012:activity:hostile"


def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def deep_object_with_token(depth: int, token: str) -> str:
    """A message holding the token at the top and again ``depth`` levels down (so it must be searched)."""
    inner: dict[str, Any] = {"TaskToken": token}
    for _ in range(depth):
        inner = {"a": inner}
    return json.dumps({"TaskToken": token, "nested": inner})


def _handler(fake: ScriptedStepFunctions, **options: Any) -> ck.CallbackHandler[Any, Any]:
    def work(payload: Any) -> Any:
        return {"seen": True}

    return ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, **options)(work)


@pytest.mark.parametrize("shape", ["array-3000", "object-600-token-twice"])
def test_a_deep_sqs_record_is_handed_back_alone(shape: str) -> None:
    # GIVEN a standard-queue batch: a good record, a deeply nested one, another good record
    fake = ScriptedStepFunctions()
    good = [new_token(fake), new_token(fake)]
    deep = deep_array(3000) if shape == "array-3000" else deep_object_with_token(600, new_token(fake))
    event = sqs_event({"TaskToken": good[0]}, deep, {"TaskToken": good[1]})
    deep_id = event["Records"][1]["messageId"]

    # WHEN the batch is handled
    delivery = invoke(fake, _handler(fake), event)

    # THEN nothing escaped: the deep record alone is handed back, and the others are answered
    assert delivery.raised is None
    assert delivery.redelivered_ids == {deep_id}
    assert [fake.outcome(t) for t in good] == [("success", {"seen": True})] * 2


def test_a_deep_fifo_record_stops_its_own_group_only() -> None:
    # GIVEN a FIFO batch: group A holds a good record, the deep one, then a later one; group B one good record
    fake = ScriptedStepFunctions()
    first, later, other = new_token(fake), new_token(fake), new_token(fake)
    messages = [{"TaskToken": first}, deep_object_with_token(600, new_token(fake)), {"TaskToken": later}]
    messages.append({"TaskToken": other})
    event = sqs_event(*messages, fifo=True, group_id=lambda i: "B" if i == 3 else "A")
    ids = [r["messageId"] for r in event["Records"]]

    # WHEN the batch is handled
    delivery = invoke(fake, _handler(fake), event)

    # THEN the deep record and the later record of its group are handed back; the rest are answered
    assert delivery.raised is None
    assert delivery.redelivered_ids == {ids[1], ids[2]}
    assert fake.outcome(first) == fake.outcome(other) == ("success", {"seen": True})
    assert fake.outcome(later) is None


@pytest.mark.parametrize("source", ["direct", "eventbridge"])
def test_a_deep_single_event_with_a_readable_token_is_failed_as_malformed(source: str) -> None:
    # GIVEN an event (decoded by Lambda already) whose token sits at the top and again far down
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    message = json.loads(deep_object_with_token(MAX_DEPTH + 50, token))
    event = message if source == "direct" else eventbridge_event(message)

    # WHEN it is handled
    delivery = invoke(fake, _handler(fake), event)

    # THEN the task is answered with the documented error instead of a RecursionError escaping
    assert delivery.raised is None
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", ERROR_MALFORMED_MESSAGE)


def test_a_message_at_the_depth_limit_is_read() -> None:
    # GIVEN a message exactly MAX_DEPTH levels deep that holds its token twice (so every level is searched)
    token = "tok-at-the-limit"
    body = deep_object_with_token(MAX_DEPTH - 2, token)

    # WHEN it is parsed / THEN it is an ordinary record, both copies of the token removed
    [record] = parse_event(sqs_event(body))
    assert record.token == token
    assert record.problem is None
    assert token not in json.dumps(record.payload)


@pytest.mark.parametrize("depth", [600, 3000])
def test_an_activity_task_with_deep_input_is_answered_and_counted(depth: int) -> None:
    # GIVEN an activity task whose input nests far too deeply
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    token = fake.add_activity_task(ARN, '{"a": ' * depth + "1" + "}" * depth)
    worker = ActivityWorker(
        ARN, lambda payload: payload, client=fake, heartbeat_interval=0, backoff=PollBackoff(min_poll_seconds=0.0)
    )

    # WHEN the worker takes it
    result = worker.run_one(fake.get_activity_task(activityArn=ARN))

    # THEN it is failed with the documented error, and the stats count it
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", ERROR_MALFORMED_MESSAGE)
    assert result.status is Status.FAILED
    assert (worker.stats.started, worker.stats.failed) == (1, 1)


def test_token_path_that_resolves_at_the_top_makes_a_direct_payload() -> None:
    # GIVEN a direct payload that happens to carry "source" and "detail-type" keys, and a handler told where its
    # token is
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    event = {"TaskToken": token, "source": "shop", "detail-type": "order", "n": 1}

    # WHEN it is handled
    delivery = invoke(fake, _handler(fake, token_path="TaskToken"), event)

    # THEN it is read as the direct payload it is, not as an EventBridge envelope missing its detail
    assert delivery.raised is None
    assert fake.outcome(token) == ("success", {"seen": True})


def test_token_path_inside_the_detail_still_reads_an_eventbridge_event() -> None:
    # GIVEN an EventBridge event whose detail holds the token at token_path
    fake = ScriptedStepFunctions()
    token = new_token(fake)

    # WHEN it is handled / THEN the path is looked up in the detail, as before
    delivery = invoke(fake, _handler(fake, token_path="MyToken"), eventbridge_event({"MyToken": token}))
    assert delivery.raised is None
    assert fake.outcome(token) == ("success", {"seen": True})
