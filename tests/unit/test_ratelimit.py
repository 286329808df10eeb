"""The AIMD rate limiter, on an injected clock: nothing here really waits."""

from __future__ import annotations

import threading

import pytest

from callback_kit.task.ratelimit import BETA, MIN_RATE, UNPACED, RateLimiter, Throttled, Ticket, limiter_for
from tests.clock import FakeTime


@pytest.fixture
def t() -> FakeTime:
    return FakeTime()


def paced(t: FakeTime, sent: int = 100) -> RateLimiter:
    """A limiter that sent ``sent`` calls in the last second, then saw two throttles in a row: it paces."""
    lim = RateLimiter(clock=t.clock)
    tickets = []
    for _ in range(sent):
        t.now += 1.0 / sent
        tickets.append(lim.reserve())
    lim.observe(Throttled(), tickets[-1])
    lim.observe(Throttled(), lim.reserve())
    assert lim.enabled
    return lim


def take(lim: RateLimiter) -> Ticket:
    ticket = lim.reserve()
    assert ticket is not None
    return ticket


def test_no_pacing_before_any_throttle(t: FakeTime) -> None:
    # GIVEN a limiter that never saw a throttle
    lim = RateLimiter(clock=t.clock)
    # WHEN 10,000 calls ask for a token in the same instant
    tickets = [lim.reserve(max_wait=0.0) for _ in range(10_000)]
    # THEN every one goes at once
    assert all(ticket is not None and ticket.wait == 0.0 for ticket in tickets)
    assert not lim.enabled


def test_one_throttle_alone_does_not_start_pacing(t: FakeTime) -> None:
    # GIVEN calls at 100/s, one of them throttled (another process's burst, perhaps)
    lim = RateLimiter(clock=t.clock)
    tickets = []
    for _ in range(100):
        t.now += 0.01
        tickets.append(take(lim))
    lim.observe(Throttled(), tickets[-1])
    # WHEN the call sent after it is accepted
    lim.observe(None, take(lim))
    # THEN nothing is paced
    assert not lim.enabled
    assert take(lim).wait == 0.0


def test_a_throttle_after_a_throttle_paces_at_beta_times_the_rate_sent(t: FakeTime) -> None:
    # GIVEN calls sent at 100/s for a second
    # WHEN one is throttled and so is a call sent after it
    lim = paced(t, sent=100)
    # THEN pacing starts at about 0.9 x 100/s, from an empty bucket
    assert lim.rate == pytest.approx(BETA * 100, rel=0.05)
    first = take(lim)
    assert first.wait == pytest.approx(1.0 / lim.rate)


def test_a_young_process_counts_its_rate_over_its_own_age(t: FakeTime) -> None:
    # GIVEN a process that sent 500 calls in its first 0.1 s
    lim = RateLimiter(clock=t.clock)
    tickets = []
    for _ in range(500):
        t.now += 0.0002
        tickets.append(take(lim))
    # WHEN two throttles in a row
    lim.observe(Throttled(), tickets[-1])
    lim.observe(Throttled(), take(lim))
    # THEN it paces from about 5,000/s (what it sent), not 500/s: too high is corrected by cuts at once,
    # too low would idle the bucket while the rate crept up
    assert lim.rate > 3000


def test_throttles_of_calls_sent_before_a_cut_cut_nothing(t: FakeTime) -> None:
    # GIVEN a pacing limiter and 100 calls sent at its rate
    lim = paced(t)
    rate = lim.rate
    in_flight = [take(lim) for _ in range(100)]
    # WHEN all 100 come back throttled
    for ticket in in_flight:
        lim.observe(Throttled(), ticket)
    # THEN the rate was cut once, not 100 times
    assert lim.rate == pytest.approx(rate * BETA)
    assert lim.throttles == 102


def test_reserve_refuses_a_wait_over_max_wait_and_takes_no_token(t: FakeTime) -> None:
    # GIVEN a pacing limiter with a dry bucket
    lim = paced(t)
    # WHEN a call may wait at most a tenth of a token's time
    # THEN it is refused, and the next call's wait is still one token
    assert lim.reserve(max_wait=0.1 / lim.rate) is None
    assert take(lim).wait == pytest.approx(1.0 / lim.rate)


def test_waiters_queue_behind_each_other(t: FakeTime) -> None:
    # GIVEN a pacing limiter / WHEN three calls ask in the same instant
    lim = paced(t)
    waits = [take(lim).wait for _ in range(3)]
    # THEN each waits one token longer than the one before it
    step = 1.0 / lim.rate
    assert waits == pytest.approx([step, 2 * step, 3 * step])


