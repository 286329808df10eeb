"""ActivityWorker against the in-memory Step Functions fake: polling, limits, time limits, cancellation, stop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

import callback_kit as ck
from callback_kit.activity import ActivityWorker, PollBackoff
from callback_kit.exceptions import ERROR_MALFORMED_MESSAGE, ERROR_TASK_TIMEOUT, ERROR_WORKER_SHUTDOWN
from callback_kit.task.heartbeat import HeartbeatScheduler
from callback_kit.testing import FakeStepFunctions
from tests.clock import wait_until

ARN = "arn:aws:states:us-east-1:123456789012:activity:ageCheck"
NO_PAUSE = PollBackoff(min_poll_seconds=0.0, rand=lambda: 1.0)


def make_worker(fake: FakeStepFunctions, fn: Callable[[Any], Any], **options: Any) -> ActivityWorker:
    options.setdefault("heartbeat_interval", 0)
    options.setdefault("shutdown_grace_seconds", 2.0)
    options.setdefault("backoff", NO_PAUSE)
    options.setdefault("tick", 0.005)
    return ActivityWorker(ARN, fn, client=fake, **options)


def answers(fake: FakeStepFunctions, token: str) -> list[str]:
    """The completion calls Step Functions accepted for a token."""
    completions = ("SendTaskSuccess", "SendTaskFailure")
    return [c.api for c in fake.calls_for(token) if c.result == "ok" and c.api in completions]


@pytest.fixture
def fake() -> FakeStepFunctions:
    return FakeStepFunctions(activity_poll_seconds=0.02)


def test_success_and_raise_each_get_one_answer(fake: FakeStepFunctions) -> None:
    # GIVEN two queued tasks, one the function answers and one it raises on
    good = fake.add_activity_task(ARN, {"age": 30})
    bad = fake.add_activity_task(ARN, {"age": -1})

    def check_age(person: dict[str, int]) -> dict[str, bool]:
        if person["age"] < 0:
            raise ValueError("negative age")
        return {"adult": person["age"] >= 18}

    worker = make_worker(fake, check_age)
    # WHEN the worker runs until both are answered
    worker.start()
    wait_until(lambda: fake.outcome(good) is not None and fake.outcome(bad) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN the return value is the output and the exception's class the error, each sent once
    assert fake.outcome(good) == ("success", {"adult": True})
    outcome = fake.outcome(bad)
    assert outcome is not None
    assert outcome[:2] == ("failure", "ValueError")
    assert answers(fake, good) == ["SendTaskSuccess"]
    assert answers(fake, bad) == ["SendTaskFailure"]
    stats = worker.stats
    assert (stats.started, stats.succeeded, stats.failed, stats.running) == (2, 1, 1, 0)


def test_input_that_is_not_json_fails_with_malformed_message(fake: FakeStepFunctions) -> None:
    # GIVEN a task whose input is not JSON
    token = fake.add_activity_task(ARN, "{not json")
    worker = make_worker(fake, lambda payload: payload)
    # WHEN the worker takes it
    worker.start()
    wait_until(lambda: fake.outcome(token) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN it is failed with the documented error, and the function never ran
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_MALFORMED_MESSAGE


def test_never_takes_more_tasks_than_slots(fake: FakeStepFunctions) -> None:
    # GIVEN five tasks and a worker with two slots whose function blocks
    tokens = [fake.add_activity_task(ARN, {"n": i}) for i in range(5)]
    release = threading.Event()
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def work(payload: dict[str, int]) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(5)
        with lock:
            running[0] -= 1
        return payload["n"]

    worker = make_worker(fake, work, concurrency=2)
    # WHEN it runs while both slots are busy
    worker.start()
    wait_until(lambda: worker.stats.running == 2)
    time.sleep(0.05)  # give a misbehaving worker the chance to poll again
    # THEN it holds no open poll and has taken only two tasks
    assert fake.pending_activity_tasks(ARN) == 3
    assert fake.open_polls == 0
    assert fake.max_open_polls <= 2
    # WHEN the functions are let go
    release.set()
    wait_until(lambda: all(fake.outcome(t) is not None for t in tokens))
    worker.stop()
    assert worker.wait(5)
    # THEN every task was answered and no more than two ever ran at once
    assert peak[0] == 2
    assert sorted(fake.outputs()) == [0, 1, 2, 3, 4]


def test_task_over_max_task_seconds_is_failed_and_cancelled(fake: FakeStepFunctions) -> None:
    # GIVEN a worker with a 10 s limit on a fake clock, and a function that works until cancelled
    now = [0.0]
    token = fake.add_activity_task(ARN, {"job": 1})
    started = threading.Event()
    saw_cancel = threading.Event()

    def stuck(payload: dict[str, int]) -> dict[str, str]:
        started.set()
        end = time.monotonic() + 5
        while not ck.is_cancelled() and time.monotonic() < end:
            time.sleep(0.002)
        if ck.is_cancelled():
            saw_cancel.set()
        return {"late": "answer"}

    worker = make_worker(fake, stuck, max_task_seconds=10, clock=lambda: now[0])
    worker.start()
    assert started.wait(5)
    # WHEN 11 s pass
    now[0] = 11.0
    # THEN the task is failed with the timeout error, the function sees is_cancelled(), and its late return
    # sends nothing more
    wait_until(lambda: fake.outcome(token) is not None)
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_TASK_TIMEOUT
    assert saw_cancel.wait(5)
    worker.stop()
    assert worker.wait(5)
    assert answers(fake, token) == ["SendTaskFailure"]
    assert worker.stats.timed_out == 1
    assert worker.stats.failed == 1


def test_heartbeat_answered_closed_cancels_the_function(fake: FakeStepFunctions) -> None:
    # GIVEN a task running under a hand-driven heartbeat scheduler
    now = [0.0]
    scheduler = HeartbeatScheduler(clock=lambda: now[0], start_thread=False, jitter=0.0)
    token = fake.add_activity_task(ARN, {"job": 1})
    started = threading.Event()
    result: list[bool] = []

    def long_job(payload: dict[str, int]) -> dict[str, bool]:
        started.set()
        end = time.monotonic() + 5
        while not ck.is_cancelled() and time.monotonic() < end:
            time.sleep(0.002)
        result.append(ck.is_cancelled())
        return {"stopped": True}

    worker = make_worker(fake, long_job, heartbeat_interval=5, scheduler=scheduler)
    worker.start()
    assert started.wait(5)
    # WHEN Step Functions closes the task (execution stopped) and the next heartbeat is sent
    now[0] = 5.0
    assert scheduler.run_pending() is not None  # one beat accepted while the task is open
    fake.close_task(token)
    now[0] = 10.0
    scheduler.run_pending()
    # THEN the function sees is_cancelled(), and no completion is sent for the closed task
    wait_until(lambda: bool(result))
    worker.stop()
    assert worker.wait(5)
    assert result == [True]
    assert answers(fake, token) == []
    assert worker.stats.closed == 1
    assert worker.stats.heartbeats == 2


def test_heartbeat_seconds_missed_in_the_fake_closes_the_task(fake: FakeStepFunctions) -> None:
    # GIVEN a fake on a settable clock, and a task with HeartbeatSeconds=3 handed to a poller
    now = [0.0]
    sfn = FakeStepFunctions(activity_poll_seconds=0.01, clock=lambda: now[0])
    token = sfn.add_activity_task(ARN, {}, heartbeat_seconds=3, timeout_seconds=100)
    assert sfn.get_activity_task(activityArn=ARN)["taskToken"] == token
    # WHEN a heartbeat comes in time, and then none for more than 3 s
    now[0] = 2.0
    sfn.send_task_heartbeat(taskToken=token)
    now[0] = 5.5
    # THEN the late success gets TaskTimedOut, as Step Functions answers after a timeout
    with pytest.raises(Exception, match="TaskTimedOut"):
        sfn.send_task_success(taskToken=token, output="{}")


def test_throttled_and_failing_polls_back_off_and_the_worker_survives(fake: FakeStepFunctions) -> None:
    # GIVEN polls that are throttled, limited and cut off before one succeeds
    fake.inject("GetActivityTask", "ActivityWorkerLimitExceeded", times=2)
    fake.inject("GetActivityTask", "ThrottlingException", times=1)
    fake.inject("GetActivityTask", EndpointConnectionError(endpoint_url="https://states.example"), times=1)
    token = fake.add_activity_task(ARN, {"n": 1})
    pauses: list[float] = []
    worker = make_worker(fake, lambda p: p, sleep=pauses.append)
    # WHEN the worker runs
    worker.start()
    wait_until(lambda: fake.outcome(token) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN it paused after each failure, longer each time (1, 2, 4, 8 s with the jitter at its top), and went on
    assert pauses[:4] == [1.0, 2.0, 4.0, 8.0]
    assert worker.stats.poll_errors == 4
    assert fake.outcome(token) == ("success", {"n": 1})


def test_backoff_never_drops_below_half_its_step() -> None:
    # GIVEN the worst jitter draw
    backoff = PollBackoff(rand=lambda: 0.0)
    # THEN a failing endpoint is still never polled in a tight loop, and the wait is capped
    assert [backoff.delay(n) for n in range(3)] == [0.5, 1.0, 2.0]
    assert backoff.delay(50) == 15.0


def test_empty_answers_that_come_back_at_once_are_paced() -> None:
    # GIVEN an endpoint that answers "no work" at once instead of holding the poll
    class Instant:
        polls = 0

        def get_activity_task(self, **params: str) -> dict[str, Any]:
            self.polls += 1
            return {"taskToken": ""}

    pauses: list[float] = []
    client = Instant()
    worker = ActivityWorker(ARN, lambda p: p, client=client, sleep=pauses.append, heartbeat_interval=0, tick=0.005)
    # WHEN the worker has polled a few times
    worker.start()
    wait_until(lambda: len(pauses) >= 3)
    worker.stop()
    assert worker.wait(5)
    # THEN each empty answer was followed by a pause of about a second, and no task was started
    assert all(0.9 <= p <= 1.0 for p in pauses)
    assert worker.stats.started == 0
    assert worker.stats.poll_errors == 0


def test_stop_lets_tasks_finish_within_the_grace_and_fails_the_rest(fake: FakeStepFunctions) -> None:
    # GIVEN two tasks in flight (one finishes soon after the stop, one never does) and one still queued
    quick = fake.add_activity_task(ARN, {"kind": "quick"})
    stuck = fake.add_activity_task(ARN, {"kind": "stuck"})
    both_running = threading.Barrier(3)

    def work(payload: dict[str, str]) -> str:
        both_running.wait(5)
        if payload["kind"] == "quick":
            wait_until(lambda: worker.stopping)
            return "done"
        wait_until(ck.is_cancelled)
        return "too late"

    worker = make_worker(fake, work, concurrency=2, shutdown_grace_seconds=1.0)
    worker.start()
    both_running.wait(5)
    spare = fake.add_activity_task(ARN, {"kind": "spare"})
    # WHEN the worker is stopped
    began = time.monotonic()
    worker.stop()
    assert worker.wait(5)
    # THEN the quick task succeeded, the stuck one got the shutdown error once the grace ran out,
    # and the queued task was never taken
    assert fake.outcome(quick) == ("success", "done")
    outcome = fake.outcome(stuck)
    assert outcome is not None
    assert outcome[1] == ERROR_WORKER_SHUTDOWN
    assert time.monotonic() - began >= 1.0
    assert fake.pending_activity_tasks(ARN) == 1
    assert fake.outcome(spare) is None
    time.sleep(0.05)  # the stuck function returns now: it must not answer a second time
    assert answers(fake, stuck) == ["SendTaskFailure"]
    assert worker.stats.shut_down == 1


def test_task_arriving_on_an_open_poll_after_stop_is_answered_unstarted() -> None:
    # GIVEN a worker whose poll is open (held for up to 5 s)
    sfn = FakeStepFunctions(activity_poll_seconds=5)
    ran: list[Any] = []
    worker = make_worker(sfn, ran.append)
    worker.start()
    wait_until(lambda: sfn.open_polls == 1)
    # WHEN the worker is stopped and then the open poll is handed a task
    worker.stop()
    token = sfn.add_activity_task(ARN, {"n": 1})
    assert worker.wait(5)
    # THEN the task is answered with the shutdown error without running the function
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[1] == ERROR_WORKER_SHUTDOWN
    assert ran == []


def test_a_callback_handler_serves_as_an_activity_function(fake: FakeStepFunctions) -> None:
    # GIVEN a Lambda handler with a model
    from pydantic import BaseModel

    class Person(BaseModel):
        age: int

    @ck.callback_handler(model=Person, heartbeat_interval=0)
    def handler(person: Person) -> dict[str, bool]:
        return {"adult": person.age >= 18}

    ok = fake.add_activity_task(ARN, {"age": 40})
    invalid = fake.add_activity_task(ARN, {"age": "old"})
    worker = make_worker(fake, handler)
    # WHEN the worker runs it on activity tasks
    worker.start()
    wait_until(lambda: fake.outcome(ok) is not None and fake.outcome(invalid) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN the same function, model and error names apply
    assert fake.outcome(ok) == ("success", {"adult": True})
    outcome = fake.outcome(invalid)
    assert outcome is not None
    assert outcome[1] == "CallbackKit.InvalidPayload"


def test_logs_carry_fingerprints_not_tokens(fake: FakeStepFunctions, capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN a task whose function fails
    token = fake.add_activity_task(ARN, {})

    def fail(payload: Any) -> None:
        raise RuntimeError("boom")

    worker = make_worker(fake, fail)
    # WHEN it runs with INFO logging
    worker.start()
    wait_until(lambda: fake.outcome(token) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN the token never appears in the output
    captured = capfd.readouterr()
    assert token not in captured.out + captured.err


def test_bad_options_are_refused() -> None:
    # GIVEN / WHEN / THEN out-of-range options fail at construction, not at the first task
    with pytest.raises(ValueError, match="concurrency"):
        ActivityWorker(ARN, print, concurrency=0)
    with pytest.raises(ValueError, match="concurrency"):
        ActivityWorker(ARN, print, concurrency=1001)
    with pytest.raises(ValueError, match="max_task_seconds"):
        ActivityWorker(ARN, print, max_task_seconds=0)


def test_activity_worker_is_not_imported_with_the_package() -> None:
    # GIVEN a fresh interpreter that imports callback_kit as a Lambda handler does
    import subprocess
    import sys

    code = "import sys, callback_kit; assert 'callback_kit.activity' not in sys.modules; callback_kit.ActivityWorker"
    # WHEN / THEN the worker module is loaded only on first use
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)  # noqa: S603 - fixed code


@pytest.mark.parametrize("exc", [SystemExit(1), asyncio.CancelledError(), KeyboardInterrupt(), GeneratorExit()])
def test_a_base_exception_from_the_function_does_not_kill_the_slot(fake: FakeStepFunctions, exc: BaseException) -> None:
    # GIVEN one slot, and a function that raises a BaseException on its first task only
    first = fake.add_activity_task(ARN, {"n": 1})
    second = fake.add_activity_task(ARN, {"n": 2})

    def fn(payload: dict[str, int]) -> int:
        if payload["n"] == 1:
            raise exc
        return payload["n"]

    worker = make_worker(fake, fn)
    # WHEN the worker runs
    worker.start()
    wait_until(lambda: fake.outcome(second) is not None)
    worker.stop()
    assert worker.wait(5)
    # THEN the first task was failed with the exception's name, and the same slot went on to the second
    assert fake.outcome(first)[:2] == ("failure", type(exc).__name__)  # type: ignore[index]
    assert fake.outcome(second) == ("success", 2)
    stats = worker.stats
    assert (stats.started, stats.succeeded, stats.failed, stats.undeliverable) == (2, 1, 1, 0)


def test_the_poll_client_redacts_tokens_from_botocore_debug_logs() -> None:
    import logging

    from callback_kit.logs import TokenRedactingFilter
    from callback_kit.poller import poll_client

    logging.getLogger("botocore.parsers").filters.clear()
    poll_client()
    assert any(isinstance(f, TokenRedactingFilter) for f in logging.getLogger("botocore.parsers").filters)


def test_stats_after_a_timed_out_task_never_read_closed(fake: FakeStepFunctions) -> None:
    # GIVEN tasks over max_task_seconds whose functions return just as the supervisor expires them
    tokens = [fake.add_activity_task(ARN, {}) for _ in range(20)]

    def fn(payload: Any) -> str:
        time.sleep(0.02)
        return "late"

    worker = make_worker(fake, fn, concurrency=4, max_task_seconds=0.02, tick=0.001)
    # WHEN they all run
    worker.start()
    wait_until(lambda: all(fake.outcome(t) is not None for t in tokens))
    worker.stop()
    assert worker.wait(5)
    # THEN every delivered answer is counted as what it was: none as "closed"
    stats = worker.stats
    outcomes = [fake.outcome(t) for t in tokens]
    delivered_failures = sum(1 for o in outcomes if o is not None and o[0] == "failure")
    assert stats.closed == 0
    assert (stats.succeeded, stats.failed) == (len(tokens) - delivered_failures, delivered_failures)
