"""The adaptive rate limiter, on an injected clock and sleep: nothing here really waits."""

from __future__ import annotations

import threading

import pytest

from callback_kit.ratelimit import MIN_RATE, UNPACED, RateLimiter, limiter_for
from tests.clock import FakeTime


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


def limiter(t: FakeTime) -> RateLimiter:
    return RateLimiter(clock=t.clock, sleep=t.sleep)


def send_at(lim: RateLimiter, t: FakeTime, rate: float, seconds: float) -> None:
    """Answers coming back at ``rate`` per second for ``seconds``, all successful."""
    for _ in range(int(rate * seconds)):
        t.now += 1.0 / rate
        lim.on_success()


def test_no_pacing_before_the_first_throttle(t: FakeTime) -> None:
    # GIVEN a limiter that never saw a throttle
    lim = limiter(t)
    send_at(lim, t, 1000, 2.0)
    # WHEN 10,000 calls acquire at once
    granted = [lim.acquire(deadline=t.now) for _ in range(10_000)]
    # THEN every one goes at once: no sleep, no limit
    assert all(granted)
    assert t.slept == []
    assert not lim.enabled


def test_a_throttle_cuts_the_rate_to_beta_times_the_measured_rate(t: FakeTime) -> None:
    # GIVEN calls answered at 1,000/s
    lim = limiter(t)
    send_at(lim, t, 1000, 3.0)
    # WHEN one is throttled
    lim.on_throttle()
    # THEN the limiter paces at about 0.8 x 1,000/s, from an empty bucket
    assert lim.enabled
    assert lim.rate == pytest.approx(800, rel=0.05)
    assert lim.throttles == 1
    start = t.now
    for _ in range(800):
        assert lim.acquire(deadline=None)
    assert t.now - start == pytest.approx(1.0, rel=0.05)


def test_acquire_refuses_a_wait_past_the_deadline_and_takes_no_token(t: FakeTime) -> None:
    # GIVEN a throttled limiter pacing at about 7/s with an empty bucket
    lim = limiter(t)
    send_at(lim, t, 10, 3.0)
    lim.on_throttle()
    # WHEN a call must start within 10 ms
    granted = lim.acquire(deadline=t.now + 0.01)
    # THEN it is refused at once, without sleeping
    assert granted is False
    assert t.slept == []
    # AND a call with time to spare waits for its token instead
    assert lim.acquire(deadline=t.now + 5.0)
    assert len(t.slept) == 1
    assert 0 < t.slept[0] <= 1.0 / lim.rate + 1e-9


def test_max_wait_skips_rather_than_queues(t: FakeTime) -> None:
    # GIVEN a throttled limiter with a dry bucket
    lim = limiter(t)
    send_at(lim, t, 10, 3.0)
    lim.on_throttle()
    # WHEN a heartbeat may wait at most 1 ms
    # THEN it is skipped
    assert lim.acquire(max_wait=0.001) is False
    assert t.slept == []


def test_waiters_queue_behind_each_other(t: FakeTime) -> None:
    # GIVEN a throttled limiter and no real time passing between three callers
    lim = limiter(t)
    send_at(lim, t, 10, 3.0)
    lim.on_throttle()
    slept: list[float] = []
    lim._sleep = slept.append  # the clock stands still: the callers arrive together
    # WHEN three calls acquire at the same instant
    for _ in range(3):
        assert lim.acquire()
    # THEN each waits one token longer than the one before it (reservations, not a thundering herd)
    step = 1.0 / lim.rate
    assert slept == pytest.approx([step, 2 * step, 3 * step])


def test_rate_recovers_cubically_after_throttles_stop(t: FakeTime) -> None:
    # GIVEN a limiter throttled at 500/s
    lim = limiter(t)
    send_at(lim, t, 500, 3.0)
    lim.on_throttle()
    low = lim.rate
    # WHEN successes keep coming at the allowed rate
    rates = []
    for _ in range(20):
        send_at(lim, t, lim.rate, 1.0)
        rates.append(lim.rate)
    # THEN the rate climbs back (never above twice the measured rate), past the throttled rate in time
    assert low == pytest.approx(400, rel=0.05)
    assert rates == sorted(rates)
    assert rates[-1] > 500
    assert all(r <= 2 * 800 for r in rates)


def test_repeated_throttles_back_off_multiplicatively_to_the_floor(t: FakeTime) -> None:
    # GIVEN a limiter answered at 100/s
    lim = limiter(t)
    send_at(lim, t, 100, 3.0)
    # WHEN every call is throttled for a while
    for _ in range(200):
        t.now += 0.6  # each throttle after the previous cut's hold
        lim.on_throttle()
    # THEN the rate falls to the floor, never below it
    assert lim.rate == MIN_RATE


