"""ck.hand_off() against an activity's time limit: one owner for the task, and stats that say who it was.

A time limit (or a shutdown) claims a running task and answers it. A hand-off that comes after that claim would
pass on a token callback-kit has answered, and the function would count as "handed off" while the worker
counted the answer: it is refused. A hand-off that came before the claim stands when Step Functions had closed
the task (nobody is left to answer), as it does when the function returns on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import callback_kit as ck
from callback_kit.activity import ActivityWorker, PollBackoff
from callback_kit.exceptions import ERROR_TASK_TIMEOUT, NotInTaskError
from callback_kit.testing import FakeStepFunctions
from tests.clock import wait_until

ARN = "arn:aws:states:us-east-1:123456789012:activity:handOff"
NO_PAUSE = PollBackoff(min_poll_seconds=0.0, rand=lambda: 1.0)


def make_worker(fake: FakeStepFunctions, fn: Callable[[Any], Any], now: list[float], **options: Any) -> ActivityWorker:
    options.setdefault("heartbeat_interval", 0)
    return ActivityWorker(
        ARN, fn, client=fake, max_task_seconds=10, clock=lambda: now[0], backoff=NO_PAUSE, tick=0.005, **options
    )


def test_a_hand_off_after_the_time_limit_claimed_the_task_is_refused() -> None:
    # GIVEN a task that Step Functions closes while its function works past the worker's 10 s limit, the function
    # handing the token off only once the limit has claimed the task
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    now = [0.0]
    token = fake.add_activity_task(ARN, {"job": 1})
    started = threading.Event()
    refused: list[str] = []

    def notify(payload: dict[str, int]) -> None:
        started.set()
        wait_until(ck.is_cancelled)
        try:
            ck.hand_off()
        except NotInTaskError as exc:
            refused.append(str(exc))
            raise

    worker = make_worker(fake, notify, now)
    worker.start()
    assert started.wait(5)
    fake.close_task(token)

    # WHEN 11 s pass
    now[0] = 11.0
    wait_until(lambda: bool(refused))
    worker.stop()
    assert worker.wait(5)

    # THEN the worker's TaskTimeout met the closed task and was counted so; the late hand-off was refused, so the
    # token is never passed on and nothing counts it handed off
    assert [c.params.get("error") for c in fake.calls_for(token, "SendTaskFailure")] == [ERROR_TASK_TIMEOUT]
    assert "too late to hand off" in refused[0]
    stats = worker.stats
    assert (stats.closed, stats.handed_off, stats.failed) == (1, 0, 0)


def test_a_hand_off_before_the_limit_stands_when_the_task_was_closed() -> None:
    # GIVEN a function that hands the token off and keeps working past the 10 s limit, and a heartbeat that
    # learns meanwhile that Step Functions closed the task
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    now = [0.0]
    token = fake.add_activity_task(ARN, {"job": 1})
    handed = threading.Event()
    proceed = threading.Event()

    def notify(payload: dict[str, int]) -> None:
        ck.hand_off()
        handed.set()
        proceed.wait(5)  # still working when the limit comes

    worker = make_worker(fake, notify, now, heartbeat_interval=0.01)
    worker.start()
    assert handed.wait(5)
    fake.close_task(token)
    wait_until(lambda: any(c.api == "SendTaskHeartbeat" and c.result != "ok" for c in fake.calls_for(token)))

    # WHEN 11 s pass, and the function returns only after the limit claimed its task
    now[0] = 11.0
    wait_until(lambda: worker.stats.handed_off + worker.stats.closed == 1)
    proceed.set()
    worker.stop()
    assert worker.wait(5)

    # THEN nothing is sent, and the task counts as handed off, as it would had the function returned first
    assert not [c for c in fake.calls_for(token) if c.api in ("SendTaskSuccess", "SendTaskFailure")]
    stats = worker.stats
    assert (stats.handed_off, stats.closed) == (1, 0)
