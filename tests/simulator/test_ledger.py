"""Unit tests of the simulator's task ledger: one owner decides each task's fate (clock injected, no sleeping)."""

from __future__ import annotations

import threading

import pytest

from callback_kit.simulator.ledger import Closed, TaskClosedError, TaskLedger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> TaskLedger:
    return TaskLedger(clock=clock)


def test_the_first_answer_wins_and_later_ones_are_told_the_task_is_closed(ledger: TaskLedger) -> None:
    # GIVEN an open task
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=None)

    # WHEN it is answered twice, then beaten
    ledger.answer("t", "first")
    with pytest.raises(TaskClosedError) as second:
        ledger.answer("t", "second")
    with pytest.raises(TaskClosedError):
        ledger.beat("t")

    # THEN the first outcome is the task's, even for a waiter that comes after it
    assert second.value.reason is Closed.ANSWERED
    assert ledger.wait("t") == (Closed.ANSWERED, "first")


def test_an_answer_that_lands_before_anyone_waits_is_not_lost(ledger: TaskLedger) -> None:
    # GIVEN a task with HeartbeatSeconds answered at once (moto's race: before its heartbeat endpoint existed)
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=2)
    ledger.answer("t", "done")

    # WHEN the task starts waiting / THEN it sees the answer at once
    assert ledger.wait("t") == (Closed.ANSWERED, "done")


def test_a_token_never_opened_is_not_issued(ledger: TaskLedger) -> None:
    # GIVEN / WHEN / THEN the ledger knows nothing of a made-up token
    assert not ledger.issued("made-up")
    with pytest.raises(KeyError):
        ledger.answer("made-up", "x")
    with pytest.raises(KeyError):
        ledger.beat("made-up")


def test_heartbeats_restart_the_heartbeat_clock_and_its_expiry_closes_the_task(
    ledger: TaskLedger, clock: Clock
) -> None:
    # GIVEN a task with HeartbeatSeconds=2
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=2)

    # WHEN it is beaten at 1.5 s and 3 s, then left alone past 5 s
    clock.now += 1.5
    ledger.beat("t")
    clock.now += 1.5
    ledger.beat("t")
    clock.now += 2.0

    # THEN it closed for the missed heartbeat, and late callbacks are refused
    with pytest.raises(TaskClosedError) as late:
        ledger.answer("t", "late")
    assert late.value.reason is Closed.HEARTBEAT_TIMED_OUT
    assert ledger.wait("t") == (Closed.HEARTBEAT_TIMED_OUT, None)


def test_a_task_without_heartbeat_seconds_accepts_heartbeats_and_needs_none(ledger: TaskLedger, clock: Clock) -> None:
    # GIVEN a task without HeartbeatSeconds
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=None)

    # WHEN it is beaten once and then left silent for 9 s
    ledger.beat("t")
    clock.now += 9

    # THEN it still takes its answer
    ledger.answer("t", "ok")
    assert ledger.wait("t") == (Closed.ANSWERED, "ok")


def test_timeout_seconds_closes_the_task_whatever_the_heartbeats(ledger: TaskLedger, clock: Clock) -> None:
    # GIVEN a task beaten faithfully
    ledger.open("t", timeout_seconds=3, heartbeat_seconds=1)
    for _ in range(3):
        clock.now += 0.9
        ledger.beat("t")

    # WHEN TimeoutSeconds passes / THEN the task timed out: heartbeats never extend it
    clock.now += 0.5
    with pytest.raises(TaskClosedError) as late:
        ledger.beat("t")
    assert late.value.reason is Closed.TIMED_OUT


def test_a_task_whose_execution_stopped_is_closed(ledger: TaskLedger) -> None:
    # GIVEN a task whose execution is no longer running
    running = [True]
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=None, is_running=lambda: running[0])
    running[0] = False

    # WHEN / THEN callbacks are refused and the waiter returns
    with pytest.raises(TaskClosedError) as late:
        ledger.answer("t", "x")
    assert late.value.reason is Closed.ENDED
    assert ledger.wait("t") == (Closed.ENDED, None)


def test_closing_an_attempt_wakes_its_waiter_and_keeps_an_earlier_answer(ledger: TaskLedger) -> None:
    # GIVEN a waiter on an open task
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=None)
    result: list[tuple[Closed, object]] = []
    waiter = threading.Thread(target=lambda: result.append(ledger.wait("t")))
    waiter.start()

    # WHEN the attempt is closed by its end (the state's own timer, a retry)
    ledger.close("t")
    waiter.join(timeout=5)

    # THEN the waiter returned; a close after an answer leaves the answer
    assert result == [(Closed.ENDED, None)]
    ledger.open("u", timeout_seconds=10, heartbeat_seconds=None)
    ledger.answer("u", "kept")
    ledger.close("u")
    assert ledger.wait("u") == (Closed.ANSWERED, "kept")


def test_the_heartbeat_clock_restarts_when_the_task_starts_waiting(ledger: TaskLedger, clock: Clock) -> None:
    # GIVEN a task with HeartbeatSeconds=2 whose message took the simulator 1.5 s to send
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=2)
    clock.now += 1.5
    waiting = threading.Event()
    result: list[tuple[Closed, object]] = []

    def still_running() -> bool:
        waiting.set()  # called by wait() once it has re-armed the heartbeat clock
        return True

    waiter = threading.Thread(target=lambda: result.append(ledger.wait("t", still_running)))

    # WHEN the task starts waiting, and the worker's first beat comes 1.8 s later
    waiter.start()
    assert waiting.wait(timeout=5)
    clock.now += 1.8
    ledger.beat("t")
    ledger.answer("t", "done")
    waiter.join(timeout=5)

    # THEN the send's 1.5 s did not count against the worker
    assert result == [(Closed.ANSWERED, "done")]


def test_the_heartbeat_clock_restarts_once_when_the_worker_is_handed_the_task(ledger: TaskLedger, clock: Clock) -> None:
    # GIVEN a task with HeartbeatSeconds=2 whose function is invoked 1.5 s after the attempt opened
    ledger.open("t", timeout_seconds=10, heartbeat_seconds=2)
    clock.now += 1.5
    ledger.hand_over("t")

    # WHEN the function works 2.5 s inside the invoke without beating, and only then the task waits
    clock.now += 2.5

    # THEN the heartbeat was missed: waiting does not restart the clock a second time
    assert ledger.wait("t") == (Closed.HEARTBEAT_TIMED_OUT, None)
