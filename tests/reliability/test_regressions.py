"""Regression tests for the failure-path defects a schedule-driven review found (each failed before its fix).

The schedule explorer (tests/schedules) checks the invariants over thousands of random schedules; these tests pin
the specific interleavings that broke them, deterministically, so that a regression names its defect.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading
import time
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.exceptions import ERROR_LAMBDA_DEADLINE
from callback_kit.sources import parse_event
from callback_kit.task.completion import Completer, RetryPolicy
from callback_kit.task.heartbeat import HeartbeatScheduler
from callback_kit.task.runner import RunOptions, Status, TaskRun
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, client_error, direct_event, sqs_event

NO_SLEEP = RetryPolicy(sleep=lambda s: None, random=lambda: 0.5)


def ids(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


class _GuardRace(FakeStepFunctions):
    """SendTaskFailure waits until the function has returned, then is throttled: the guard's answer is lost."""

    returned: threading.Event

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        self.returned.wait(5)
        time.sleep(0.05)  # let the returning run() get as far as it can
        self.calls.append(_call("SendTaskFailure", taskToken, "ThrottlingException"))
        raise client_error("SendTaskFailure", "ThrottlingException")


def _call(api: str, token: str, result: str) -> Any:
    from callback_kit.testing import Call

    return Call(api, token, {}, result)


def test_a_run_claimed_by_expire_has_the_guards_result_not_closed() -> None:
    # GIVEN a run whose function returns while the guard's failure callback is still being (unsuccessfully) sent
    fake = _GuardRace()
    fake.returned = threading.Event()
    token = fake.open_task()
    [record] = parse_event({"token": token})
    go = threading.Event()

    def fn(payload: Any) -> dict[str, Any]:
        go.wait(5)
        fake.returned.set()
        return {"late": True}

    policy = RetryPolicy(max_attempts=1, sleep=lambda s: None)
    run = TaskRun(record, fn, RunOptions(), Completer(fake, policy), HeartbeatScheduler(start_thread=False))
    runner = threading.Thread(target=run.run)
    runner.start()
    while not run.started:
        time.sleep(0.001)
    # WHEN the guard expires it, and the function returns in the middle of that
    go.set()
    expired = run.expire(ERROR_LAMBDA_DEADLINE, "deadline")
    runner.join(5)
    # THEN the one result is the guard's: undeliverable, so the record is handed back (not acknowledged as CLOSED)
    assert expired is not None
    assert expired.status is Status.UNDELIVERABLE
    assert run.result is expired
    assert fake.outcome(token) is None


def test_completion_retries_stop_at_the_deadline_and_none_survives_the_return() -> None:
    # GIVEN a task that finishes at once but whose success is throttled every time, 1.5 s of Lambda left
    fake = FakeStepFunctions()
    token = fake.open_task()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=100)
    policy = RetryPolicy(max_attempts=50, base_delay=0.2, max_delay=0.2, random=lambda: 1.0)
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(
        client=fake, retry=policy, heartbeat_interval=0, deadline_margin=0.5
    )(lambda p: {"ok": True})
    event = sqs_event({"TaskToken": token})
    # WHEN it is handled
    started = time.monotonic()
    response = handler(event, FakeLambdaContext(remaining_ms=1500))
    elapsed = time.monotonic() - started
    calls = len(fake.calls_for(token))
    time.sleep(0.5)  # the "thaw": anything left running would call again now
    # THEN it returned before the Lambda's end, handed the record back, and made no call after returning
    assert elapsed < 1.5
    assert ids(response) == [event["Records"][0]["messageId"]]
    assert len(fake.calls_for(token)) == calls


def test_the_guard_fails_running_tasks_at_once_not_one_after_another() -> None:
    # GIVEN ten tasks still running at the deadline and 250 ms per Step Functions call, 3 s left, 2 s margin
    fake = FakeStepFunctions(latency=0.25)
    tokens = [fake.open_task() for _ in range(10)]
    release = threading.Event()
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(
        client=fake, retry=NO_SLEEP, heartbeat_interval=0, deadline_margin=2.0
    )(lambda p: release.wait(10))
    # WHEN the handler runs
    started = time.monotonic()
    response = handler(sqs_event(*({"TaskToken": t} for t in tokens)), FakeLambdaContext(remaining_ms=3000))
    elapsed = time.monotonic() - started
    release.set()
    # THEN every task got its deadline failure and the handler returned before the Lambda's end
    assert elapsed < 3.0
    assert ids(response) == []
    assert {fake.outcome(t)[1] for t in tokens} == {ERROR_LAMBDA_DEADLINE}  # type: ignore[index]


