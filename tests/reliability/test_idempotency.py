"""Duplicate delivery with the idempotency option, on moto's DynamoDB: side effects run once per task token."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

import callback_kit as ck
from callback_kit.exceptions import ERROR_OUTPUT_TOO_LARGE
from callback_kit.idempotency import Idempotency
from callback_kit.testing import FakeLambdaContext
from tests.reliability.harness import (
    LambdaSource,
    ScriptedStepFunctions,
    another_sandbox,
    build_event,
    check_task_invariant,
    invoke,
    new_token,
    no_sleep_policy,
)

TABLE = "callback-kit-idempotency"


@pytest.fixture(scope="module")
def _moto_table() -> Iterator[str]:
    # One mocked account and table for the module: moto's start-up costs more than the tests themselves.
    with mock_aws():
        boto3.client("dynamodb", region_name="us-east-1").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield TABLE
    CLIENT.clear()


@pytest.fixture
def table(_moto_table: str, request: pytest.FixtureRequest) -> str:
    """The table, and a key prefix of this test's own (``PREFIX``) so that tests see only their records."""
    PREFIX[0] = request.node.name
    return _moto_table


PREFIX = [""]
CLIENT: list[Any] = []


def idem(table: str) -> Idempotency:
    if not CLIENT:  # one client for the module: building one costs more than a test
        CLIENT.append(boto3.client("dynamodb", region_name="us-east-1"))
    return Idempotency(table_name=table, key_prefix=PREFIX[0], boto3_client=CLIENT[0])


def _scan(table: str) -> list[dict[str, Any]]:
    items = CLIENT[0].scan(TableName=table)["Items"]
    return [i for i in items if i["id"]["S"].startswith(PREFIX[0] + "#")]


class SideEffects:
    """A user function that counts its runs (its 'side effects')."""

    def __init__(self, result: Any = None, raises: BaseException | None = None) -> None:
        self.runs = 0
        self.result = result
        self.raises = raises

    def __call__(self, payload: dict[str, Any]) -> Any:
        self.runs += 1
        if self.raises is not None:
            raise self.raises
        return self.result if self.result is not None else {"charged": payload["amount"]}


SOURCES: tuple[LambdaSource, ...] = ("sqs", "fifo", "eventbridge", "direct")


@pytest.mark.parametrize("source", SOURCES)
def test_duplicate_after_completion_does_not_run_the_function_again(table: str, source: LambdaSource) -> None:
    # GIVEN a handler with idempotency on, and a message that was handled once
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    work = SideEffects()
    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=idem(table))(
        work
    )
    event, _ = build_event(source, [{"TaskToken": token, "amount": 5}])
    first = invoke(fake, handler, event, FakeLambdaContext())

    # WHEN the same message arrives again, at another sandbox (this one's ledger would acknowledge it unrun)
    another_sandbox(fake)
    second = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the function ran once; the duplicate re-sent the stored result, was answered "closed", and was acknowledged
    assert work.runs == 1
    assert [(c.api, c.result) for c in second.calls] == [("SendTaskSuccess", "TaskTimedOut")]
    assert second.calls[0].params["output"] == first.calls[0].params["output"]
    assert second.raised is None
    assert not second.redelivered_ids
    assert check_task_invariant(fake, token, [first, second], [False, False]) == "success"
    # AND the store keys the record by a hash of the token; the token itself is stored nowhere
    items = _scan(table)
    assert len(items) == 1
    assert token not in repr(items)


def test_redelivery_after_an_undeliverable_callback_sends_the_stored_result(table: str) -> None:
    # GIVEN a task whose function ran but whose success could not be delivered (Step Functions unreachable)
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    work = SideEffects()
    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(3), heartbeat_interval=0, idempotency=idem(table))(
        work
    )
    fake.inject("SendTaskSuccess", "ServiceUnavailable", times=3)
    event, _ = build_event("sqs", [{"TaskToken": token, "amount": 9}])
    first = invoke(fake, handler, event, FakeLambdaContext())

    # WHEN SQS redelivers the message
    second = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the first delivery handed it back; the second delivered the stored result without running the function
    assert first.redelivered_ids
    assert not second.redelivered_ids
    assert work.runs == 1
    assert fake.outcome(token) == ("success", {"charged": 9})
    assert check_task_invariant(fake, token, [first, second], [True, False]) == "success"