def test_a_front_place_is_served_next_and_moves_the_queue_back_by_one(t: FakeTime) -> None:
    # GIVEN a pacing limiter with 50 calls queued
    lim = paced(t)
    queued = [take(lim) for _ in range(50)]
    before = lim.wait(queued[0])
    # WHEN a heartbeat (or a throttled call asking again) takes the front place
    beat = lim.reserve(front=True)
    # THEN it is served at the next token, and every queued call one token later than before
    assert beat is not None
    assert beat.wait == pytest.approx(1.0 / lim.rate)
    assert lim.wait(queued[0]) == pytest.approx(before + 1.0 / lim.rate)
    assert take(lim).wait == pytest.approx(queued[-1].wait + 2.0 / lim.rate)


def test_a_cut_moves_waiting_turns_later_and_none_loses_its_place(t: FakeTime) -> None:
    # GIVEN a pacing limiter, one call in flight and ten waiting for their turns
    lim = paced(t)
    sent = take(lim)
    t.now += sent.wait
    waiting = [take(lim) for _ in range(10)]
    before = [lim.wait(ticket) for ticket in waiting]
    # WHEN the call in flight is throttled
    lim.observe(Throttled(), sent)
    # THEN every waiting turn is 1/beta times as far away, in the same order
    after = [lim.wait(ticket) for ticket in waiting]
    assert after == pytest.approx([w / BETA for w in before])
    assert after == sorted(after)
    # AND a call asking now queues behind them all
    assert take(lim).wait > after[-1]


def test_a_rise_moves_waiting_turns_earlier(t: FakeTime) -> None:
    # GIVEN a pacing limiter with ten calls waiting
    lim = paced(t)
    waiting = [take(lim) for _ in range(10)]
    before = lim.wait(waiting[-1])
    # WHEN calls that waited are accepted (the rate rises)
    for ticket in waiting[:5]:
        lim.observe(None, ticket)
    # THEN the last one's turn comes sooner
    assert lim.wait(waiting[-1]) < before


def test_accepted_calls_that_waited_raise_the_rate_by_one_minus_beta(t: FakeTime) -> None:
    # GIVEN a pacing limiter
    lim = paced(t)
    rate = lim.rate
    # WHEN ten calls that waited for their tokens are accepted
    for _ in range(10):
        ticket = take(lim)
        t.now += ticket.wait
        lim.observe(None, ticket)
    # THEN the rate rose by 10 x (1 - beta): a second of such answers undoes one cut
    assert lim.rate == pytest.approx(rate + 10 * (1 - BETA))


def test_calls_that_did_not_wait_leave_the_rate_alone(t: FakeTime) -> None:
    # GIVEN a pacing limiter whose bucket has refilled half way
    lim = paced(t)
    rate = lim.rate
    t.now += 0.5
    # WHEN a call is accepted without waiting (demand, not the limiter, was the bound)
    lim.observe(None, take(lim))
    # THEN the rate stays
    assert lim.rate == rate


def test_a_second_without_contention_turns_pacing_off(t: FakeTime) -> None:
    # GIVEN a pacing limiter whose last call waited until now + wait
    lim = paced(t)
    ticket = take(lim)
    # WHEN a second passes after that slot with no call waiting
    t.now += ticket.wait + 1.0
    # THEN the next call is not paced: the next invocation meets the service's own burst
    assert take(lim).wait == 0.0
    assert not lim.enabled


def test_repeated_throttles_cut_to_the_floor_and_no_lower(t: FakeTime) -> None:
    # GIVEN a pacing limiter / WHEN every call sent at the current rate is throttled
    lim = paced(t)
    for _ in range(200):
        lim.observe(Throttled(), take(lim))
    # THEN the rate falls to the floor
    assert lim.rate == MIN_RATE


def test_concurrent_reserves_hand_out_each_token_once() -> None:
    # GIVEN a pacing limiter on a frozen clock whose bucket holds exactly 50 tokens
    t = FakeTime()
    lim = paced(t)
    lim._made = lim._taken + 50.0
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            ok = lim.reserve(max_wait=0.0) is not None
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


@pytest.mark.parametrize(("code", "throttled"), [("ThrottlingException", True), ("TaskTimedOut", False)])
def test_observe_sorts_answers(t: FakeTime, code: str, throttled: bool) -> None:
    # GIVEN an error answered by the service with this code
    class Answered(Exception):
        response = {"Error": {"Code": code}}  # noqa: RUF012

    lim = RateLimiter(clock=t.clock)
    # WHEN it is observed / THEN only a throttle counts as one
    lim.observe(Answered(), take(lim))
    assert lim.throttles == (1 if throttled else 0)


def test_calls_without_an_answer_or_a_ticket_teach_nothing(t: FakeTime) -> None:
    # GIVEN a connection error, and a throttle of a call sent without a ticket (none came before its deadline)
    lim = RateLimiter(clock=t.clock)
    # WHEN observed / THEN neither counts
    lim.observe(ConnectionError("reset"), take(lim))
    lim.observe(Throttled(), None)
    assert lim.throttles == 0


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
        fake.observe(Throttled(), fake.reserve())
    assert not fake.enabled
