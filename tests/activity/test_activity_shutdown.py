"""ActivityWorker shutdown: every unfinished task is expired at once, and every answer is over by one deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.activity import FINAL_DELIVERY_SECONDS, ActivityWorker, PollBackoff
from callback_kit.exceptions import ERROR_WORKER_SHUTDOWN
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:us-east-1:123456789012:activity:shutdown"
NO_PAUSE = PollBackoff(min_poll_seconds=0.0, rand=lambda: 1.0)
#: ECS (and Kubernetes) send SIGKILL this long after SIGTERM by default.
SIGKILL_AFTER = 30.0


def wait_until(condition: Any, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


def stuck(payload: Any) -> str:
    """A function that runs until its task is cancelled."""
    wait_until(ck.is_cancelled, timeout=60)
    return "too late"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Ends every slow call the test started, whatever the test's fate (no thread outlives it for long)."""
    event = threading.Event()
    yield event
    event.set()


def test_a_1s_grace_sends_every_workershutdown_within_about_the_grace(release: threading.Event) -> None:
    # GIVEN three tasks that never finish, and a Step Functions whose answers are slow (they hang until released)
    starts: list[float] = []

    def slow(seconds: float) -> None:
        starts.append(time.monotonic())
        release.wait(seconds)

    fake = FakeStepFunctions(activity_poll_seconds=0.02, sleep=slow)
    tokens = [fake.add_activity_task(ARN, {"n": n}) for n in range(3)]
    worker = ActivityWorker(
        ARN, stuck, client=fake, concurrency=3, heartbeat_interval=0, shutdown_grace_seconds=1.0,
        backoff=NO_PAUSE, tick=0.005,
    )  # fmt: skip
    worker.start()
    assert wait_until(lambda: worker.stats.running == 3)
    fake.latency = 60.0  # from now on (the polls are done)

    # WHEN the worker is stopped
    stopped = time.monotonic()
    worker.stop()

    # THEN all three WorkerShutdown answers go out at the grace's end, together (not one after another's call)
    assert wait_until(lambda: len(starts) == 3, timeout=1.0 + FINAL_DELIVERY_SECONDS)
    assert max(starts) - stopped < 1.0 + 0.5
    # AND the worker is done by the one deadline, every answer bounded by it
    assert worker.wait(1.0 + FINAL_DELIVERY_SECONDS + 1.0)
    assert time.monotonic() - stopped < 1.0 + FINAL_DELIVERY_SECONDS + 1.0
    assert all(bound <= FINAL_DELIVERY_SECONDS for bound in fake.timeouts)
    # AND each of them went out (the fake lands a call that outlives its bound at the bound's end, the moment the
    # worker stops waiting for it: on a busy CPU, that thread may wake a little after wait() returned)
    assert wait_until(lambda: all(fake.outcome(t) is not None for t in tokens), timeout=1.0)
    assert all(outcome is not None and outcome[1] == ERROR_WORKER_SHUTDOWN for outcome in map(fake.outcome, tokens))