def test_a_function_that_raised_runs_again_on_redelivery(table: str) -> None:
    # GIVEN a function that raised: its task got a failure callback, and powertools kept no record of the run
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    work = SideEffects(raises=ck.TaskFailed("card declined", error="Payment.Declined"))
    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=idem(table))(
        work
    )
    event, _ = build_event("sqs", [{"TaskToken": token, "amount": 1}])
    first = invoke(fake, handler, event, FakeLambdaContext())

    # WHEN the message is delivered again, to another sandbox
    another_sandbox(fake)
    second = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the failure is the one outcome; the duplicate ran the function again and its answer was "closed"
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", "Payment.Declined")
    assert outcome[2] == "card declined"
    assert work.runs == 2
    assert [(c.api, c.result) for c in second.calls] == [("SendTaskFailure", "TaskTimedOut")]
    assert check_task_invariant(fake, token, [first, second], [False, False]) == "failure"
    assert _scan(table) == []


@pytest.mark.parametrize("source", SOURCES)
def test_duplicate_while_the_first_still_runs_is_handed_back(table: str, source: LambdaSource) -> None:
    # GIVEN a duplicate of a message that arrives while the first delivery's function is still running
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    event, _ = build_event(source, [{"TaskToken": token, "amount": 3}])
    inner: list[Any] = []

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        if not inner:
            inner.append(invoke(fake, handler, event, FakeLambdaContext()))  # the duplicate, concurrently
        return {"charged": payload["amount"]}

    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=idem(table))(
        work
    )

    # WHEN the first delivery runs
    first = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the duplicate sent nothing (no failure for a task being worked on) and was handed back for redelivery
    duplicate = inner[0]
    assert [c for c in duplicate.calls if c.token == token] == []
    if source in ("sqs", "fifo"):
        assert len(duplicate.redelivered_ids) == 1
    else:
        assert isinstance(duplicate.raised, ck.CallbackDeliveryError)
    # AND the first delivery answered the task
    assert check_task_invariant(fake, token, [duplicate, first], [True, False]) == "success"


def test_store_unreachable_hands_the_message_back_without_running(table: str) -> None:
    # GIVEN an idempotency table that does not exist (DynamoDB unreachable or misconfigured)
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    work = SideEffects()
    handler = ck.callback_handler(
        client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=Idempotency(table_name="missing")
    )(work)
    event, _ = build_event("sqs", [{"TaskToken": token, "amount": 3}])

    # WHEN the message is handled
    delivery = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the function did not run, nothing was sent, and the message goes back (to the DLQ in the end)
    assert work.runs == 0
    assert delivery.calls == []
    assert check_task_invariant(fake, token, [delivery], [bool(delivery.redelivered_ids)]) == "redelivered"


def test_an_output_too_large_fails_the_task_as_without_idempotency(table: str) -> None:
    # GIVEN a function whose result is over Step Functions' 256 KiB output limit
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    work = SideEffects(result={"blob": "x" * 300_000})
    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=idem(table))(
        work
    )
    event, _ = build_event("direct", [{"TaskToken": token, "amount": 3}])

    # WHEN it is handled
    delivery = invoke(fake, handler, event, FakeLambdaContext())

    # THEN the task fails with the documented error, and no result was stored for a later duplicate to replay
    assert delivery.raised is None
    assert fake.outcome(token)[:2] == ("failure", ERROR_OUTPUT_TOO_LARGE)  # type: ignore[index]
    assert _scan(table) == []


def test_idempotency_options_are_checked() -> None:
    # GIVEN / WHEN / THEN exactly one store must be named, and records must expire
    with pytest.raises(ValueError, match="exactly one"):
        Idempotency()
    with pytest.raises(ValueError, match="positive"):
        Idempotency(table_name=TABLE, expires_after_seconds=0)


def test_idempotency_is_imported_lazily() -> None:
    # GIVEN a fresh interpreter
    code = (
        "import sys, callback_kit, callback_kit.idempotency, callback_kit.handler\n"
        "print('aws_lambda_powertools.utilities.idempotency' in sys.modules)"
    )
    # WHEN callback_kit and its idempotency module are imported, and a handler is declared with the option
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout  # noqa: S603

    # THEN powertools' idempotency utility is not loaded: a cold start without the option does not pay for it
    assert out.strip() == "False"


def test_an_async_function_runs_once_and_its_result_is_stored(table: str) -> None:
    # GIVEN an async function behind idempotency, and a message handled twice
    fake = ScriptedStepFunctions()
    token = new_token(fake)
    runs: list[int] = []

    async def charge(payload: dict[str, Any]) -> dict[str, Any]:
        runs.append(1)
        return {"charged": payload["amount"]}

    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(
        client=fake, retry=no_sleep_policy(), heartbeat_interval=0, idempotency=idem(table)
    )(charge)
    event, _ = build_event("direct", [{"TaskToken": token, "amount": 5}])
    invoke(fake, handler, event, FakeLambdaContext())
    invoke(fake, handler, event, FakeLambdaContext())
    # THEN it ran once and its awaited result is the output (not an unserialisable coroutine)
    assert runs == [1]
    assert fake.outcome(token) == ("success", {"charged": 5})
