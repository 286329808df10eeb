"""The Lambda decorator end to end against the in-memory Step Functions: every source, every outcome."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pydantic
import pytest

import callback_kit as ck
from callback_kit.exceptions import (
    ERROR_INVALID_PAYLOAD,
    ERROR_LAMBDA_DEADLINE,
    ERROR_MALFORMED_MESSAGE,
    ERROR_OUTPUT_TOO_LARGE,
)
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, direct_event, eventbridge_event, sqs_event

NO_SLEEP = RetryPolicy(sleep=lambda s: None)


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


def make(sfn: FakeStepFunctions, fn: Any, **options: Any) -> ck.CallbackHandler[Any, Any]:
    options.setdefault("heartbeat_interval", 0)
    return ck.callback_handler(client=sfn, retry=NO_SLEEP, **options)(fn)


def failed_ids(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


class Order(pydantic.BaseModel):
    order_id: int
    total: float


def test_bare_decorator_keeps_the_function_callable(sfn: FakeStepFunctions) -> None:
    @ck.callback_handler
    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        """Doc."""
        return {"ack": "success"}

    assert handler.fn({}) == {"ack": "success"}
    assert handler.__wrapped__ is handler.fn
    assert handler.__doc__ == "Doc."
    assert handler.__name__ == "handler"


def test_sqs_batch_success_failure_and_missing_token(sfn: FakeStepFunctions) -> None:
    # GIVEN a batch with a good record, one whose function raises, and one without a token
    ok, boom = sfn.open_task(), sfn.open_task()

    def fn(p: dict[str, Any]) -> dict[str, Any]:
        if p.get("boom"):
            raise ValueError("no stock")
        return {"ack": p["n"]}

    event = sqs_event({"TaskToken": ok, "n": 1}, {"TaskToken": boom, "boom": True}, {"n": 3})
    # WHEN the handler runs
    response = make(sfn, fn)(event, FakeLambdaContext())
    # THEN the success and the failure are delivered, and only the token-less record is handed back
    assert sfn.outcome(ok) == ("success", {"ack": 1})
    outcome = sfn.outcome(boom)
    assert outcome is not None
    assert outcome[:2] == ("failure", "ValueError")
    assert outcome[2]["errorMessage"] == "no stock"
    assert failed_ids(response) == [event["Records"][2]["messageId"]]


def test_undeliverable_callback_is_a_batch_item_failure(sfn: FakeStepFunctions) -> None:
    # GIVEN SendTaskSuccess failing (5xx) beyond the retry budget for one of two records
    good, stuck = sfn.open_task(), sfn.open_task()
    sfn.inject("SendTaskSuccess", "ServiceUnavailable", times=6)
    event = sqs_event({"TaskToken": stuck}, {"TaskToken": good})
    # WHEN the handler runs sequentially (so the faults hit the first record)
    response = make(sfn, lambda p: {"ok": True}, max_concurrency=1)(event, FakeLambdaContext())
    # THEN the stuck record is redelivered and the other one is answered
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert sfn.outcome(stuck) is None
    assert sfn.outcome(good) == ("success", {"ok": True})


def test_records_run_concurrently(sfn: FakeStepFunctions) -> None:
    # GIVEN 5 records whose functions can only finish when all 5 run at once
    barrier = threading.Barrier(5, timeout=5)
    tokens = [sfn.open_task() for _ in range(5)]

    def fn(p: dict[str, Any]) -> int:
        barrier.wait()
        return 1

    # WHEN the batch runs with max_concurrency=5
    response = make(sfn, fn, max_concurrency=5)(sqs_event(*({"TaskToken": t} for t in tokens)), FakeLambdaContext())
    # THEN all succeeded (a sequential run would have broken the barrier)
    assert failed_ids(response) == []
    assert [sfn.outcome(t) for t in tokens] == [("success", 1)] * 5


def test_max_concurrency_is_respected(sfn: FakeStepFunctions) -> None:
    running, peak = [0], [0]
    lock = threading.Lock()

    def fn(p: dict[str, Any]) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1

    tokens = [sfn.open_task() for _ in range(8)]
    make(sfn, fn, max_concurrency=2)(sqs_event(*({"TaskToken": t} for t in tokens)), FakeLambdaContext())
    assert peak[0] == 2
    assert all(sfn.outcome(t) == ("success", None) for t in tokens)


def test_fifo_groups_stay_in_order(sfn: FakeStepFunctions) -> None:
    # GIVEN a FIFO batch of two groups
    order: list[tuple[str, int]] = []
    tokens = [sfn.open_task() for _ in range(6)]
    messages = [{"TaskToken": t, "g": "ab"[i % 2], "i": i} for i, t in enumerate(tokens)]
    event = sqs_event(*messages, fifo=True, group_id=lambda i: "ab"[i % 2])

    def fn(p: dict[str, Any]) -> None:
        time.sleep(0.01 * (3 - p["i"] // 2))  # earlier records are slower: a reorder would show
        order.append((p["g"], p["i"]))

    # WHEN it runs concurrently
    response = make(sfn, fn, max_concurrency=4)(event, FakeLambdaContext())
    # THEN each group ran in its message order
    assert failed_ids(response) == []
    assert [i for g, i in order if g == "a"] == [0, 2, 4]
    assert [i for g, i in order if g == "b"] == [1, 3, 5]


def test_fifo_stops_at_the_first_undeliverable_record(sfn: FakeStepFunctions) -> None:
    # GIVEN a one-group FIFO batch whose second record has no token
    t1, t3, t4 = sfn.open_task(), sfn.open_task(), sfn.open_task()
    event = sqs_event({"TaskToken": t1}, {"nope": 1}, {"TaskToken": t3}, {"TaskToken": t4}, fifo=True)
    ran: list[str] = []
    # WHEN the handler runs
    response = make(sfn, lambda p: ran.append("x"))(event, FakeLambdaContext())
    # THEN the first is answered, and the failing record and every later one go back, unrun
    ids = [r["messageId"] for r in event["Records"]]
    assert failed_ids(response) == ids[1:]
    assert sfn.outcome(t1) == ("success", None)
    assert sfn.outcome(t3) is None
    assert sfn.outcome(t4) is None
    assert len(ran) == 1


def test_eventbridge_success_and_raise_for_redelivery(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    handler = make(sfn, lambda p: {"notified": p["user"]})
    assert handler(eventbridge_event({"TaskToken": token, "user": "u1"}), FakeLambdaContext()) is None
    assert sfn.outcome(token) == ("success", {"notified": "u1"})
    # a missing token is raised, so Lambda's async retries and the on-failure destination take over
    with pytest.raises(ck.MissingTokenError, match="no task token"):
        handler(eventbridge_event({"user": "u1"}), FakeLambdaContext())
    # so is an undeliverable callback
    other = sfn.open_task()
    sfn.inject("SendTaskSuccess", "InternalFailure", times=99)
    with pytest.raises(ck.CallbackDeliveryError):
        handler(eventbridge_event({"TaskToken": other, "user": "u2"}), FakeLambdaContext())


def test_direct_invoke(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    assert make(sfn, lambda p: p["age"] >= 18)(direct_event(token, {"age": 30}), None) is None
    assert sfn.outcome(token) == ("success", True)


def test_duplicate_delivery_is_acknowledged_not_redelivered(sfn: FakeStepFunctions) -> None:
    # GIVEN a message delivered twice (SQS is at-least-once) to the same warm sandbox
    token = sfn.open_task()
    event = sqs_event({"TaskToken": token, "n": 1})
    runs: list[Any] = []

    def fn(p: Any) -> Any:
        runs.append(p)
        return p

    handler = make(sfn, fn)
    assert failed_ids(handler(event, FakeLambdaContext())) == []
    # WHEN it comes again
    response = handler(event, FakeLambdaContext())
    # THEN it is acknowledged without running again or calling Step Functions: the first answer stands
    assert failed_ids(response) == []
    assert len(runs) == 1
    assert sfn.outcome(token) == ("success", {"n": 1})
    assert [c.result for c in sfn.calls_for(token)] == ["ok"]


def test_a_duplicate_in_another_process_is_answered_closed(sfn: FakeStepFunctions) -> None:
    # GIVEN a token answered elsewhere (another sandbox: this process's ledger has not seen it)
    token = sfn.open_task()
    ck.send_success(token, {"first": True}, client=sfn)
    # WHEN a duplicate of its message arrives here
    response = make(sfn, lambda p: p)(sqs_event({"TaskToken": token}), FakeLambdaContext())
    # THEN Step Functions answers "closed", which is acknowledged: no redelivery, first answer stands
    assert failed_ids(response) == []
    assert sfn.outcome(token) == ("success", {"first": True})
    assert [c.result for c in sfn.calls_for(token)] == ["ok", "TaskTimedOut"]


def test_the_same_token_twice_in_one_batch_is_run_and_answered_once(sfn: FakeStepFunctions) -> None:
    # GIVEN a batch holding the same task twice, run concurrently
    token = sfn.open_task()
    runs: list[Any] = []

    def fn(p: Any) -> Any:
        runs.append(p)
        return p

    event = sqs_event({"TaskToken": token, "n": 1}, {"TaskToken": token, "n": 1})
    # WHEN it is handled
    response = make(sfn, fn, max_concurrency=2)(event, FakeLambdaContext())
    # THEN the function ran once, one answer was sent, and both records are acknowledged
    assert failed_ids(response) == []
    assert len(runs) == 1
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskSuccess"]


def test_a_duplicate_of_a_record_handed_back_is_handed_back_too(sfn: FakeStepFunctions) -> None:
    # GIVEN a batch with the same task twice, whose answer cannot be delivered
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", "AccessDeniedException", times=5)
    event = sqs_event({"TaskToken": token}, {"TaskToken": token})
    # WHEN it is handled
    response = make(sfn, lambda p: "ok")(event, FakeLambdaContext())
    # THEN both go back (the redelivery runs it again), and only one call was made
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in event["Records"])
    assert len(sfn.calls_for(token)) == 1


def test_model_validation(sfn: FakeStepFunctions) -> None:
    good, bad = sfn.open_task(), sfn.open_task()
    seen: list[Order] = []

    def fn(order: Order) -> dict[str, Any]:
        seen.append(order)
        return {"approved": order.total < 100}

    handler = make(sfn, fn, model=Order)
    handler(direct_event(good, {"order_id": 1, "total": 12.5}), None)
    handler(direct_event(bad, {"order_id": "secret-value", "total": 1}), None)
    assert seen == [Order(order_id=1, total=12.5)]
    assert sfn.outcome(good) == ("success", {"approved": True})
    outcome = sfn.outcome(bad)
    assert outcome is not None
    assert outcome[1] == ERROR_INVALID_PAYLOAD
    assert "order_id" in outcome[2]["errorMessage"]
    assert "secret-value" not in json.dumps(outcome[2]), "payload values must not leak into the cause"


def test_model_can_be_any_type_pydantic_validates(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    make(sfn, lambda xs: sum(xs), model=list[int], payload_path="values")(
        direct_event(token, {"values": ["1", 2]}), None
    )
    assert sfn.outcome(token) == ("success", 3)


def test_task_failed_error_map_and_oversized_output(sfn: FakeStepFunctions) -> None:
    named, mapped, huge = sfn.open_task(), sfn.open_task(), sfn.open_task()

    def fn(p: dict[str, Any]) -> Any:
        if p["case"] == "named":
            raise ck.TaskFailed("negative total", error="Order.Invalid")
        if p["case"] == "mapped":
            raise KeyError("sku")
        return "x" * 300_000

    handler = make(sfn, fn, error_map={LookupError: "Catalog.Missing"})
    for token, case in ((named, "named"), (mapped, "mapped"), (huge, "huge")):
        handler(direct_event(token, {"case": case}), None)
    assert [sfn.outcome(t)[1] for t in (named, mapped, huge)] == [  # type: ignore[index]
        "Order.Invalid",
        "Catalog.Missing",
        ERROR_OUTPUT_TOO_LARGE,
    ]


def test_token_with_an_unusable_message_is_answered_with_a_failure(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    make(sfn, lambda p: p, payload_path="Record")(direct_event(token, {"other": 1}), None)
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_MALFORMED_MESSAGE


def test_current_task_inside_and_outside(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    seen: list[ck.TaskInfo] = []
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:e1"
    make(sfn, lambda p: seen.append(ck.current_task()))(
        eventbridge_event({"TaskToken": token}, execution_arn=arn), None
    )
    [info] = seen
    assert info.source == "eventbridge"
    assert info.execution_arn == arn
    assert info.token_fingerprint.startswith("tok-")
    assert token not in repr(info)
    with pytest.raises(ck.NotInTaskError):
        ck.current_task()


def test_a_function_that_checks_cancellation_can_be_called_directly() -> None:
    # GIVEN a function that heartbeats and checks cancellation, as docs/activity.md advises
    def handle(job: dict[str, Any]) -> dict[str, Any]:
        for _ in job["steps"]:
            ck.heartbeat()
            if ck.is_cancelled():
                return {"stopped": True}
        return {"done": True}

    # WHEN a test calls it directly, outside any task
    result = handle({"steps": [1, 2]})

    # THEN it runs as a plain function: no heartbeat is sent and nothing is cancelled
    assert result == {"done": True}
    assert ck.is_cancelled() is False


def test_heartbeats_run_while_the_function_runs(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()

    def fn(p: dict[str, Any]) -> str:
        deadline = time.monotonic() + 5
        while sfn.heartbeats(token) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"

    make(sfn, fn, heartbeat_interval=0.05)(direct_event(token), None)
    assert sfn.heartbeats(token) >= 3
    assert sfn.outcome(token) == ("success", "done")
    last_beat = max(i for i, c in enumerate(sfn.calls) if c.api == "SendTaskHeartbeat")
    completion = next(i for i, c in enumerate(sfn.calls) if c.api == "SendTaskSuccess")
    assert last_beat < completion, "heartbeats stop before the completion call"


def test_heartbeat_answered_closed_cancels_and_suppresses_the_completion(sfn: FakeStepFunctions) -> None:
    # GIVEN a task that Step Functions closes (timed out) while the function runs
    token = sfn.open_task()

    def fn(p: dict[str, Any]) -> str:
        sfn.close_task(token)
        ck.heartbeat()  # beat now rather than wait for the interval
        deadline = time.monotonic() + 5
        while not ck.is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "cancelled" if ck.is_cancelled() else "not cancelled"

    # WHEN the handler runs
    response = make(sfn, fn, heartbeat_interval=30)(sqs_event({"TaskToken": token}), FakeLambdaContext())
    # THEN the function saw the cancellation and nothing was completed or redelivered
    assert failed_ids(response) == []
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskHeartbeat"]


def test_lambda_deadline_fails_the_running_task(sfn: FakeStepFunctions) -> None:
    # GIVEN a function that outlives the Lambda (2.3 s left, 2 s margin) and one record queued behind it
    slow, queued = sfn.open_task(), sfn.open_task()
    release = threading.Event()
    saw_cancel: list[bool] = []

    def fn(p: dict[str, Any]) -> str:
        release.wait(5)
        saw_cancel.append(ck.is_cancelled())
        return "late"

    event = sqs_event({"TaskToken": slow}, {"TaskToken": queued})
    context = FakeLambdaContext(remaining_ms=2300)
    # WHEN the handler runs one record at a time
    started = time.monotonic()
    response = make(sfn, fn, max_concurrency=1, deadline_margin=2.0)(event, context)
    elapsed = time.monotonic() - started
    release.set()
    # THEN the running task got the deadline failure, the queued one goes back unrun, and it returned in time
    outcome = sfn.outcome(slow)
    assert outcome is not None
    assert outcome[1] == ERROR_LAMBDA_DEADLINE
    assert failed_ids(response) == [event["Records"][1]["messageId"]]
    assert sfn.outcome(queued) is None
    assert elapsed < 2.0
    # and the late return sends nothing more
    time.sleep(0.1)
    assert len(sfn.calls_for(slow)) == 1
    assert saw_cancel == [True]


def test_deadline_already_passed_answers_a_direct_task(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    context = FakeLambdaContext(remaining_ms=500)
    release = threading.Event()
    make(sfn, lambda p: release.wait(5), deadline_margin=1.0)(direct_event(token), context)
    release.set()
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_LAMBDA_DEADLINE


def test_options_are_checked_at_decoration_time() -> None:
    with pytest.raises(ValueError, match="source"):
        ck.callback_handler(source="kinesis")
    with pytest.raises(ValueError, match="reserved"):
        ck.callback_handler(error_map={ValueError: "States.Custom"})
    with pytest.raises(ValueError, match="max_concurrency"):
        ck.callback_handler(max_concurrency=0)


def test_heartbeat_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_KIT_HEARTBEAT_INTERVAL", "12.5")
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(lambda p: p)
    assert handler.options.heartbeat_interval == 12.5
    assert ck.callback_handler(heartbeat_interval=3)(lambda p: p).options.heartbeat_interval == 3
    monkeypatch.setenv("CALLBACK_KIT_HEARTBEAT_INTERVAL", "0")
    assert ck.callback_handler(lambda p: p).options.heartbeat_interval is None
    monkeypatch.setenv("CALLBACK_KIT_HEARTBEAT_INTERVAL", "soon")
    with pytest.raises(ValueError, match="CALLBACK_KIT_HEARTBEAT_INTERVAL"):
        ck.callback_handler(lambda p: p)


def test_forced_source(sfn: FakeStepFunctions) -> None:
    # GIVEN a direct payload that happens to look like an EventBridge envelope
    token = sfn.open_task()
    event = {"detail-type": "x", "source": "y", "detail": {}, "token": token}
    make(sfn, lambda p: sorted(p), source="direct")(event, None)
    assert sfn.outcome(token) == ("success", ["detail", "detail-type", "source"])


def test_process_event_is_the_function_form(sfn: FakeStepFunctions) -> None:
    token = sfn.open_task()
    response = ck.process_event(sqs_event({"TaskToken": token, "n": 2}), None, lambda p: p["n"] * 2, client=sfn)
    assert response == {"batchItemFailures": []}
    assert sfn.outcome(token) == ("success", 4)


def test_public_heartbeat_is_the_function_not_the_module() -> None:
    import callback_kit.task.heartbeat  # noqa: F401 - importing the module must not shadow the function

    assert callable(ck.heartbeat)
    assert ck.heartbeat.__module__ == "callback_kit.context"


def test_hand_off_returns_the_token_and_sends_nothing(sfn: FakeStepFunctions) -> None:
    # GIVEN a notifier that passes the token on
    parked: list[str] = []

    @ck.callback_handler(client=sfn, heartbeat_interval=0)
    def notify(request: dict[str, Any]) -> dict[str, Any]:
        parked.append(ck.hand_off())
        return {"notified": True}

    token = sfn.open_task()
    # WHEN it runs from SQS
    response = notify(sqs_event({"TaskToken": token, "order": 1}), FakeLambdaContext())
    # THEN the record is acknowledged, nothing was sent, and whoever holds the token completes the task
    assert response == {"batchItemFailures": []}
    assert parked == [token]
    assert sfn.calls_for(token) == []
    ck.send_success(parked[0], {"approved": True}, client=sfn)
    assert sfn.outcome(token) == ("success", {"approved": True})


def test_a_function_that_raises_after_hand_off_is_failed(sfn: FakeStepFunctions) -> None:
    @ck.callback_handler(client=sfn, heartbeat_interval=0)
    def notify(request: dict[str, Any]) -> None:
        ck.hand_off()
        raise RuntimeError("mail server down")

    token = sfn.open_task()
    notify(direct_event(token, {"order": 1}), FakeLambdaContext())
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", "RuntimeError")
    assert outcome[2]["errorMessage"] == "mail server down"


def test_hand_off_outside_a_task_raises() -> None:
    with pytest.raises(ck.NotInTaskError):
        ck.hand_off()
