"""The rate limiter as completion calls and heartbeats use it (callback_kit.completion), on injected time."""

from __future__ import annotations

import pytest

import callback_kit.completion as completion
from callback_kit.completion import Completer, Delivery, RetryPolicy
from callback_kit.outcome import Success
from callback_kit.ratelimit import RateLimiter
from callback_kit.testing import FakeStepFunctions
from tests.clock import FakeTime


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter(t: FakeTime, monkeypatch: pytest.MonkeyPatch) -> RateLimiter:
    """One limiter on fake time, as every client would share it."""
    lim = RateLimiter(clock=t.clock, sleep=t.sleep)
    monkeypatch.setattr(completion, "limiter_for", lambda client: lim)
    return lim


def completer(fake: FakeStepFunctions, t: FakeTime) -> Completer:
    return Completer(fake, RetryPolicy(sleep=t.sleep, clock=t.clock, random=lambda: 1.0))


def throttled(lim: RateLimiter, t: FakeTime, rate: float = 10.0) -> None:
    """Answers at ``rate`` per second for 3 s, then a throttle: the limiter paces at about 0.8 x ``rate``."""
    for _ in range(int(rate * 3)):
        t.now += 1.0 / rate
        lim.on_success()
    lim.on_throttle()


def test_a_throttled_completion_is_reported_and_paces_the_next_calls(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a Step Functions that throttles the first attempt of a completion
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException")
    token = fake.open_task()
    # WHEN the completion is sent
    delivery = completer(fake, t).complete(token, Success('{"ok": true}'))
    # THEN it was delivered on retry, and the limiter saw the throttle and now paces
    assert delivery is Delivery.DELIVERED
    assert limiter.throttles == 1
    assert limiter.enabled


def test_a_call_goes_out_at_once_when_no_token_would_come_before_the_deadline(
    t: FakeTime, limiter: RateLimiter
) -> None:
    # GIVEN a limiter pacing at ~8/s with a dry bucket, and a completion with 20 ms left before its deadline
    throttled(limiter, t)
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN it is sent
    delivery = completer(fake, t).complete(token, Success('{"ok": true}'), deadline=t.now + 0.02)
    # THEN it did not wait past the deadline for a token: it went out at once and Step Functions decided
    assert delivery is Delivery.DELIVERED
    assert t.slept == []


def test_a_completion_with_time_to_spare_waits_for_its_token(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a limiter pacing at ~8/s with a dry bucket, and a completion with 5 s left
    throttled(limiter, t)
    fake = FakeStepFunctions()
    token = fake.open_task()
    rate = limiter.rate
    # WHEN it is sent
    delivery = completer(fake, t).complete(token, Success('{"ok": true}'), deadline=t.now + 5.0)
    # THEN it waited about one token's time, then was delivered
    assert delivery is Delivery.DELIVERED
    assert len(t.slept) == 1
    assert 0 < t.slept[0] <= 1.0 / rate + 1e-9


def test_a_heartbeat_is_skipped_rather_than_queued_when_the_bucket_is_dry(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a limiter pacing at ~0.8/s (a token is over a second away)
    throttled(limiter, t, rate=1.0)
    fake = FakeStepFunctions()
    token = fake.open_task()
    # WHEN a heartbeat is due
    alive = completer(fake, t).heartbeat(token)
    # THEN it is skipped without waiting (the next one covers it), and the task is not taken for closed
    assert alive is True
    assert fake.heartbeats(token) == 0
    assert t.slept == []


def test_heartbeat_throttles_are_reported_too(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a heartbeat answered ThrottlingException
    fake = FakeStepFunctions()
    fake.inject("SendTaskHeartbeat", "ThrottlingException")
    token = fake.open_task()
    # WHEN it is sent
    alive = completer(fake, t).heartbeat(token)
    # THEN the task is still taken for open, and the limiter learnt of the throttle
    assert alive is True
    assert limiter.throttles == 1


def test_throttles_while_the_limiter_paces_have_their_own_larger_budget(t: FakeTime, limiter: RateLimiter) -> None:
    # GIVEN a completion throttled ten times in a row at the quota: more than its six ordinary attempts
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=10)
    token = fake.open_task()
    # WHEN it is sent through the pacing limiter
    delivery = completer(fake, t).complete(token, Success('{"ok": true}'))
    # THEN it is delivered on the eleventh attempt instead of being handed back to run the whole task again
    assert delivery is Delivery.DELIVERED
    assert len(fake.calls_for(token)) == 11
    assert limiter.enabled


def test_the_throttle_budget_ends_too_and_other_errors_keep_theirs(t: FakeTime, limiter: RateLimiter) -> None:
    from callback_kit.exceptions import CallbackDeliveryError

    policy = RetryPolicy(max_attempts=3, max_throttled_attempts=5, sleep=t.sleep, clock=t.clock, random=lambda: 1.0)
    # A completion throttled without end gives up after max_throttled_attempts...
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ThrottlingException", times=99)
    token = fake.open_task()
    with pytest.raises(CallbackDeliveryError) as info:
        Completer(fake, policy).complete(token, Success("{}"))
    assert info.value.code == "ThrottlingException"
    assert len(fake.calls_for(token)) == 5
    # ...and a 5xx is still retried max_attempts times, throttles or not.
    fake = FakeStepFunctions()
    fake.inject("SendTaskSuccess", "ServiceUnavailable", times=99)
    other = fake.open_task()
    with pytest.raises(CallbackDeliveryError) as info:
        Completer(fake, policy).complete(other, Success("{}"))
    assert info.value.code == "ServiceUnavailable"
    assert len(fake.calls_for(other)) == 3
