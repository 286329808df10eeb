"""The rate limiter as completion calls and heartbeats use it (callback_kit.task.completion), on injected time."""

from __future__ import annotations

import pytest

import callback_kit.task.completion as completion
from callback_kit.exceptions import CallbackDeliveryError
from callback_kit.outcome import Success
from callback_kit.task.completion import Completer, Delivery, RetryPolicy
from callback_kit.task.ratelimit import RateLimiter, Throttled
from callback_kit.testing import FakeStepFunctions
from tests.clock import FakeTime


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter(t: FakeTime, monkeypatch: pytest.MonkeyPatch) -> RateLimiter:
    """One limiter on fake time, as every client would share it."""
    lim = RateLimiter(clock=t.clock)
    monkeypatch.setattr(completion, "limiter_for", lambda client: lim)
    return lim


def completer(fake: FakeStepFunctions, t: FakeTime, **policy: int) -> Completer:
    return Completer(fake, RetryPolicy(sleep=t.sleep, clock=t.clock, random=lambda: 1.0, **policy))


def pacing(lim: RateLimiter, t: FakeTime, rate: float = 10.0) -> None:
    """Calls sent at ``rate`` per second for 3 s, then two throttles in a row: the limiter paces at ~0.9 x rate."""
    for _ in range(int(rate * 3)):
        t.now += 1.0 / rate
        ticket = lim.reserve()
    lim.observe(Throttled(), ticket)
    lim.observe(Throttled(), lim.reserve())
    assert lim.enabled


def test_a_throttled_completion_under_a_deadline_is_retried_while_time_remains(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a completion throttled 50 times in a row, far more than its attempt budget, with 60 s left
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=50)
    token = fake.open_task()
    # WHEN it is sent
    delivery = completer(fake, t, max_attempts=3).complete(token, Success("{}"), deadline=t.now + 60)
    # THEN it is delivered on the 51st attempt: throttles never use up attempts while time remains
    assert delivery is Delivery.DELIVERED
    assert len(fake.calls_for(token)) == 51
    assert limiter.enabled


def test_a_throttled_completion_is_handed_back_only_when_the_deadline_leaves_no_room(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a limiter pacing at ~9/s with 100 calls queued, and a completion with 2 s left (its turn is ~11 s away)
    pacing(limiter, t)
    for _ in range(100):
        limiter.reserve()
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=99)
    token = fake.open_task()
    # WHEN it is sent
    with pytest.raises(CallbackDeliveryError) as info:
        completer(fake, t).complete(token, Success("{}"), deadline=t.now + 2.0)
    # THEN it went out once at once (Step Functions may still have room), was throttled, and gave up without waiting
    assert info.value.code == "ThrottlingException"
    assert len(fake.calls_for(token)) == 1
    assert t.slept == []