def test_throttle_before_any_rate_was_measured_still_paces(t: FakeTime) -> None:
    # GIVEN a fresh limiter / WHEN its very first answer is a throttle
    lim = limiter(t)
    lim.on_throttle()
    # THEN it paces at a small positive rate (one answer in the first instant of a measuring window: <= 20/s)
    assert lim.enabled
    assert MIN_RATE <= lim.rate <= 20.0


def test_concurrent_acquires_hand_out_each_token_once() -> None:
    # GIVEN a throttled limiter at a known rate and a frozen clock (no refill)
    now = [0.0]
    lim = RateLimiter(clock=lambda: now[0], sleep=lambda s: None)
    for _ in range(200):
        now[0] += 0.01
        lim.on_success()
    lim.on_throttle()
    lim._tokens = 50.0  # a bucket holding exactly 50 tokens
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            ok = lim.acquire(deadline=now[0])  # no waiting allowed
            with lock:
                granted.append(ok)

    # WHEN 8 threads race for them
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # THEN exactly 50 calls got one
    assert granted.count(True) == 50


def test_limiter_for_shares_by_endpoint_and_leaves_fakes_unpaced() -> None:
    # GIVEN two botocore-like clients for the same endpoint, one for another, and an in-memory fake
    class Meta:
        def __init__(self, region: str, url: str) -> None:
            self.region_name, self.endpoint_url = region, url

    class Client:
        def __init__(self, region: str, url: str) -> None:
            self.meta = Meta(region, url)

    a = Client("us-east-1", "https://states.us-east-1.amazonaws.com")
    b = Client("us-east-1", "https://states.us-east-1.amazonaws.com")
    c = Client("eu-west-1", "https://states.eu-west-1.amazonaws.com")

    class Fake:
        pass

    # WHEN / THEN the same endpoint shares one limiter, another endpoint has its own
    assert limiter_for(a) is limiter_for(b)
    assert limiter_for(a) is not limiter_for(c)
    # AND a fake is never paced, whatever it answers
    fake = limiter_for(Fake())
    assert fake is UNPACED
    for _ in range(10):
        fake.observe(_Throttled())
    assert not fake.enabled
    assert fake.acquire(max_wait=0.0)


def test_a_burst_of_throttles_cuts_the_rate_once(t: FakeTime) -> None:
    # GIVEN calls answered at 1,000/s, 100 of them in flight when the bucket ran dry
    lim = limiter(t)
    send_at(lim, t, 1000, 3.0)
    # WHEN all 100 come back throttled within a few milliseconds
    for _ in range(100):
        t.now += 0.0001
        lim.on_throttle()
    # THEN the rate was cut once (0.8x), not 100 times
    assert lim.rate == pytest.approx(800, rel=0.05)
    assert lim.throttles == 100
    # AND a throttle a second after the hold, with too few answers since the cut to measure, cuts 0.8x again
    t.now += 1.2
    lim.on_throttle()
    assert lim.rate <= 800 * 0.8 + 1e-6  # (or less: capped at twice the measured rate, which fell meanwhile)


@pytest.mark.parametrize(
    ("code", "throttled"),
    [("ThrottlingException", True), ("TaskTimedOut", False), ("InternalFailure", False)],
)
def test_observe_sorts_answers(t: FakeTime, code: str, throttled: bool) -> None:
    # GIVEN an error answered by the service with this code
    class Answered(Exception):
        response = {"Error": {"Code": code}}  # noqa: RUF012

    lim = limiter(t)
    # WHEN it is observed
    lim.observe(Answered())
    # THEN only a throttle counts as one
    assert lim.throttles == (1 if throttled else 0)
    assert lim.enabled is throttled


def test_observe_ignores_calls_that_got_no_answer(t: FakeTime) -> None:
    # GIVEN a connection error (no response at all) / WHEN observed / THEN neither throttle nor success
    lim = limiter(t)
    lim.observe(ConnectionError("reset"))
    assert lim.throttles == 0
    assert lim._count == 0


def test_a_dry_bucket_cuts_towards_the_accepted_rate_not_the_rate_sent(t: FakeTime) -> None:
    # GIVEN answers at 2,000/s, all accepted for 0.5 s, then only one in four (the account's bucket ran dry)
    lim = limiter(t)
    send_at(lim, t, 2000, 0.5)
    for i in range(1000):
        t.now += 0.0005
        if i % 4:
            lim.observe(_Throttled())
        else:
            lim.on_success()
    # THEN within 0.5 s the rate is near the accepted 500/s, where cutting 0.7x per 0.1 s window from the
    # rate sent (2,000 -> 1,400 -> 980 -> 686 -> 480) would only just reach it
    assert lim.enabled
    assert 150 <= lim.rate <= 600


class _Throttled(Exception):
    response = {"Error": {"Code": "ThrottlingException"}}  # noqa: RUF012
