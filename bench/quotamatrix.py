"""The quota matrix: the rate limiter against buckets that are not the benchmark's, on simulated time.

A fleet shares the account's bucket, so one process sees any slice of it. Every cell of burst {50, 100, 1,500,
3,000} x refill {50, 200, 500}/s x concurrency {10, 100, 1,000} x SQS batch {10, 1,000, 10,000} runs two
invocations of ``batch`` completions each (instant tasks, ``concurrency`` at once, 20 ms per call) through the real
:class:`~callback_kit.task.completion.Completer` and :class:`~callback_kit.task.ratelimit.RateLimiter`, while five long
tasks beat every 2 s. Each invocation has 60 s, or twice what the bucket needs for its batch when that is more
(at most Lambda's 900 s), less a 2 s margin. Time is simulated (:mod:`bench.simtime`): the figures are the
algorithm's, not the machine's.

Targets, every cell: no record handed back (time always remains), at least 90% of the best rate (the baseline:
``max((calls - burst) / refill, rounds of concurrency x 20 ms)`` seconds for what was sent), and no gap between
a long task's accepted beats over 1.5 intervals. Quick mode runs six cells, the bench's own repro among them.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from bench.common import Row

BURSTS = (50, 100, 1500, 3000)
REFILLS = (50, 200, 500)
CONCURRENCIES = (10, 100, 1000)
BATCHES = (10, 1000, 10_000)
QUICK = ((100, 200, 1000, 1000), (50, 50, 10, 1000), (50, 500, 100, 1000), (3000, 500, 1000, 1000),
         (1500, 50, 1000, 10), (100, 50, 100, 1000))  # fmt: skip
LATENCY = 0.02
INTERVAL = 2.0
LONG_TASKS = 5
INVOCATIONS = 2
MARGIN = 2.0


@dataclass
class Cell:
    """One cell's figures."""

    burst: int
    refill: int
    concurrency: int
    batch: int
    handed_back: int
    seconds: float
    best: float
    worst_gap: float
    throttled: int
    #: Each invocation's duration, in order.
    invocations: list[float]

    @property
    def share(self) -> float:
        """The best possible time over the time taken (1.0: as fast as the bucket allows)."""
        return min(1.0, self.best / max(self.seconds, 1e-9))

    @property
    def ok(self) -> bool:
        """Every target met."""
        return self.handed_back == 0 and self.share >= 0.9 and self.worst_gap <= 1.5 * INTERVAL


