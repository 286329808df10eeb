"""An in-memory Step Functions that answers callbacks as AWS does, records them, and injects faults."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callback_kit.outcome import MAX_CAUSE_CHARS, MAX_OUTPUT_BYTES
from callback_kit.testing.activities import ActivityFake, _ActivityTask, _Timeouts

# HTTP status Step Functions answers each error code with, so that fakes classify like the real service.
_STATUS = {
    "ThrottlingException": 400,
    "KmsThrottlingException": 400,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}


def client_error(api: str, code: str, message: str = "", status: int | None = None) -> Exception:
    """A botocore ``ClientError`` as Step Functions would raise it for ``api``.

    Example:
        >>> client_error("SendTaskSuccess", "TaskTimedOut").response["Error"]["Code"]
        'TaskTimedOut'
    """
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": code, "Message": message or code},
        "ResponseMetadata": {"HTTPStatusCode": status or _STATUS.get(code, 400)},
    }
    return ClientError(response, api)


@dataclass
class Call:
    """One request the fake received."""

    api: str
    token: str
    params: dict[str, Any]
    result: str  # "ok" or the error code / exception name it answered with


@dataclass
class _Fault:
    api: str
    error: str | BaseException
    times: int
    skip: int
    landed: bool


@dataclass
class _Task:
    closed_reason: str | None = None
    outcome: tuple[Any, ...] | None = None
    heartbeats: int = 0


@dataclass
class FakeStepFunctions(ActivityFake):
    """An in-memory Step Functions that answers callbacks as AWS does, records them, and injects faults.

    Tokens come from :meth:`open_task`. A token that was never opened gets ``InvalidToken``; a task that was
    answered or :meth:`close_task`-ed gets ``TaskTimedOut`` (AWS's answer for "expired or already closed").
    Size limits are enforced as by the service (``ValidationException``), and a non-JSON output gets
    ``InvalidOutput``.

    Activities: :meth:`add_activity_task` queues a task (optionally with ``timeout_seconds`` and
    ``heartbeat_seconds``, measured on ``clock``); :meth:`get_activity_task` long-polls as AWS does, holding the
    call up to ``activity_poll_seconds`` (real time; AWS: 60 s) and answering without a ``taskToken`` when no
    work came. A task past its timeout, or whose heartbeat is overdue, is closed: calls for it get
    ``TaskTimedOut``. ``inject("GetActivityTask", ...)`` makes polls fail (``"*"`` faults never apply to polls).

    Example:
        >>> sfn = FakeStepFunctions()
        >>> token = sfn.open_task()
        >>> sfn.inject("SendTaskSuccess", "ThrottlingException", times=2)
        >>> sfn.send_task_success(taskToken=token, output="{}")
        Traceback (most recent call last):
        ...
        botocore.exceptions.ClientError: An error occurred (ThrottlingException) when calling the SendTaskSuccess ...
    """

    # The constructor takes the four settings below; everything else is state the fake keeps (init=False), so that
    # help() and signature() show what a test may pass and nothing of the inside.
    #: Seconds every callback call takes (real time, through ``sleep``); with :meth:`with_timeout`, a slow call.
    latency: float = 0.0
    #: How ``latency`` is waited (inject a fake one to run slow calls without waiting).
    sleep: Callable[[float], None] = time.sleep
    #: How long :meth:`get_activity_task` holds a poll when there is no work (AWS: 60 s); keep it short in tests.
    activity_poll_seconds: float = 60.0
    #: The clock activity task timeouts are measured on; inject a fake one to expire tasks without waiting.
    clock: Callable[[], float] = time.monotonic
    #: Every request received, in order.
    calls: list[Call] = field(default_factory=list, init=False)
    #: The tasks by token (opened, answered, closed).
    tasks: dict[str, _Task] = field(default_factory=dict, init=False)
    #: Polls that returned, with or without a task, and the most that were ever open at once.
    activity_polls: int = field(default=0, init=False)
    max_open_polls: int = field(default=0, init=False)
    #: The timeout of every call made through :meth:`with_timeout`, in order.
    timeouts: list[float] = field(default_factory=list, init=False)
    _faults: list[_Fault] = field(default_factory=list, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _activity_queues: dict[str, deque[_ActivityTask]] = field(default_factory=dict, init=False, repr=False)
    _timeouts: dict[str, _Timeouts] = field(default_factory=dict, init=False, repr=False)
    _open_polls: int = field(default=0, init=False, repr=False)
    _poll_cond: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._poll_cond = threading.Condition(self._lock)

    # -- set-up ---------------------------------------------------------------------------------------------
    def open_task(self, token: str | None = None) -> str:
        """Create an open task and return its token (a new random one unless given)."""
        token = token or f"AQB{uuid.uuid4().hex}{uuid.uuid4().hex}"
        with self._lock:
            self.tasks[token] = _Task()
        return token

    def close_task(self, token: str, reason: str = "TaskTimedOut") -> None:
        """Close a task as Step Functions does when it times out or its execution stops."""
        with self._lock:
            self.tasks.setdefault(token, _Task()).closed_reason = reason

    def inject(
        self,
        api: str,
        error: str | BaseException,
        *,
        times: int = 1,
        skip: int = 0,
        landed: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``api`` (after ``skip`` good ones) fail with ``error``.

        Args:
            api: ``"SendTaskSuccess"``, ``"SendTaskFailure"``, ``"SendTaskHeartbeat"`` or ``"*"`` for any.
            error: an AWS error code (raised as a ClientError) or an exception to raise (e.g. botocore's
                ``EndpointConnectionError`` or ``ReadTimeoutError``).
            landed: apply the call before failing, as when a response is lost after the service acted on it.
        """
        with self._lock:
            self._faults.append(_Fault(api, error, times, skip, landed))

    # -- the stepfunctions client methods -------------------------------------------------------------------
    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        """SendTaskSuccess."""
        return self._handle("SendTaskSuccess", taskToken, {"output": output})

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        """SendTaskFailure."""
        return self._handle("SendTaskFailure", taskToken, {"error": error, "cause": cause})

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        """SendTaskHeartbeat."""
        return self._handle("SendTaskHeartbeat", taskToken, {})

    def with_timeout(self, seconds: float) -> TimedFake:
        """A view of this fake whose calls give up after ``seconds``, as a client with that read timeout does.

        A call slower than that (``latency`` above ``seconds``) waits ``seconds``, is carried out (the request
        had been sent), and raises botocore's ``ReadTimeoutError``: its fate is unknown to the caller.
        ``timeouts`` records the bound of every call made through a view.
        """
        return TimedFake(self, seconds)

    # -- inspection -----------------------------------------------------------------------------------------
    def outcome(self, token: str) -> tuple[Any, ...] | None:
        """How the task was answered: ``("success", output)``, ``("failure", error, cause)``, or ``None`` while not.

        JSON that was sent is decoded, text is left as text: the output is always decoded (it is JSON); the cause
        is decoded when it is a JSON object (callback-kit's Lambda-style cause of an unexpected exception:
        ``errorMessage``, ``errorType``, ``stackTrace``) and is the text as sent otherwise (a ``TaskFailed``
        message, a ``cause=``). :meth:`outputs` and :meth:`failures` decode the same way.

        Example:
            >>> sfn = FakeStepFunctions()
            >>> ok, bad, odd = sfn.open_task(), sfn.open_task(), sfn.open_task()
            >>> _ = sfn.send_task_success(taskToken=ok, output='{"approved": true}')
            >>> _ = sfn.send_task_failure(taskToken=bad, error="Order.Invalid", cause="negative total")
            >>> _ = sfn.send_task_failure(taskToken=odd, error="KeyError", cause='{"errorMessage": "total"}')
            >>> sfn.outcome(ok)
            ('success', {'approved': True})
            >>> sfn.outcome(bad)
            ('failure', 'Order.Invalid', 'negative total')
            >>> sfn.outcome(odd)
            ('failure', 'KeyError', {'errorMessage': 'total'})
        """
        task = self.tasks.get(token)
        if task is None or task.outcome is None:
            return None
        if task.outcome[0] == "failure":
            return ("failure", task.outcome[1], decode_cause(task.outcome[2]))
        return task.outcome

    def outputs(self) -> list[Any]:
        """The decoded outputs of every delivered success, in order."""
        return [json.loads(c.params["output"]) for c in self.calls if c.api == "SendTaskSuccess" and c.result == "ok"]

    def failures(self) -> list[tuple[str, Any]]:
        """``(error, cause)`` of every delivered failure, in order; the cause decoded as by :meth:`outcome`."""
        return [
            (c.params["error"], decode_cause(c.params["cause"]))
            for c in self.calls
            if c.api == "SendTaskFailure" and c.result == "ok"
        ]

    def heartbeats(self, token: str | None = None) -> int:
        """How many heartbeats were accepted (for one token, or in all)."""
        return sum(
            1 for c in self.calls if c.api == "SendTaskHeartbeat" and c.result == "ok" and token in (None, c.token)
        )

    def calls_for(self, token: str, api: str | None = None) -> list[Call]:
        """The requests made for one token (optionally of one API)."""
        return [c for c in self.calls if c.token == token and api in (None, c.api)]

    # -- internals ------------------------------------------------------------------------------------------
    def _handle(self, api: str, token: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        timed_out = timeout is not None and self.latency > timeout
        if self.latency:
            self.sleep(timeout if timed_out and timeout is not None else self.latency)
        if timed_out:
            from botocore.exceptions import ReadTimeoutError

            self._apply(api, token, params)  # landed: only the answer is lost
            with self._lock:
                self.calls[-1].result = "ReadTimeoutError(landed)"
            raise ReadTimeoutError(endpoint_url="https://states.fake")
        return self._apply(api, token, params)

    def _apply(self, api: str, token: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._expire_if_due(token)
            fault = self._take_fault(api)
            if fault is not None and not fault.landed:
                return self._raise(api, token, params, fault.error)
            code = self._validate(api, token, params)
            if code is not None:
                return self._raise(api, token, params, code)
            task = self.tasks[token]
            if api == "SendTaskHeartbeat":
                task.heartbeats += 1
                timeouts = self._timeouts.get(token)
                if timeouts is not None and timeouts.heartbeat_seconds is not None:
                    timeouts.heartbeat_due = self.clock() + timeouts.heartbeat_seconds
            else:
                task.closed_reason = "answered"
                if api == "SendTaskSuccess":
                    task.outcome = ("success", json.loads(params["output"]))
                else:
                    task.outcome = ("failure", params["error"], params["cause"])
            if fault is not None:
                return self._raise(api, token, params, fault.error)
            self.calls.append(Call(api, token, params, "ok"))
            return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _take_fault(self, api: str) -> _Fault | None:
        for fault in self._faults:
            if fault.api in (api, "*") and fault.times > 0:
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                return fault
        return None

    def _validate(self, api: str, token: str, params: Mapping[str, Any]) -> str | None:
        if not token or len(token) > 2048:
            return "ValidationException"
        task = self.tasks.get(token)
        if task is None:
            return "InvalidToken"
        if task.closed_reason is not None:
            return "TaskTimedOut"
        return field_error(api, params)

    def _raise(self, api: str, token: str, params: dict[str, Any], error: str | BaseException) -> dict[str, Any]:
        self.calls.append(Call(api, token, params, error if isinstance(error, str) else type(error).__name__))
        if isinstance(error, BaseException):
            raise error
        raise client_error(api, error)


class TimedFake:
    """What :meth:`FakeStepFunctions.with_timeout` returns: the same fake, with a per-call timeout."""

    def __init__(self, fake: FakeStepFunctions, timeout: float) -> None:
        self.fake = fake
        self.timeout = timeout

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        """SendTaskSuccess, bounded."""
        return self._call("SendTaskSuccess", taskToken, {"output": output})

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        """SendTaskFailure, bounded."""
        return self._call("SendTaskFailure", taskToken, {"error": error, "cause": cause})

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        """SendTaskHeartbeat, bounded."""
        return self._call("SendTaskHeartbeat", taskToken, {})

    def _call(self, api: str, token: str, params: dict[str, Any]) -> dict[str, Any]:
        with self.fake._lock:
            self.fake.timeouts.append(self.timeout)
        return self.fake._handle(api, token, params, self.timeout)


def decode_cause(cause: str) -> Any:
    """A failure's cause as :meth:`FakeStepFunctions.outcome` shows it: a JSON object decoded, any other text as is.

    Example:
        >>> decode_cause('{"errorMessage": "boom", "errorType": "ValueError"}')["errorType"]
        'ValueError'
        >>> decode_cause("negative total"), decode_cause("42")
        ('negative total', '42')
    """
    if cause.startswith("{"):
        try:
            value = json.loads(cause)
        except ValueError:
            return cause
        if isinstance(value, dict):
            return value
    return cause


def field_error(api: str, params: Mapping[str, Any]) -> str | None:
    """The error code Step Functions answers a callback whose fields break its limits, else ``None``.

    Output over 262,144 UTF-8 bytes, an error over 256 characters or starting with ``States.``, or a cause over
    32,768 characters: ``ValidationException``; output that is not JSON: ``InvalidOutput``.

    Example:
        >>> field_error("SendTaskSuccess", {"output": "not json"})
        'InvalidOutput'
        >>> field_error("SendTaskFailure", {"error": "States.X", "cause": ""})
        'ValidationException'
    """
    if api == "SendTaskSuccess":
        output = params["output"]
        if len(output.encode("utf-8")) > MAX_OUTPUT_BYTES:
            return "ValidationException"
        try:
            json.loads(output)
        except ValueError:
            return "InvalidOutput"
    if api == "SendTaskFailure":
        error, cause = params["error"], params["cause"]
        if len(error) > 256 or len(cause) > MAX_CAUSE_CHARS or error.startswith("States."):
            return "ValidationException"
    return None
