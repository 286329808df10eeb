"""Batches: a token twice across FIFO message groups, and the deadline guard over a large batch."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import callback_kit as ck
from callback_kit import batch
from callback_kit.exceptions import ERROR_LAMBDA_DEADLINE
from callback_kit.task.workers import WorkerPool
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event


def _fifo(messages: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    return sqs_event(*[m for m, _ in messages], fifo=True, group_id=lambda i: messages[i][1])


def _handler(sfn: FakeStepFunctions, ran: list[Any], **options: Any) -> ck.CallbackHandler[Any, Any]:
    def work(payload: dict[str, Any]) -> dict[str, Any]:
        ran.append(payload.get("n"))
        return {"ok": True}

    return ck.callback_handler(client=sfn, heartbeat_interval=0, **options)(work)


def test_a_token_in_two_fifo_groups_does_not_stall_the_batch() -> None:
    # GIVEN a FIFO batch with one worker: group B's unique record first, then the token in group A, then the same
    # token again in group B (the worker in group B would wait for group A's record, which nobody started)
    sfn = FakeStepFunctions()
    token, unique = sfn.open_task(), sfn.open_task()
    event = _fifo([({"TaskToken": unique, "n": 1}, "B"), ({"TaskToken": token, "n": 2}, "A")])
    event["Records"] += _fifo([({"TaskToken": token, "n": 3}, "B")])["Records"]
    ran: list[Any] = []

    # WHEN the batch is handled with a 3 s Lambda
    response = _handler(sfn, ran, max_concurrency=1)(event, FakeLambdaContext(remaining_ms=3000))

    # THEN the duplicate is a duplicate: both tasks ran once and are answered, and nothing is handed back
    assert response == {"batchItemFailures": []}
    assert sorted(ran) == [1, 2]
    assert sfn.outcome(token) == sfn.outcome(unique) == ("success", {"ok": True})
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskSuccess"]


def test_a_twin_whose_first_record_is_handed_back_runs_the_task_in_its_healthy_group() -> None:
    # GIVEN group A stops at a record without a token, before its record of a token that group B also carries
    sfn = FakeStepFunctions()
    token, unique, later = sfn.open_task(), sfn.open_task(), sfn.open_task()
    event = _fifo(
        [
            ({"n": 0}, "A"),
            ({"TaskToken": unique, "n": 1}, "B"),
            ({"TaskToken": token, "n": 2}, "A"),
            ({"TaskToken": token, "n": 3}, "B"),
            ({"TaskToken": later, "n": 4}, "B"),
        ]
    )
    ids = [r["messageId"] for r in event["Records"]]
    ran: list[Any] = []

    # WHEN the batch is handled
    response = _handler(sfn, ran, max_concurrency=1)(event, FakeLambdaContext(remaining_ms=3000))

    # THEN group A is handed back from its failing record on, and group B goes on: its record of the shared
    # token runs the task in place of group A's, once
    assert response is not None
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {ids[0], ids[2]}
    assert ran == [1, 3, 4]
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskSuccess"]


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> WorkerPool:
    """A pool of the test's own, so that threads other tests left idle do not hide the ones this batch starts."""
    own = WorkerPool()
    monkeypatch.setattr(batch, "shared_pool", lambda: own)
    return own


def test_the_deadline_guard_starts_no_thread_per_unstarted_record(pool: WorkerPool) -> None:
    # GIVEN 10,000 records at max_concurrency=5, whose functions run until Step Functions' side cancels them
    sfn = FakeStepFunctions()
    tokens = [sfn.open_task() for _ in range(10_000)]
    release = threading.Event()

    def work(payload: dict[str, Any]) -> None:
        release.wait(10)

    handler = ck.callback_handler(client=sfn, heartbeat_interval=0, max_concurrency=5, deadline_margin=1.0)(work)
    event = sqs_event(*[{"TaskToken": t} for t in tokens])

    # WHEN the deadline comes while five run and 9,995 wait
    try:
        response = handler(event, FakeLambdaContext(remaining_ms=1500))
    finally:
        release.set()

    # THEN the five running tasks were failed, the rest handed back, and the pool holds about a thread per lane
    # and one per running task's failure, not one per record
    assert response is not None
    assert len(response["batchItemFailures"]) == 9_995
    assert sum(1 for t in tokens if (sfn.outcome(t) or ("",))[0] == "failure") == 5
    assert all(sfn.outcome(t)[1] == ERROR_LAMBDA_DEADLINE for t in tokens if sfn.outcome(t))  # type: ignore[index]
    assert pool.size <= 12