def test_a_completion_with_time_to_spare_waits_for_its_turn(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a limiter pacing at ~9/s with a dry bucket, and a completion with 5 s left
    pacing(limiter, t)
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN it is sent
    delivery = completer(fake, t).complete(token, Success("{}"), deadline=t.now + 5.0)
    # THEN it waited one token's time, then was delivered
    assert delivery is Delivery.DELIVERED
    assert t.slept == pytest.approx([1.0 / limiter.rate], rel=0.02)


def test_a_long_wait_asks_again_halfway_and_follows_a_cut(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a limiter pacing at ~9/s with 30 calls queued (about 3.4 s of them)
    pacing(limiter, t)
    queued = [limiter.reserve() for _ in range(30)]
    fake = FakeStepFunctions()
    token = fake.open_task()
    original = t.sleep

    def sleep(seconds: float) -> None:
        if len(t.slept) == 1:  # a call sent before it is throttled while it waits: the rate is cut
            limiter.observe(Throttled(), queued[0])
        original(seconds)

    t.sleep = sleep  # type: ignore[method-assign]
    # WHEN a completion is sent
    completer(fake, t).complete(token, Success("{}"), deadline=t.now + 60)
    # THEN it slept half its wait at a time, and its turn came later than before the cut
    first = 31 / (limiter.rate / 0.9)
    assert t.slept[0] == pytest.approx(first / 2)
    assert len(t.slept) > 2
    assert sum(t.slept) > first


def test_a_heartbeat_goes_ahead_of_queued_completions(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a limiter pacing at ~0.9/s with 20 completions queued (over 20 s of them)
    pacing(limiter, t, rate=1.0)
    for _ in range(20):
        limiter.reserve()
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN a heartbeat is due
    alive = completer(fake, t).heartbeat(token)
    # THEN it is sent at once
    assert alive is True
    assert fake.heartbeats(token) == 1
    assert t.slept == []


def test_a_throttled_heartbeat_is_retried_within_its_allowance(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a pacing limiter and a heartbeat throttled twice
    pacing(limiter, t)
    fake = FakeStepFunctions()
    fake.inject("SendTaskHeartbeat", "ThrottlingException", times=2)
    token = fake.open_task()
    # WHEN it is sent with a second to spare
    alive = completer(fake, t).heartbeat(token, within=1.0)
    # THEN it landed on the third try, each taking the next token (ahead of any completion)
    assert alive is True
    assert fake.heartbeats(token) == 1
    assert len(t.slept) == 3
    assert sum(t.slept) < 1.0


def test_a_throttled_heartbeat_without_an_allowance_is_not_retried(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a heartbeat answered ThrottlingException
    fake = FakeStepFunctions()
    fake.inject("SendTaskHeartbeat", "ThrottlingException")
    token = fake.open_task()
    # WHEN it is sent (the default: no time to retry) / THEN the task is still taken for open, nothing waited
    assert completer(fake, t).heartbeat(token) is True
    assert fake.heartbeats(token) == 0
    assert limiter.throttles == 1
    assert t.slept == []


def test_without_a_deadline_throttles_have_their_own_budget_and_other_errors_keep_theirs(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN no deadline (a command line): a completion throttled without end gives up after max_throttled_attempts
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=99)
    token = fake.open_task()
    with pytest.raises(CallbackDeliveryError) as info:
        completer(fake, t, max_attempts=3, max_throttled_attempts=5).complete(token, Success("{}"))
    assert info.value.code == "ThrottlingException"
    assert len(fake.calls_for(token)) == 5
    # AND a 5xx is still retried max_attempts times, deadline or not
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ServiceUnavailable", times=99)
    other = fake.open_task()
    with pytest.raises(CallbackDeliveryError) as info:
        completer(fake, t, max_attempts=3).complete(other, Success("{}"), deadline=t.now + 60)
    assert info.value.code == "ServiceUnavailable"
    assert len(fake.calls_for(other)) == 3


def test_a_throttled_heartbeat_is_not_retried_once_its_task_is_being_completed(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a heartbeat throttled once, with time to retry, for a task whose completion has begun
    fake = FakeStepFunctions()
    fake.inject("SendTaskHeartbeat", "ThrottlingException")
    token = fake.open_task()
    # WHEN it is sent / THEN it is not retried: no beat may start after its task's completion
    assert completer(fake, t).heartbeat(token, within=1.0, wanted=lambda: False) is True
    assert len(fake.calls_for(token)) == 1


def test_a_heartbeat_that_waited_for_its_turn_is_not_sent_once_its_task_is_being_completed(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a limiter pacing at ~0.9/s whose next token is taken, so that a heartbeat must wait for its turn
    pacing(limiter, t, rate=1.0)
    limiter.reserve(front=True)
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN its task's completion begins while the beat waits (the beat is no longer wanted once it has slept)
    alive = completer(fake, t).heartbeat(token, within=5.0, wanted=lambda: not t.slept)
    # THEN the beat waited, then sent nothing: no beat may start after its task's completion began
    assert t.slept
    assert alive is True
    assert fake.calls_for(token) == []


def test_a_deadline_that_comes_while_a_completion_waits_its_turn_bounds_the_rest_of_the_wait(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a limiter pacing at ~9/s with 1,000 calls queued (a turn ~110 s away), and a completion with no deadline
    # yet, as an activity worker's answer has until the worker is stopped
    pacing(limiter, t)
    for _ in range(1000):
        limiter.reserve()
    fake = FakeStepFunctions()
    token = fake.open_task()
    began = t.now
    stop: list[float] = []

    def deadline() -> float | None:
        if not stop and t.now - began > 5.0:
            stop.append(t.now + 3.0)  # the worker is stopped 5 s in: every answer must be over 3 s later
        return stop[0] if stop else None

    # WHEN it is sent
    delivery = completer(fake, t).complete(token, Success("{}"), deadline=deadline)
    # THEN it stopped waiting for its turn once the deadline came, went out before it, and was delivered
    assert delivery is Delivery.DELIVERED
    assert stop
    assert len(fake.calls_for(token)) == 1
    assert t.now <= stop[0]
