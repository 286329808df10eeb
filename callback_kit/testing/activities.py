"""The activity half of :class:`~callback_kit.testing.FakeStepFunctions`: queues, long polls and task timeouts."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from callback_kit.testing.fake_sfn import Call, _Fault, _Task

_OK = {"HTTPStatusCode": 200}


@dataclass
class _Timeouts:
    """An activity task's TimeoutSeconds / HeartbeatSeconds, as deadlines on the fake's clock."""

    expires_at: float | None = None
    heartbeat_seconds: float | None = None
    heartbeat_due: float | None = None


@dataclass
class _ActivityTask:
    token: str
    input: str


class ActivityFake:
    """GetActivityTask and activity task timeouts, mixed into :class:`~callback_kit.testing.FakeStepFunctions`."""

    # Provided by FakeStepFunctions (dataclass fields).
    calls: list[Call]
    tasks: dict[str, _Task]
    latency: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    activity_poll_seconds: float
    activity_polls: int
    max_open_polls: int
    _faults: list[_Fault]
    _activity_queues: dict[str, deque[_ActivityTask]]
    _timeouts: dict[str, _Timeouts]
    _open_polls: int
    _poll_cond: threading.Condition
    _lock: threading.RLock

    def open_task(self, token: str | None = None) -> str:  # pragma: no cover - FakeStepFunctions defines it
        raise NotImplementedError

    def _raise(self, api: str, token: str, params: dict[str, Any], error: str | BaseException) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - FakeStepFunctions defines it

    def add_activity_task(
        self,
        activity_arn: str,
        input: Any = None,
        *,
        token: str | None = None,
        timeout_seconds: float | None = None,
        heartbeat_seconds: float | None = None,
    ) -> str:
        """Queue a task on an activity, as a state machine's activity task does, and return its token.

        Args:
            input: the task input: a string is sent as is, anything else as JSON (``None``: ``{}``).
            timeout_seconds: the task's ``TimeoutSeconds``, counted from now (queue time included, as on AWS).
            heartbeat_seconds: the task's ``HeartbeatSeconds``, counted from the poll that hands it out and
                renewed by each accepted heartbeat.

        Example:
            >>> from callback_kit.testing import FakeStepFunctions
            >>> sfn = FakeStepFunctions(activity_poll_seconds=0.01)
            >>> token = sfn.add_activity_task("arn:aws:states:us-east-1:123456789012:activity:a", {"age": 30})
            >>> sfn.get_activity_task(activityArn="arn:aws:states:us-east-1:123456789012:activity:a")["input"]
            '{"age": 30}'
        """
        text = input if isinstance(input, str) else json.dumps({} if input is None else input)
        token = self.open_task(token)
        with self._poll_cond:
            now = self.clock()
            self._timeouts[token] = _Timeouts(
                expires_at=None if timeout_seconds is None else now + timeout_seconds,
                heartbeat_seconds=heartbeat_seconds,
            )
            self._activity_queues.setdefault(activity_arn, deque()).append(_ActivityTask(token, text))
            self._poll_cond.notify_all()
        return token

    def pending_activity_tasks(self, activity_arn: str) -> int:
        """How many tasks of the activity are queued and not yet handed out."""
        with self._lock:
            return len(self._activity_queues.get(activity_arn, ()))

    @property
    def open_polls(self) -> int:
        """GetActivityTask calls waiting now."""
        return self._open_polls

    def get_activity_task(self, *, activityArn: str, workerName: str = "") -> dict[str, Any]:
        """GetActivityTask: the oldest open queued task, or, after ``activity_poll_seconds``, no ``taskToken``."""
        if self.latency:
            self.sleep(self.latency)
        params = {"activityArn": activityArn, "workerName": workerName}
        give_up = time.monotonic() + self.activity_poll_seconds
        with self._poll_cond:
            fault = next((f for f in self._faults if f.api == "GetActivityTask" and f.times > 0), None)
            if fault is not None:
                fault.times -= 1
                self._raise("GetActivityTask", "", params, fault.error)
            self._open_polls += 1
            self.max_open_polls = max(self.max_open_polls, self._open_polls)
            try:
                while True:
                    task = self._next_activity_task(activityArn)
                    if task is not None:
                        self.calls.append(_call("GetActivityTask", task.token, params, "ok"))
                        return {"taskToken": task.token, "input": task.input, "ResponseMetadata": _OK}
                    remaining = give_up - time.monotonic()
                    if remaining <= 0:
                        return {"ResponseMetadata": _OK}
                    self._poll_cond.wait(remaining)
            finally:
                self._open_polls -= 1
                self.activity_polls += 1

    def _next_activity_task(self, activity_arn: str) -> _ActivityTask | None:
        queue = self._activity_queues.get(activity_arn)
        while queue:
            task = queue.popleft()
            self._expire_if_due(task.token)
            if self.tasks[task.token].closed_reason is None:
                timeouts = self._timeouts[task.token]
                if timeouts.heartbeat_seconds is not None:
                    timeouts.heartbeat_due = self.clock() + timeouts.heartbeat_seconds
                return task
        return None

    def _expire_if_due(self, token: str) -> None:
        """Close an activity task whose timeout or heartbeat deadline has passed, as Step Functions does."""
        timeouts = self._timeouts.get(token)
        task = self.tasks.get(token)
        if timeouts is None or task is None or task.closed_reason is not None:
            return
        now = self.clock()
        if timeouts.expires_at is not None and now >= timeouts.expires_at:
            task.closed_reason = "TaskTimedOut"
        elif timeouts.heartbeat_due is not None and now >= timeouts.heartbeat_due:
            task.closed_reason = "HeartbeatTimeout"


def _call(api: str, token: str, params: dict[str, Any], result: str) -> Call:
    from callback_kit.testing.fake_sfn import Call

    return Call(api, token, params, result)