def test_a_hostile_exception_is_answered_with_its_class_name() -> None:
    # GIVEN a function raising an exception whose __str__ raises
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str for you")

    def fn(payload: Any) -> None:
        raise Hostile

    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN it runs
    response = ck.process_event(sqs_event({"TaskToken": token}), None, fn, client=fake, heartbeat_interval=0)
    # THEN the task is failed with the class name; the record is not sent back to run again
    assert response == {"batchItemFailures": []}
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[1] == "Hostile"
    assert "Hostile" in outcome[2]["errorMessage"]


def test_exception_group_members_are_in_the_cause() -> None:
    group = pytest.importorskip("builtins").__dict__.get("ExceptionGroup")
    if group is None:
        pytest.skip("ExceptionGroup is Python 3.11+")

    def fn(payload: Any) -> None:
        raise group("two checks failed", [ValueError("bad total"), KeyError("sku")])

    fake = FakeStepFunctions()
    token = fake.open_task()
    ck.process_event(direct_event(token), None, fn, client=fake, heartbeat_interval=0)
    cause = fake.outcome(token)[2]  # type: ignore[index]
    assert [(m["errorType"], m["errorMessage"]) for m in cause["exceptions"]] == [
        ("ValueError", "bad total"),
        ("KeyError", "'sku'"),
    ]


def test_a_huge_exception_message_is_cut_to_the_cause_limit() -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()

    def fn(payload: Any) -> None:
        raise ValueError("x" * 20_000_000)

    ck.process_event(direct_event(token), None, fn, client=fake, heartbeat_interval=0)
    [call] = fake.calls_for(token, "SendTaskFailure")
    cause = call.params["cause"]
    assert len(cause) <= 32_768
    assert json.loads(cause)["truncated"] is True


def test_fifo_poison_stops_only_its_own_group() -> None:
    # GIVEN a FIFO batch of two groups; group A's first record is not a token Step Functions issued
    fake = FakeStepFunctions()
    a2, b1, b2 = fake.open_task(), fake.open_task(), fake.open_task()
    messages = [{"TaskToken": "bogus-token"}, {"TaskToken": a2}, {"TaskToken": b1}, {"TaskToken": b2}]
    event = sqs_event(*messages, fifo=True, group_id=lambda i: "A" if i < 2 else "B")
    # WHEN the batch is handled
    response = ck.process_event(event, None, lambda p: "ok", client=fake, heartbeat_interval=0)
    # THEN group A stops at its poison record (both handed back, a2 never run); group B went on
    records = event["Records"]
    assert ids(response) == [records[0]["messageId"], records[1]["messageId"]]
    assert fake.outcome(a2) is None
    assert fake.outcome(b1) == fake.outcome(b2) == ("success", "ok")


def test_an_invalid_token_is_handed_back_and_logged_at_error(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeStepFunctions()
    event = sqs_event({"TaskToken": '"AQB-quoted-token"'})
    with caplog.at_level(logging.INFO):
        response = ck.process_event(event, None, lambda p: "ok", client=fake, heartbeat_interval=0)
    assert ids(response) == [event["Records"][0]["messageId"]]
    assert any(r.levelno == logging.ERROR and "not a task token" in r.getMessage() for r in caplog.records)


def test_an_invalid_token_on_a_direct_invoke_raises_for_redelivery() -> None:
    fake = FakeStepFunctions()
    with pytest.raises(ck.CallbackDeliveryError):
        ck.process_event(direct_event("AQB%2Burl-encoded"), None, lambda p: "ok", client=fake, heartbeat_interval=0)


def test_async_functions_run_and_their_result_is_the_output() -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()

    async def fn(payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"approved": payload["total"] < 100}

    ck.process_event(direct_event(token, {"total": 12}), None, fn, client=fake, heartbeat_interval=0)
    assert fake.outcome(token) == ("success", {"approved": True})


def test_an_async_function_that_raises_fails_the_task() -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()

    async def fn(payload: Any) -> None:
        raise ck.TaskFailed("no stock", error="Order.OutOfStock")

    ck.process_event(direct_event(token), None, fn, client=fake, heartbeat_interval=0)
    assert fake.outcome(token)[:2] == ("failure", "Order.OutOfStock")  # type: ignore[index]


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), asyncio.CancelledError()])
def test_base_exceptions_from_user_code_fail_the_task(exc: BaseException) -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()

    def fn(payload: Any) -> None:
        raise exc

    response = ck.process_event(sqs_event({"TaskToken": token}), None, fn, client=fake, heartbeat_interval=0)
    assert response == {"batchItemFailures": []}
    assert fake.outcome(token)[:2] == ("failure", type(exc).__name__)  # type: ignore[index]


