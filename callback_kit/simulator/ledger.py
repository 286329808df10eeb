"""The simulator's own record of every callback task: open or closed, its outcome and its clocks.

moto keeps a task's state in several places (a callback endpoint, a heartbeat endpoint set up late, the
state's timer thread) and decides a task's fate from whichever fires first, so a callback can be accepted and
then lost, and a closed task's token answers ``InvalidToken``. AWS has one answer per token. The
:class:`TaskLedger` is that single owner: a task is *opened* when an attempt starts, and from then on exactly
one of these closes it, under one lock: an accepted SendTaskSuccess/SendTaskFailure, the heartbeat clock, the
``TimeoutSeconds`` clock, the execution ending, or the attempt ending. Whatever comes after the close is told
``TaskTimedOut``, as AWS does; a token the ledger never saw is not one Step Functions issued.

Pure Python (no moto import), so that it can be tested on its own with an injected clock.

Example:
    >>> ledger = TaskLedger()
    >>> ledger.open("tok-1", timeout_seconds=3, heartbeat_seconds=None)
    >>> ledger.answer("tok-1", "the outcome")
    >>> ledger.answer("tok-1", "a second one")
    Traceback (most recent call last):
    ...
    callback_kit.simulator.ledger.TaskClosedError: task closed (answered)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["LEDGER", "Closed", "TaskClosedError", "TaskLedger", "TaskRecord"]

# How often a waiting task looks at its execution (stops and ends are not signalled to it).
_POLL_SECONDS = 0.05


class Closed(str, Enum):
    """Why a task is no longer open."""

    ANSWERED = "answered"
    TIMED_OUT = "timed out"
    HEARTBEAT_TIMED_OUT = "heartbeat timed out"
    ENDED = "ended"
    """The attempt or the execution ended for another reason: stopped, failed elsewhere, retried."""


class TaskClosedError(Exception):
    """The token was issued, but its task is closed: AWS answers ``TaskTimedOut``."""

    def __init__(self, reason: Closed) -> None:
        super().__init__(f"task closed ({reason.value})")
        self.reason = reason


@dataclass
class TaskRecord:
    """One attempt of one callback task, as the ledger sees it."""

    token: str
    deadline: float
    heartbeat_seconds: float | None
    beat_deadline: float | None
    is_running: Callable[[], bool]
    outcome: Any = None
    closed: Closed | None = None
    handed_over: bool = False


class TaskLedger:
    """Every task token the simulator issued, and whether its task is still open.

    Args:
        clock: monotonic seconds; injected by tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._records: dict[str, TaskRecord] = {}

    def open(
        self,
        token: str,
        *,
        timeout_seconds: float,
        heartbeat_seconds: float | None,
        is_running: Callable[[], bool] = lambda: True,
    ) -> None:
        """Start an attempt: its clocks run from now and callbacks are accepted until it closes.

        Args:
            token: the attempt's task token (a retry opens a new one).
            timeout_seconds: the state's ``TimeoutSeconds``.
            heartbeat_seconds: the state's ``HeartbeatSeconds`` (``None``: heartbeats are accepted, not required).
            is_running: whether the execution (or branch) the task belongs to still runs.
        """
        now = self._clock()
        with self._cond:
            self._records[token] = TaskRecord(
                token=token,
                deadline=now + timeout_seconds,
                heartbeat_seconds=heartbeat_seconds,
                beat_deadline=None if heartbeat_seconds is None else now + heartbeat_seconds,
                is_running=is_running,
            )

    def issued(self, token: str) -> bool:
        """Whether the token was issued by this simulator (open or closed)."""
        with self._cond:
            return token in self._records

    def answer(self, token: str, outcome: Any) -> None:
        """Close the task with a callback's outcome; the first one wins.

        Raises:
            KeyError: the token was never issued.
            TaskClosedError: the task is already closed.
        """
        with self._cond:
            record = self._open_record(token)
            record.outcome = outcome
            record.closed = Closed.ANSWERED
            self._cond.notify_all()

    def beat(self, token: str) -> None:
        """Record a heartbeat: the heartbeat clock restarts (a task without HeartbeatSeconds accepts it too).

        Raises:
            KeyError: the token was never issued.
            TaskClosedError: the task is closed.
        """
        with self._cond:
            record = self._open_record(token)
            if record.heartbeat_seconds is not None:
                record.beat_deadline = self._clock() + record.heartbeat_seconds

    def hand_over(self, token: str) -> None:
        """Mark the moment the worker is handed the task; the heartbeat clock restarts then, once per attempt.

        The simulator's own slowness in sending the SQS message or invoking the function (on AWS: milliseconds)
        is not the worker's. Unknown tokens are ignored.
        """
        with self._cond:
            record = self._records.get(token)
            if record is not None:
                self._hand_over(record)

    def close(self, token: str, reason: Closed = Closed.ENDED) -> None:
        """Close the task unless something closed it first (the attempt ended, the execution stopped)."""
        with self._cond:
            record = self._records.get(token)
            if record is not None and record.closed is None:
                record.closed = reason
                self._cond.notify_all()

    def wait(self, token: str, is_running: Callable[[], bool] | None = None) -> tuple[Closed, Any]:
        """Block until the task closes; return why, and the accepted outcome when it was answered.

        Called once per attempt, once the worker has been handed the task (see :meth:`hand_over`). The outcome is
        looked at before every wait, so a callback accepted at any moment after :meth:`open` (even before anyone
        waits) is never lost.

        Args:
            token: an open (or closed) token.
            is_running: the waiting side's own view of whether it still runs (e.g. moto's task frame).
        """
        with self._cond:
            record = self._records[token]
            self._hand_over(record)
            while True:
                if record.closed is None:
                    self._expire(record, is_running)
                if record.closed is not None:
                    return record.closed, record.outcome
                now = self._clock()
                until = min(record.deadline, record.beat_deadline or record.deadline)
                self._cond.wait(max(0.0, min(until - now, _POLL_SECONDS)))

    def forget(self) -> None:
        """Drop every record (when the last simulator stops)."""
        with self._cond:
            for record in self._records.values():
                record.closed = record.closed or Closed.ENDED
            self._records.clear()
            self._cond.notify_all()

    def _hand_over(self, record: TaskRecord) -> None:
        if record.handed_over or record.closed is not None:
            return
        record.handed_over = True
        if record.heartbeat_seconds is not None and record.beat_deadline is not None:
            record.beat_deadline = max(record.beat_deadline, self._clock() + record.heartbeat_seconds)

    def _open_record(self, token: str) -> TaskRecord:
        record = self._records[token]
        if record.closed is None:
            self._expire(record, None)
        if record.closed is not None:
            raise TaskClosedError(record.closed)
        return record

    def _expire(self, record: TaskRecord, is_running: Callable[[], bool] | None) -> None:
        """Close ``record`` if one of its clocks ran out or its execution ended (caller holds the lock)."""
        now = self._clock()
        if not record.is_running() or (is_running is not None and not is_running()):
            record.closed = Closed.ENDED
        elif now >= record.deadline:
            record.closed = Closed.TIMED_OUT
        elif record.beat_deadline is not None and now >= record.beat_deadline:
            record.closed = Closed.HEARTBEAT_TIMED_OUT
        if record.closed is not None:
            self._cond.notify_all()


LEDGER = TaskLedger()
"""The process's ledger: tokens are unique, so every simulator in the process shares it."""
