"""What users need to test their own handlers: an in-memory Step Functions, a Lambda context, event builders.

Example:
    >>> import callback_kit as ck
    >>> from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event
    >>> sfn = FakeStepFunctions()
    >>> @ck.callback_handler(client=sfn, heartbeat_interval=0)
    ... def handler(order: dict) -> dict:
    ...     return {"approved": order["total"] < 100}
    >>> token = sfn.open_task()
    >>> handler(sqs_event({"TaskToken": token, "total": 12}), FakeLambdaContext())
    {'batchItemFailures': []}
    >>> sfn.outcome(token)
    ('success', {'approved': True})
"""

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

REGION = "us-east-1"
ACCOUNT = "123456789012"

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
class _Timeouts:
    """An activity task's TimeoutSeconds / HeartbeatSeconds, as deadlines on the fake's clock."""

    expires_at: float | None = None
    heartbeat_seconds: float | None = None
    heartbeat_due: float | None = None


@dataclass
class _ActivityTask:
    token: str
    input: str


@dataclass
class FakeStepFunctions:
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

    calls: list[Call] = field(default_factory=list)
    tasks: dict[str, _Task] = field(default_factory=dict)
    latency: float = 0.0
    sleep: Callable[[float], None] = time.sleep
    _faults: list[_Fault] = field(default_factory=list)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    #: How long :meth:`get_activity_task` holds a poll when there is no work (AWS: 60 s); keep it short in tests.
    activity_poll_seconds: float = 60.0
    #: The clock activity task timeouts are measured on; inject a fake one to expire tasks without waiting.
    clock: Callable[[], float] = time.monotonic
    #: Polls that returned, with or without a task, and the most that were ever open at once.
    activity_polls: int = 0
    max_open_polls: int = 0
    _activity_queues: dict[str, deque[_ActivityTask]] = field(default_factory=dict)
    _timeouts: dict[str, _Timeouts] = field(default_factory=dict)
    _open_polls: int = 0
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

    # -- the stepfunctions client methods -------------------------------------------------------------------
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
                        self.calls.append(Call("GetActivityTask", task.token, params, "ok"))
                        return {"taskToken": task.token, "input": task.input, "ResponseMetadata": _OK}
                    remaining = give_up - time.monotonic()
                    if remaining <= 0:
                        return {"ResponseMetadata": _OK}
                    self._poll_cond.wait(remaining)
            finally:
                self._open_polls -= 1
                self.activity_polls += 1

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        """SendTaskSuccess."""
        return self._handle("SendTaskSuccess", taskToken, {"output": output})

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        """SendTaskFailure."""
        return self._handle("SendTaskFailure", taskToken, {"error": error, "cause": cause})

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        """SendTaskHeartbeat."""
        return self._handle("SendTaskHeartbeat", taskToken, {})

    # -- inspection -----------------------------------------------------------------------------------------
    def outcome(self, token: str) -> tuple[Any, ...] | None:
        """``("success", output)`` or ``("failure", error, cause)``, or ``None`` while unanswered."""
        task = self.tasks.get(token)
        return task.outcome if task else None

    def outputs(self) -> list[Any]:
        """The decoded outputs of every delivered success, in order."""
        return [json.loads(c.params["output"]) for c in self.calls if c.api == "SendTaskSuccess" and c.result == "ok"]

    def failures(self) -> list[tuple[str, str]]:
        """``(error, cause)`` of every delivered failure, in order."""
        return [
            (c.params["error"], c.params["cause"])
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

    def _handle(self, api: str, token: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.latency:
            self.sleep(self.latency)
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

    def _raise(self, api: str, token: str, params: dict[str, Any], error: str | BaseException) -> dict[str, Any]:
        self.calls.append(Call(api, token, params, error if isinstance(error, str) else type(error).__name__))
        if isinstance(error, BaseException):
            raise error
        raise client_error(api, error)


_OK = {"HTTPStatusCode": 200}


class FakeLambdaContext:
    """A Lambda context whose remaining time counts down from ``remaining_ms`` (and can be set).

    Example:
        >>> ctx = FakeLambdaContext(remaining_ms=30_000)
        >>> 29_000 < ctx.get_remaining_time_in_millis() <= 30_000
        True
        >>> ctx.set_remaining(500); ctx.get_remaining_time_in_millis() <= 500
        True
    """

    def __init__(
        self,
        remaining_ms: int = 900_000,
        *,
        function_name: str = "callback-worker",
        memory_limit_in_mb: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"
        self._clock = clock
        self._deadline = clock() + remaining_ms / 1000.0

    def set_remaining(self, remaining_ms: int) -> None:
        """Make the remaining time ``remaining_ms`` from now."""
        self._deadline = self._clock() + remaining_ms / 1000.0

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the (pretend) Lambda timeout."""
        return max(0, int((self._deadline - self._clock()) * 1000))


def sqs_event(
    *messages: Any,
    queue: str = "callback-queue",
    fifo: bool = False,
    group_id: str | Callable[[int], str] = "group-1",
) -> dict[str, Any]:
    """A Lambda SQS event whose records carry ``messages`` (dicts are JSON-encoded; strings are used as is).

    Example:
        >>> event = sqs_event({"TaskToken": "t-1", "n": 1}, '{"TaskToken": "t-2"}')
        >>> [r["body"] for r in event["Records"]]
        ['{"TaskToken": "t-1", "n": 1}', '{"TaskToken": "t-2"}']
    """
    name = queue + ".fifo" if fifo and not queue.endswith(".fifo") else queue
    records = []
    for i, message in enumerate(messages):
        body = message if isinstance(message, str) else json.dumps(message)
        attributes = {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1767225600000",
            "SenderId": "AROAEXAMPLE:states",
            "ApproximateFirstReceiveTimestamp": "1767225600001",
        }
        if fifo:
            attributes["MessageGroupId"] = group_id(i) if callable(group_id) else group_id
            attributes["SequenceNumber"] = str(18_000_000_000_000_000_000 + i)
            attributes["MessageDeduplicationId"] = f"dedup-{i}"
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"AQEB{uuid.uuid4().hex}",
                "body": body,
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": _md5(body),
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
                "awsRegion": REGION,
            }
        )
    return {"Records": records}


def eventbridge_event(
    detail: Mapping[str, Any],
    *,
    source: str = "callback-kit.workflow",
    detail_type: str = "CallbackRequested",
    execution_arn: str | None = None,
) -> dict[str, Any]:
    """An EventBridge envelope around ``detail``, as a rule target receives it.

    Example:
        >>> eventbridge_event({"TaskToken": "t"})["detail"]
        {'TaskToken': 't'}
    """
    resources = [execution_arn] if execution_arn else []
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": "2026-01-01T00:00:00Z",
        "region": REGION,
        "resources": resources,
        "detail": dict(detail),
    }


def direct_event(token: str, payload: Mapping[str, Any] | None = None, *, key: str = "token") -> dict[str, Any]:
    """The payload ``lambda:invoke.waitForTaskToken`` sends: ``payload`` with the token under ``key``.

    Example:
        >>> direct_event("t", {"age": 30})
        {'age': 30, 'token': 't'}
    """
    return {**(payload or {}), key: token}


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