def test_a_lambda_timeout_below_the_margin_does_not_fail_instant_tasks() -> None:
    # GIVEN a 1 s Lambda with the default 2 s margin
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN an instant task runs
    ck.process_event(
        sqs_event({"TaskToken": token}), FakeLambdaContext(remaining_ms=1000), lambda p: "done", client=fake
    )
    # THEN it succeeds: the margin shrank to a fraction of the time the invocation started with
    assert fake.outcome(token) == ("success", "done")


def test_manual_heartbeat_beats_when_automatic_heartbeats_are_off() -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()

    def fn(payload: Any) -> str:
        ck.heartbeat()
        ck.heartbeat()  # rate-limited: at most one a second
        return "ok"

    ck.process_event(direct_event(token), None, fn, client=fake, heartbeat_interval=0)
    assert fake.heartbeats(token) == 1


def test_manual_heartbeat_answered_closed_cancels_the_task() -> None:
    fake = FakeStepFunctions()
    token = fake.open_task()
    fake.inject("SendTaskHeartbeat", "TaskTimedOut")

    def fn(payload: Any) -> bool:
        ck.heartbeat()
        return ck.is_cancelled()

    ck.process_event(direct_event(token), None, fn, client=fake, heartbeat_interval=0)
    assert fake.calls_for(token, "SendTaskSuccess") == []


request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_context_variables_reach_functions_run_on_the_pool() -> None:
    # GIVEN a ContextVar set by the caller (tracing, log context) and a batch that runs on the pool
    fake = FakeStepFunctions()
    tokens = [fake.open_task() for _ in range(3)]
    request_id.set("req-42")
    # WHEN the batch runs under a Lambda context (so on the pool, with the deadline guard)
    ck.process_event(
        sqs_event(*({"TaskToken": t} for t in tokens)),
        FakeLambdaContext(),
        lambda p: request_id.get(),
        client=fake,
        heartbeat_interval=0,
    )
    # THEN every task saw the caller's value
    assert fake.outputs() == ["req-42"] * 3


def test_a_quoted_token_in_a_logged_request_body_is_redacted() -> None:
    # GIVEN botocore's DEBUG line for a request whose token someone JSON.stringify-ed (quotes inside the value)
    from callback_kit.logs import redact_tokens

    line = repr({"body": b'{"taskToken": "\\"AQBsecretToken\\""}'})
    # WHEN it is redacted / THEN the token is gone, its fingerprint stands in its place
    assert "AQBsecretToken" not in redact_tokens(line)
    assert "tok-" in redact_tokens(line)


def test_the_guard_does_not_wait_for_slow_worker_starts_past_its_time() -> None:
    # GIVEN a large batch, little time left (0.65 s against a 2 s margin) and many lanes
    fake = FakeStepFunctions()
    tokens = [fake.open_task() for _ in range(96)]

    def work(payload: Any) -> str:
        time.sleep(0.01)
        return "ok"

    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(
        client=fake, retry=NO_SLEEP, heartbeat_interval=0, max_concurrency=32
    )(work)
    # WHEN it is handled
    started = time.monotonic()
    response = handler(sqs_event(*({"TaskToken": t} for t in tokens)), FakeLambdaContext(remaining_ms=650))
    elapsed = time.monotonic() - started
    # THEN it returned before the Lambda's end, every record answered or handed back
    assert elapsed < 0.65
    answered = {t for t in tokens if fake.outcome(t) is not None}
    assert len(answered) + len(ids(response)) == len(tokens)


class _StalledHeartbeats(FakeStepFunctions):
    """Heartbeat calls hang for 5 s (a read timeout on a sick connection; minutes with a retrying user client)."""

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        time.sleep(5)
        return super().send_task_heartbeat(taskToken=taskToken)


def test_a_stalled_heartbeat_does_not_hold_the_guard_past_the_deadline() -> None:
    # GIVEN a task whose heartbeat is in flight (stalled) when the guard fires: 3 s left, 2 s margin
    fake = _StalledHeartbeats()
    token = fake.open_task()
    release = threading.Event()
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(
        client=fake, retry=NO_SLEEP, heartbeat_interval=0.2, deadline_margin=2.0
    )(lambda p: release.wait(10))
    # WHEN the handler runs
    started = time.monotonic()
    handler(direct_event(token), FakeLambdaContext(remaining_ms=3000))
    elapsed = time.monotonic() - started
    release.set()
    # THEN it answered the task with the deadline failure and returned before the Lambda's end
    assert elapsed < 3.0
    assert fake.outcome(token)[:2] == ("failure", ERROR_LAMBDA_DEADLINE)  # type: ignore[index]
