"""The heartbeat scheduler, driven by an injected clock: no test here sleeps."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable

import pytest

from callback_kit.heartbeat import MIN_MANUAL_GAP, HeartbeatScheduler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def scheduler(clock: Clock, jitter: float = 0.0, rand: float = 0.0) -> HeartbeatScheduler:
    return HeartbeatScheduler(clock=clock, rand=lambda: rand, jitter=jitter, start_thread=False)


def recorder(sent: list[float], clock: Clock) -> Callable[[], bool]:
    """A heartbeat send that records when it was called and answers "still open"."""

    def send() -> bool:
        sent.append(clock.now)
        return True

    return send


def advance(clock: Clock, sched: HeartbeatScheduler, until: float, step: float = 0.5) -> None:
    while clock.now < until:
        clock.now = min(until, clock.now + step)
        sched.run_pending()


def test_beats_once_per_interval_per_task(clock: Clock) -> None:
    # GIVEN 10 tasks beating every 10 s
    sched = scheduler(clock)
    sent: list[list[float]] = [[] for _ in range(10)]
    for i in range(10):
        sched.register(recorder(sent[i], clock), 10, lambda: None)
    # WHEN 60 s pass
    advance(clock, sched, 60.0)
    # THEN each task beat 6 times, never twice within one interval
    assert sum(len(times) for times in sent) == 60
    for times in sent:
        assert len(times) == 6
        assert all(b - a >= 10 for a, b in itertools.pairwise(times))


def test_first_beat_is_jittered_within_the_interval(clock: Clock) -> None:
    sched = scheduler(clock, jitter=0.2, rand=1.0)
    sent: list[float] = []
    sched.register(recorder(sent, clock), 10, lambda: None)
    advance(clock, sched, 25.0, step=0.25)
    assert sent[0] == pytest.approx(8.0)
    assert sent[1] == pytest.approx(18.0)


def test_closed_answer_stops_beats_and_reports_once(clock: Clock) -> None:
    sched = scheduler(clock)
    closed: list[bool] = []
    answers = iter([True, False, True])
    sched.register(lambda: next(answers), 5, lambda: closed.append(True))
    advance(clock, sched, 30.0)
    assert closed == [True]
    assert sched.sent == 2
    assert sched.open_tasks == 0


def test_unregistered_tasks_are_not_beaten(clock: Clock) -> None:
    sched = scheduler(clock)
    sent: list[float] = []
    beat = sched.register(recorder(sent, clock), 5, lambda: None)
    advance(clock, sched, 6.0)
    sched.unregister(beat)
    sched.unregister(beat)  # twice is harmless
    advance(clock, sched, 60.0)
    assert sent == [5.0]
    assert sched.run_pending() is None
    assert sched.open_tasks == 0


def test_beat_now_brings_the_beat_forward_but_is_throttled(clock: Clock) -> None:
    sched = scheduler(clock)
    sent: list[float] = []
    beat = sched.register(recorder(sent, clock), 30, lambda: None)
    clock.now = 2.0
    sched.beat_now(beat)
    sched.run_pending()
    sched.beat_now(beat)  # within MIN_MANUAL_GAP of the last beat: deferred, not dropped
    sched.run_pending()
    assert sent == [2.0]
    clock.now = 2.0 + MIN_MANUAL_GAP
    sched.run_pending()
    assert sent == [2.0, 3.0]
    # and the regular rhythm resumes from the last beat
    advance(clock, sched, 40.0)
    assert sent == [2.0, 3.0, 33.0]


def test_an_exception_in_send_does_not_stop_the_scheduler(clock: Clock) -> None:
    sched = scheduler(clock)
    calls: list[float] = []

    def flaky() -> bool:
        calls.append(clock.now)
        raise RuntimeError("network gone")

    sched.register(flaky, 5, lambda: None)
    advance(clock, sched, 16.0)
    assert calls == [5.0, 10.0, 15.0]


def test_interval_must_be_positive(clock: Clock) -> None:
    with pytest.raises(ValueError, match="positive"):
        scheduler(clock).register(lambda: True, 0, lambda: None)


def test_one_thread_serves_every_task() -> None:
    # GIVEN a real scheduler with its thread, and 100 open tasks
    before = threading.active_count()
    sched = HeartbeatScheduler(jitter=0.0)
    done = threading.Event()
    counts = [0] * 100

    def send(i: int) -> bool:
        counts[i] += 1
        if all(counts):
            done.set()
        return True

    beats = [sched.register(functools.partial(send, i), 0.05, lambda: None) for i in range(100)]
    # WHEN they beat
    assert done.wait(5.0)
    # THEN a single heartbeat thread did it all
    assert threading.active_count() - before == 1
    for beat in beats:
        sched.unregister(beat)
    assert sched.open_tasks == 0


def test_unregister_waits_for_an_in_flight_beat() -> None:
    # GIVEN a beat that is being sent right now
    sched = HeartbeatScheduler(jitter=0.0)
    sending, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow_send() -> bool:
        sending.set()
        release.wait(5.0)
        finished.append("beat")
        return True

    beat = sched.register(slow_send, 0.01, lambda: None)
    assert sending.wait(5.0)

    # WHEN the task unregisters (as the runner does before its completion call)
    def unregister() -> None:
        sched.unregister(beat)
        finished.append("unregistered")

    t = threading.Thread(target=unregister)
    t.start()
    release.set()
    t.join(5.0)
    # THEN unregister returned only after the beat finished
    assert finished == ["beat", "unregistered"]