def run_cell(
    burst: int,
    refill: int,
    concurrency: int,
    batch: int,
    *,
    total: int | None = None,
    remaining: float | None = None,
    seed: int = 0,
) -> Cell:
    """Run one cell on simulated time (see the module docstring).

    Args:
        total: the completions in all (default: two batches), sent in invocations of ``batch``.
        remaining: each invocation's time (default: 60 s, or twice what the bucket needs for a batch).
    """
    import callback_kit.task.completion as completion
    from bench.quota import BucketedStepFunctions
    from bench.simtime import SimTime
    from callback_kit.exceptions import CallbackDeliveryError
    from callback_kit.outcome import Success
    from callback_kit.task.completion import Completer, RetryPolicy
    from callback_kit.task.ratelimit import RateLimiter

    sim = SimTime()
    rng = random.Random(seed)
    fake = BucketedStepFunctions(burst, refill, clock=sim.clock, sleep=sim.sleep, latency=LATENCY)
    limiter = RateLimiter(clock=sim.clock)
    saved = completion.limiter_for  # type: ignore[attr-defined]
    completion.limiter_for = lambda client: limiter  # type: ignore[attr-defined]
    completer = Completer(fake, RetryPolicy(sleep=sim.sleep, clock=sim.clock, random=rng.random))
    if remaining is None:
        remaining = min(900.0, max(60.0, 2 * batch / refill))
    sizes = [min(batch, left) for left in range(total or INVOCATIONS * batch, 0, -batch)]
    durations: list[float] = []
    handed_back = 0
    done = [False]
    finished = [0.0]

    def invocation(k: int) -> None:
        # The next invocation starts when the last worker of this one is done, as an SQS poller's would.
        if k == len(sizes):
            done[0] = True
            return
        began = sim.clock()
        deadline = began + remaining - MARGIN
        tokens = iter([fake.inner.open_task() for _ in range(sizes[k])])
        live = [min(concurrency, sizes[k])]

        def worker() -> None:
            nonlocal handed_back
            for token in tokens:  # one shared iterator: each record is taken by one worker
                try:
                    completer.complete(token, Success("{}"), deadline=deadline)
                except CallbackDeliveryError:
                    handed_back += 1
            finished[0] = max(finished[0], sim.clock())
            live[0] -= 1  # only the simulation's one running thread is ever here
            if live[0] == 0:
                durations.append(sim.clock() - began)
                invocation(k + 1)

        for _ in range(live[0]):
            sim.spawn(worker)

    def beating(token: str) -> None:
        due = sim.clock() + INTERVAL * (1 - 0.2 * rng.random())
        while not done[0]:
            sim.sleep(max(0.0, due - sim.clock()))
            if done[0]:
                break
            completer.heartbeat(token, within=INTERVAL / 2)
            due += INTERVAL

    long_tasks = [fake.inner.open_task() for _ in range(LONG_TASKS)]
    try:
        sim.spawn(invocation, 0)
        for token in long_tasks:
            sim.spawn(beating, token)
        sim.join()
    finally:
        completion.limiter_for = saved  # type: ignore[attr-defined]
    calls = fake.accepted
    rounds = sum(math.ceil(size / concurrency) for size in sizes)
    best = max((calls - burst) / refill, rounds * LATENCY, LATENCY)
    gaps = [b - a for token in long_tasks for a, b in itertools.pairwise([0.0, *fake.beats.get(token, [])])]
    gaps += [finished[0] - max([0.0, *fake.beats.get(token, [])]) for token in long_tasks]
    return Cell(burst, refill, concurrency, batch, handed_back, finished[0], best, max(gaps), fake.throttled, durations)


def cells(quick: bool) -> list[tuple[int, int, int, int]]:
    """The cells to run: all of them, or the quick few."""
    return list(QUICK) if quick else list(itertools.product(BURSTS, REFILLS, CONCURRENCIES, BATCHES))


def table(results: list[Cell]) -> str:
    """The cells as a Markdown table (for docs/performance.md)."""
    head = ["burst", "refill/s", "concurrency", "batch", "handed back", "time", "best", "rate share", "worst beat gap"]
    lines = ["| " + " | ".join([*head, "throttles", "met"]) + " |", "|---" * (len(head) + 2) + "|"]
    for c in results:
        lines.append(
            f"| {c.burst} | {c.refill} | {c.concurrency} | {c.batch} | {c.handed_back} | {c.seconds:.1f} s | "
            f"{c.best:.1f} s | {c.share:.0%} | {c.worst_gap:.1f} s | {c.throttled} | {'yes' if c.ok else 'NO'} |"
        )
    return "\n".join(lines)


def run_matrix(quick: bool) -> list[Cell]:
    """Every cell's figures, with callback-kit's log quiet (a throttled retry logs a warning each time)."""
    import logging

    from callback_kit.logs import get_logger

    logging.getLogger(get_logger().name).setLevel(logging.ERROR)
    return [run_cell(*cell) for cell in cells(quick)]


def run(quick: bool) -> list[Row]:
    """Run the matrix (quick: six cells) and return one row per cell."""
    results = run_matrix(quick)
    return [
        Row(
            "quota matrix",
            f"burst {c.burst}, {c.refill}/s, {c.concurrency} at once, batches of {c.batch}",
            f"{c.seconds:.1f} s, {c.handed_back} back, beats <= {c.worst_gap:.1f} s",
            f"{c.best:.1f} s",
            "the bucket's best time for the calls made",
            c.share,
            "x best rate",
            ">= 90%, 0 back, beats <= 3 s",
            c.ok,
        )
        for c in results
    ]


if __name__ == "__main__":  # python -m bench.quotamatrix [--quick]: the table for docs/performance.md
    import sys

    from bench.common import apply_fake_aws_env

    apply_fake_aws_env()
    done = run_matrix("--quick" in sys.argv)
    print(table(done))
    print(f"\n{sum(c.ok for c in done)} of {len(done)} cells meet every target")
