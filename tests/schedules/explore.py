"""Run many schedules (in several processes if asked), check each, and report the violations with their seeds.

Schedule ``k`` of a run from seed ``S`` has seed ``S + k``: ``--replay S+k`` runs exactly that schedule again.

A violation that depends only on timing (the handler returning after the deadline, a timeout ending after it) is
run twice more, at five
times the scale, before it counts: on a loaded machine a thread wakes late and starting a thread costs
milliseconds, and such real-time costs do not shrink with the scale as the schedule's times do. A lateness that
comes from the library's logic (a wait without a bound) stays at any scale; one that does not come back is
reported as *unconfirmed* and does not count.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import logging
import multiprocessing
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from callback_kit.logs import get_logger
from tests.schedules.checks import STALL, Violation, ambiguous_records, check
from tests.schedules.drivers import run
from tests.schedules.plan import Schedule, generate

#: One schedule second, in real seconds.
DEFAULT_SCALE = 0.01
#: Causes that timing noise alone can produce; they are confirmed by running the schedule again.
TIMING_CAUSES = frozenset({"handler returned after the deadline", "completion timeout ends after the deadline", STALL})
CONFIRM_RUNS = 2
#: How much slower the confirming runs play the schedule.
CONFIRM_SCALE = 5


@dataclass
class Outcome:
    """The checked result of one schedule."""

    seed: int
    description: str
    violations: list[Violation]
    ambiguous: int = 0
    unconfirmed: list[Violation] = field(default_factory=list)
    seconds: float = 0.0


def run_seed(seed: int, scale: float = DEFAULT_SCALE, schedule: Schedule | None = None) -> Outcome:
    """Run and check the schedule of ``seed`` (or ``schedule``, for tests that build their own)."""
    s = schedule or generate(seed)
    began = time.monotonic()
    trace = run(s, scale)
    violations = check(trace)
    outcome = Outcome(seed, s.describe(), violations, ambiguous_records(trace), seconds=time.monotonic() - began)
    timing = [v for v in violations if v.cause in TIMING_CAUSES]
    if timing:
        for _ in range(CONFIRM_RUNS):
            again = {v.cause for v in check(run(s, scale * CONFIRM_SCALE))}
            if not again & TIMING_CAUSES:
                outcome.violations = [v for v in violations if v.cause not in TIMING_CAUSES]
                outcome.unconfirmed = timing
                break
    return outcome


def quiet_library_output() -> None:
    """Send the library's printed log lines nowhere (each schedule captures them itself), so reports stay readable.

    A thread that a schedule left running may still log after that schedule's capture ended.
    """
    for handler in get_logger()._logger.handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is not _SINK:
            handler.setStream(_SINK)


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


_SINK = _Discard()


def _chunk(seeds: Sequence[int], scale: float) -> list[Outcome]:
    quiet_library_output()
    return [run_seed(seed, scale) for seed in seeds]


def run_many(seeds: Sequence[int], scale: float = DEFAULT_SCALE, jobs: int = 1) -> Iterable[Outcome]:
    """Every seed's outcome; with ``jobs`` > 1, in that many fresh processes (threads left over stay apart)."""
    if jobs <= 1:
        for seed in seeds:
            yield run_seed(seed, scale)
        return
    size = max(1, min(50, len(seeds) // (jobs * 4) or 1))
    chunks = [seeds[k : k + size] for k in range(0, len(seeds), size)]
    context = multiprocessing.get_context("spawn")  # never fork a process full of threads
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        for outcomes in pool.map(_chunk, chunks, [scale] * len(chunks)):
            yield from outcomes
