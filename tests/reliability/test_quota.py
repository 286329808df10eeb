"""A quota that is not the benchmark's: the rate limiter and completion retries on simulated time.

The cells run the real Completer and RateLimiter against an in-memory token bucket (bench/quotamatrix.py); time
is simulated, so nothing here sleeps for real and the figures do not depend on the machine.
"""

from __future__ import annotations

import functools

import pytest

import callback_kit.task.completion as completion
from bench.quota import BucketedStepFunctions
from bench.quotamatrix import INTERVAL, run_cell
from bench.simtime import SimTime
from callback_kit.outcome import Success
from callback_kit.task.completion import Completer, RetryPolicy
from callback_kit.task.ratelimit import RateLimiter


def test_2100_completions_in_batches_of_1000_against_100_burst_and_200_per_second_hand_nothing_back() -> None:
    # GIVEN 2,100 completions in SQS batches of 1,000 (1,000 at once), a 100 / 200 per second bucket, 60 s each
    # WHEN they are sent, while five long tasks beat every 2 s
    cell = run_cell(100, 200, 1000, 1000, total=2100, remaining=60.0)
    # THEN none is handed back (each batch needs ~5 s of its 60), the bucket is used at >= 90% of its rate,
    # and no long task's beat (the first included) comes later than 1.5 intervals after the one before
    assert cell.handed_back == 0
    assert cell.share >= 0.9
    assert cell.worst_gap <= 1.5 * INTERVAL
    assert len(cell.invocations) == 3


@pytest.mark.parametrize(("burst", "refill", "concurrency", "batch"), [(50, 50, 1000, 1000), (3000, 500, 100, 10_000)])
def test_matrix_corners_meet_every_target(burst: int, refill: int, concurrency: int, batch: int) -> None:
    # GIVEN a bucket far smaller or far larger than the demand / WHEN two batches are sent
    cell = run_cell(burst, refill, concurrency, batch)
    # THEN every target of the matrix holds
    assert cell.handed_back == 0
    assert cell.share >= 0.9
    assert cell.worst_gap <= 1.5 * INTERVAL


def _invocations(throttle_first: bool) -> list[float]:
    """Three invocations of 20 completions (20 at once, 20 ms per call) in a fresh process; their durations."""
    sim = SimTime()
    fake = BucketedStepFunctions(3000, 500, clock=sim.clock, sleep=sim.sleep, latency=0.02)
    if throttle_first:
        fake.inner.inject("SendTaskSuccess", "ThrottlingException")  # one throttle: another process's burst
    limiter = RateLimiter(clock=sim.clock)
    saved = completion.limiter_for  # type: ignore[attr-defined]
    completion.limiter_for = lambda client: limiter  # type: ignore[attr-defined]
    completer = Completer(fake, RetryPolicy(sleep=sim.sleep, clock=sim.clock, random=lambda: 0.5))
    durations: list[float] = []

    def invocations() -> None:
        for _ in range(3):
            began = sim.clock()
            threads = [
                sim.spawn(
                    functools.partial(completer.complete, deadline=began + 60), fake.inner.open_task(), Success("{}")
                )
                for _ in range(20)
            ]
            while any(t.is_alive() for t in threads):
                sim.sleep(0.001)
            durations.append(sim.clock() - began)

    try:
        sim.spawn(invocations)
        sim.join()
    finally:
        completion.limiter_for = saved  # type: ignore[attr-defined]
    return durations


def _fastest(throttle_first: bool, runs: int = 5) -> list[float]:
    """Each invocation's shortest duration over ``runs`` fresh processes.

    The simulated threads are still scheduled by the operating system, and a thread that is runnable but not yet
    waiting can let simulated time run ahead: now and then an invocation takes longer at random, with or without
    a throttle (seen on a loaded machine: 1.55 s instead of 0.02 s). A slowdown the limiter causes shows in every
    run, so the fastest of a few keeps the test's meaning and drops that noise.
    """
    results = [_invocations(throttle_first) for _ in range(runs)]
    return [min(durations) for durations in zip(*results, strict=True)]


def test_one_throttle_in_a_fresh_process_does_not_slow_the_next_invocations() -> None:
    # GIVEN a fresh process whose first invocation meets one ThrottlingException
    clean = _fastest(throttle_first=False)
    # WHEN it and two more invocations of 20 tasks run
    throttled = _fastest(throttle_first=True)
    # THEN the invocations after it take no more than twice as long as without the throttle
    assert throttled[1] <= 2 * clean[1]
    assert throttled[2] <= 2 * clean[2]