class ManualClock:
    """A clock the test moves: the worker's grace and the answers' deadline are read from it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record_bounds(fake: FakeStepFunctions, clock: ManualClock) -> list[tuple[float, float]]:
    """``(clock time, seconds)`` of every bounded call made through ``fake`` from now on: when each answer was
    given, and the timeout it was given."""
    bounds: list[tuple[float, float]] = []
    original = fake.with_timeout

    def with_timeout(seconds: float) -> Any:
        bounds.append((clock(), seconds))
        return original(seconds)

    fake.with_timeout = with_timeout  # type: ignore[method-assign]
    return bounds


def test_with_the_default_grace_every_answer_is_over_before_sigkill() -> None:
    # GIVEN a worker with the default 25 s grace, two tasks that never finish and one that finishes after the stop,
    # on a clock the test moves, and a record of when (on that clock) each answer is given which timeout
    clock = ManualClock()
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    bounds = record_bounds(fake, clock)

    def work(payload: dict[str, str]) -> str:
        if payload["kind"] == "finishes":
            wait_until(lambda: worker.stopping and clock() >= 10.0, timeout=10)
            return "done"
        return stuck(payload)

    tokens = [fake.add_activity_task(ARN, {"kind": kind}) for kind in ("stuck", "stuck", "finishes")]
    worker = ActivityWorker(
        ARN, work, client=fake, concurrency=3, heartbeat_interval=0, backoff=NO_PAUSE, tick=0.005, clock=clock,
        retry=RetryPolicy(clock=clock, sleep=lambda s: None),
    )  # fmt: skip
    assert worker.shutdown_grace_seconds == 25.0
    worker.start()
    assert wait_until(lambda: worker.stats.running == 3)

    # WHEN SIGTERM stops it at 0 s, a task finishes at 10 s, and the grace runs out at 25 s
    worker.stop()
    clock.now = 10.0
    assert wait_until(lambda: fake.outcome(tokens[2]) is not None)
    clock.now = 25.0
    assert worker.wait(5)

    # THEN every answer, the finished task's and the two WorkerShutdown failures, was bounded to end by
    # 25 s + FINAL_DELIVERY_SECONDS, before ECS's SIGKILL at 30 s
    assert len(bounds) == 3
    assert all(at + seconds <= 25.0 + FINAL_DELIVERY_SECONDS < SIGKILL_AFTER for at, seconds in bounds)
    assert fake.outcome(tokens[2]) == ("success", "done")
    assert [fake.outcome(t)[1] for t in tokens[:2]] == [ERROR_WORKER_SHUTDOWN] * 2  # type: ignore[index]


def test_wait_returns_only_once_a_task_that_arrived_after_the_stop_is_answered() -> None:
    # GIVEN a worker with a short grace whose poll is open, and callbacks that take longer than that grace
    fake = FakeStepFunctions(activity_poll_seconds=5)
    ran: list[Any] = []
    worker = ActivityWorker(
        ARN, ran.append, client=fake, heartbeat_interval=0, shutdown_grace_seconds=0.2, backoff=NO_PAUSE, tick=0.005
    )
    worker.start()
    assert wait_until(lambda: worker.stats.polling == 1)

    # WHEN the worker is stopped and the open poll is then handed a task, whose refusal outlasts the grace
    worker.stop()
    fake.latency = 0.6
    token = fake.add_activity_task(ARN, {"n": 1})
    assert wait_until(lambda: worker.stats.running == 1)
    assert worker.stats.polling == 0

    # THEN wait() returns only after the task's WorkerShutdown answer went out, and counts it
    assert worker.wait(1.0 + FINAL_DELIVERY_SECONDS)
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_WORKER_SHUTDOWN
    assert (worker.stats.shut_down, worker.stats.running, ran) == (1, 0, [])


def test_an_answer_given_right_after_the_stop_is_bounded_by_the_stops_deadline() -> None:
    # GIVEN a worker stopped at 0 s whose supervisor has not looked since (run_one runs a task in this thread, and
    # the worker's threads were never started), on a clock the test moves
    clock = ManualClock()
    fake = FakeStepFunctions()
    bounds = record_bounds(fake, clock)
    worker = ActivityWorker(
        ARN, lambda payload: "done", client=fake, heartbeat_interval=0, clock=clock,
        retry=RetryPolicy(clock=clock, sleep=lambda s: None),
    )  # fmt: skip
    worker.stop()
    clock.now = 10.0
    # WHEN a task finishes at 10 s
    token = fake.open_task()
    worker.run_one({"taskToken": token, "input": "{}"})
    # THEN its answer was already bounded by the stop's deadline (25 s of grace + FINAL_DELIVERY_SECONDS), as the
    # supervisor's expiries are: the deadline holds from the moment stop() returns, not from when a thread sees it
    assert fake.outcome(token) == ("success", "done")
    assert bounds == [(10.0, 25.0 + FINAL_DELIVERY_SECONDS - 10.0)]
