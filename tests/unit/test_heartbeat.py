"""The heartbeat scheduler: driven by an injected clock where possible; the thread tests wait on events only."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable

import pytest

from callback_kit.task.heartbeat import MIN_MANUAL_GAP, Beat, HeartbeatScheduler
from callback_kit.task.heartbeat_senders import SenderPool, senders_needed

WAIT = 10.0  # generous bound for events between real threads; never reached when the code is right


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
    assert sched.sent == 60
    for times in sent:
        assert len(times) == 6
        assert all(b - a >= 10 for a, b in itertools.pairwise(times))


def test_a_late_beat_does_not_push_the_next_one_later(clock: Clock) -> None:
    # GIVEN a task beating every 10 s whose first beat goes out 3 s late (the senders were busy)
    sched = scheduler(clock)
    sent: list[float] = []
    sched.register(recorder(sent, clock), 10, lambda: None)
    clock.now = 13.0
    sched.run_pending()
    # WHEN time passes on schedule
    advance(clock, sched, 31.0)
    # THEN the next beats keep the original rhythm (20, 30), not 23, 33
    assert sent == [13.0, 20.0, 30.0]


def test_a_very_late_beat_is_followed_at_least_half_an_interval_later(clock: Clock) -> None:
    # GIVEN a beat due at 10 that goes out at 18
    sched = scheduler(clock)
    sent: list[float] = []
    sched.register(recorder(sent, clock), 10, lambda: None)
    clock.now = 18.0
    sched.run_pending()
    # WHEN the next one (due at 20) comes
    advance(clock, sched, 30.0)
    # THEN it waits until half an interval after the late one: no two beats back to back
    assert sent == [18.0, 23.0]


def test_first_beat_is_jittered_within_the_interval(clock: Clock) -> None:
    # GIVEN a 20% jitter and the largest random draw
    sched = scheduler(clock, jitter=0.2, rand=1.0)
    sent: list[float] = []
    # WHEN a task is registered and time passes
    sched.register(recorder(sent, clock), 10, lambda: None)
    advance(clock, sched, 25.0, step=0.25)
    # THEN its first beat comes 20% early, and the next one interval after it
    assert sent[0] == pytest.approx(8.0)
    assert sent[1] == pytest.approx(18.0)


def test_closed_answer_stops_beats_and_reports_once(clock: Clock) -> None:
    # GIVEN a task whose second beat is answered "closed"
    sched = scheduler(clock)
    closed: list[bool] = []
    answers = iter([True, False, True])
    sched.register(lambda: next(answers), 5, lambda: closed.append(True))
    # WHEN time passes
    advance(clock, sched, 30.0)
    # THEN on_closed ran once, the beats stopped and the task is no longer open
    assert closed == [True]
    assert sched.sent == 2
    assert sched.open_tasks == 0


def test_unregistered_tasks_are_not_beaten(clock: Clock) -> None:
    # GIVEN a task that beat once
    sched = scheduler(clock)
    sent: list[float] = []
    beat = sched.register(recorder(sent, clock), 5, lambda: None)
    advance(clock, sched, 6.0)
    # WHEN it is unregistered (twice: harmless)
    sched.unregister(beat)
    sched.unregister(beat)
    advance(clock, sched, 60.0)
    # THEN it never beats again and nothing is left scheduled
    assert sent == [5.0]
    assert sched.run_pending() is None
    assert sched.open_tasks == 0


def test_a_task_that_ends_before_its_first_beat_costs_no_beat(clock: Clock) -> None:
    # GIVEN 10,000 tasks registered and unregistered before their first beat was due (the common case)
    sched = scheduler(clock)
    sent: list[float] = []
    for _ in range(10_000):
        sched.unregister(sched.register(recorder(sent, clock), 30, lambda: None))
    # WHEN their beats would have been due
    advance(clock, sched, 40.0, step=10.0)
    # THEN none was sent, none is open, and nothing was left in the heap
    assert sent == []
    assert sched.open_tasks == 0
    assert sched.run_pending() is None


def test_beat_now_brings_the_beat_forward_but_is_throttled(clock: Clock) -> None:
    # GIVEN a task beating every 30 s
    sched = scheduler(clock)
    sent: list[float] = []
    beat = sched.register(recorder(sent, clock), 30, lambda: None)
    # WHEN it asks for a beat now, then again at once
    clock.now = 2.0
    sched.beat_now(beat)
    sched.run_pending()
    sched.beat_now(beat)  # within MIN_MANUAL_GAP of the last beat: deferred, not dropped
    sched.run_pending()
    # THEN the first is sent now and the second only MIN_MANUAL_GAP later
    assert sent == [2.0]
    clock.now = 2.0 + MIN_MANUAL_GAP
    sched.run_pending()
    assert sent == [2.0, 3.0]
    # AND the regular rhythm resumes from the last beat
    advance(clock, sched, 40.0)
    assert sent == [2.0, 3.0, 33.0]


def test_manual_only_registration_beats_on_request_only(clock: Clock) -> None:
    # GIVEN a task registered with automatic heartbeats off (interval None)
    sched = scheduler(clock)
    sent: list[float] = []
    beat = sched.register(recorder(sent, clock), None, lambda: None)
    # WHEN time passes, then the function asks for beats in a tight loop
    advance(clock, sched, 100.0)
    assert sent == []
    for _ in range(5):
        sched.beat_now(beat)
        sched.run_pending()
    clock.now += MIN_MANUAL_GAP
    sched.beat_now(beat)
    sched.run_pending()
    # THEN it beat only when asked, at most once per MIN_MANUAL_GAP, and schedules nothing by itself
    assert sent == [100.0, 100.0 + MIN_MANUAL_GAP]
    assert sched.run_pending() is None
    assert sched.open_tasks == 1


def test_manual_beat_answered_closed_reports_it(clock: Clock) -> None:
    # GIVEN a manual-only task whose beat is answered "closed"
    sched = scheduler(clock)
    closed: list[bool] = []
    beat = sched.register(lambda: False, None, lambda: closed.append(True))
    # WHEN it asks for a beat
    sched.beat_now(beat)
    sched.run_pending()
    # THEN on_closed ran and the task is no longer open; further requests do nothing
    assert closed == [True]
    assert sched.open_tasks == 0
    sched.beat_now(beat)
    assert sched.run_pending() is None


def test_an_exception_in_send_does_not_stop_the_scheduler(clock: Clock) -> None:
    # GIVEN a send that always raises
    sched = scheduler(clock)
    calls: list[float] = []

    def flaky() -> bool:
        calls.append(clock.now)
        raise RuntimeError("network gone")

    sched.register(flaky, 5, lambda: None)
    # WHEN time passes
    advance(clock, sched, 16.0)
    # THEN it is still tried every interval
    assert calls == [5.0, 10.0, 15.0]


def test_interval_must_be_positive(clock: Clock) -> None:
    # GIVEN / WHEN a zero interval / THEN it is refused
    with pytest.raises(ValueError, match="positive"):
        scheduler(clock).register(lambda: True, 0, lambda: None)


def test_closed_verdict_after_unregister_never_calls_on_closed(clock: Clock) -> None:
    # GIVEN a beat in flight whose task is unregistered while the call is out (the completion won the race)
    sched = scheduler(clock)
    closed: list[bool] = []
    holder: dict[str, object] = {}

    def send() -> bool:
        sched.unregister(holder["beat"])  # type: ignore[arg-type]
        return False  # and Step Functions answers "closed" (it was just completed)

    holder["beat"] = sched.register(send, 5, lambda: closed.append(True))
    # WHEN the beat's answer comes back
    advance(clock, sched, 6.0)
    # THEN on_closed is not called: unregister returned first, so the verdict is void
    assert closed == []
    assert sched.open_tasks == 0


# -- with the real threads: events only, no timed assertions ------------------------------------------------


def test_one_scheduler_thread_and_a_bounded_set_of_senders() -> None:
    # GIVEN a real scheduler with at most 4 senders, and 100 open tasks
    before = set(threading.enumerate())
    sched = HeartbeatScheduler(jitter=0.0, max_senders=4)
    done = threading.Event()
    counts = [0] * 100

    def send(i: int) -> bool:
        counts[i] += 1
        if all(counts):
            done.set()
        return True

    beats = [sched.register(functools.partial(send, i), 0.05, lambda: None) for i in range(100)]
    # WHEN they beat
    assert done.wait(WAIT)
    # THEN one scheduler thread and at most 4 senders did it all
    new = [t.name for t in threading.enumerate() if t not in before]
    assert new.count("callback-kit-heartbeat") == 1
    assert 1 <= sum(1 for n in new if n.startswith("callback-kit-heartbeat-sender-")) <= 4
    for beat in beats:
        sched.unregister(beat)
    assert sched.open_tasks == 0


def test_unregister_does_not_wait_for_an_in_flight_beat() -> None:
    # GIVEN a beat that is being sent right now and is stuck (a slow SendTaskHeartbeat)
    sched = HeartbeatScheduler(jitter=0.0)
    sending, release = threading.Event(), threading.Event()
    closed: list[bool] = []

    def slow_send() -> bool:
        sending.set()
        release.wait(WAIT)
        return False  # the answer, when it comes: "closed" (the task was completed meanwhile)

    beat = sched.register(slow_send, 0.01, lambda: closed.append(True))
    assert sending.wait(WAIT)
    # WHEN the task unregisters (as the runner and the deadline guard do before completing)
    unregistered = threading.Event()

    def unregister() -> None:
        sched.unregister(beat)
        unregistered.set()

    t = threading.Thread(target=unregister)
    t.start()
    # THEN unregister returns while the beat is still in flight (on main it waited for the beat)
    try:
        assert unregistered.wait(WAIT)
        assert not release.is_set()
    finally:
        release.set()
        t.join(WAIT)
    # AND the beat's late "closed" answer is ignored: on_closed never runs after unregister returned
    deadline = threading.Event()
    while sched.sent < 1 and not deadline.wait(0.01):
        pass
    assert sched.sent == 1
    assert closed == []


def test_one_slow_heartbeat_does_not_delay_other_tasks() -> None:
    # GIVEN one task whose heartbeat call hangs, and another task beating beside it
    sched = HeartbeatScheduler(jitter=0.0)
    stuck, release = threading.Event(), threading.Event()
    other_beat = threading.Event()

    def hanging() -> bool:
        stuck.set()
        release.wait(WAIT)
        return True

    slow = sched.register(hanging, 0.01, lambda: None)
    assert stuck.wait(WAIT)
    # WHEN the other task's beat comes due while the first call still hangs

    def quick() -> bool:
        other_beat.set()
        return True

    fast = sched.register(quick, 0.05, lambda: None)
    # THEN it is sent anyway, by another sender (on main the one heartbeat thread was stuck)
    try:
        assert other_beat.wait(WAIT)
        assert not release.is_set()
        assert sched.senders >= 2
    finally:
        release.set()
        sched.unregister(slow)
        sched.unregister(fast)


def test_a_closed_verdict_racing_unregister_calls_on_closed_at_most_before_it_returns() -> None:
    # GIVEN many tasks whose beats are answered "closed" while the tasks are being unregistered concurrently
    sched = HeartbeatScheduler(jitter=0.0)
    late: list[int] = []
    for i in range(200):
        unregistered = threading.Event()
        beat = sched.register(lambda: False, 0.001, functools.partial(_closed_after, unregistered, late, i))
        # WHEN unregister races the verdict
        sched.unregister(beat)
        unregistered.set()
    # THEN no on_closed ran after its unregister had returned
    assert late == []


def _closed_after(unregistered: threading.Event, late: list[int], i: int) -> None:
    if unregistered.is_set():
        late.append(i)


@pytest.mark.parametrize(
    ("queued", "busy", "latency", "allowance", "needed"),
    [
        (1, 0, 0.02, 0.1, 1),  # one beat: one sender
        (20, 0, 0.03, 0.1, 6),  # a burst: enough to take the last within the allowance
        (300, 0, 0.03, 0.1, 90),  # 2,000 first beats in 0.4 s: the pool's cap decides
        (1, 1, 0.03, 0.1, 2),  # the only sender is busy (maybe stuck): one more
        (5, 30, 0.001, 1.5, 31),  # fast calls, long interval: barely more than the busy ones
    ],
)
def test_senders_needed(queued: int, busy: int, latency: float, allowance: float, needed: int) -> None:
    # GIVEN a queue and the observed latency / WHEN sizing / THEN as many senders as the wait allows
    assert senders_needed(queued, busy, latency, allowance) == needed


def test_sender_pool_grows_past_stuck_senders_up_to_its_cap() -> None:
    # GIVEN a pool of at most 3 senders whose calls all hang
    gate = threading.Event()
    now = [0.0]
    started = threading.Semaphore(0)

    def hang(item: int) -> None:
        started.release()
        gate.wait(WAIT)

    pool: SenderPool[int] = SenderPool(hang, clock=lambda: now[0], max_senders=3)
    try:
        # WHEN beats keep coming and the queue's head waits over half its allowance
        for i in range(10):
            pool.submit(i, allowance=0.1)
        now[0] = 1.0
        for _ in range(5):
            pool.check()
        for _ in range(3):
            assert started.acquire(timeout=WAIT)
        # THEN the pool grew to its cap, and no further
        assert pool.size == 3
        assert pool.check() == pytest.approx(0.025)  # beats still wait: look again soon
    finally:
        gate.set()


def test_the_scheduler_thread_survives_a_failed_round(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a scheduler whose first hand-off to the senders fails (no thread could be started, say)
    sched = HeartbeatScheduler(jitter=0.0)
    real_submit = sched._pool.submit
    failures: list[int] = []

    def submit_once_failing(beat: Beat, allowance: float) -> None:
        if not failures:
            failures.append(1)
            raise RuntimeError("can't start new thread")
        real_submit(beat, allowance)

    monkeypatch.setattr(sched._pool, "submit", submit_once_failing)
    beaten = threading.Event()

    def send() -> bool:
        beaten.set()
        return True

    # WHEN a task is registered
    beat = sched.register(send, 0.01, lambda: None)
    # THEN its beats still come, after the failed round
    try:
        assert beaten.wait(WAIT)
        assert failures == [1]
    finally:
        sched.unregister(beat)


def test_an_on_closed_that_raises_does_not_stop_the_scheduler(clock: Clock) -> None:
    # GIVEN one task whose on_closed raises, and another beating beside it
    sched = scheduler(clock)

    def broken() -> None:
        raise RuntimeError("bug in the callback")

    sched.register(lambda: False, 5, broken)
    sent: list[float] = []
    sched.register(recorder(sent, clock), 5, lambda: None)
    # WHEN the first is answered "closed" and time goes on
    advance(clock, sched, 11.0)
    # THEN the first is closed all the same, and the other keeps beating
    assert sched.open_tasks == 1
    assert sent == [5.0, 10.0]


def test_registrations_of_finished_tasks_do_not_pile_up_while_the_scheduler_sleeps(clock: Clock) -> None:
    # A sandbox running many short tasks: each registers and unregisters long before its first beat is due, and
    # the scheduler thread (here: nobody) does not wake in between. The queue must not hold them all.
    from callback_kit.task.heartbeat import COMPACT_AT

    sched = HeartbeatScheduler(clock=clock, start_thread=False, jitter=0.0)
    keep = [sched.register(lambda: True, 30, lambda: None) for _ in range(3)]
    for _ in range(5 * COMPACT_AT):
        beat = sched.register(lambda: True, 30, lambda: None)
        sched.unregister(beat)
        # An unregistered beat keeps nothing of its task (token, completer, task state) while it waits to be dropped.
        assert beat.send() is True
        assert beat.on_closed() is None
    assert len(sched._pending) <= COMPACT_AT + 1
    assert sched.open_tasks == 3
    # The tasks still open were kept, and still beat.
    clock.now = 30.0
    sched.run_pending()
    assert sched.sent == 3
    for beat in keep:
        sched.unregister(beat)


def test_the_heap_drops_entries_of_finished_tasks_in_bulk(clock: Clock) -> None:
    from callback_kit.task.heartbeat import COMPACT_AT

    sched = HeartbeatScheduler(clock=clock, start_thread=False, jitter=0.0)
    beats = [sched.register(lambda: True, 30, lambda: None) for _ in range(3 * COMPACT_AT)]
    sched.run_pending()  # moves them all into the heap (none due)
    assert len(sched._heap) == 3 * COMPACT_AT
    for beat in beats[1:]:
        sched.unregister(beat)
    sched.run_pending()
    assert len(sched._heap) == 1
    clock.now = 30.0
    sched.run_pending()
    assert sched.sent == 1
