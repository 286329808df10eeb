"""A Step Functions fake that plays a schedule's latencies and faults and records the ground truth of every call.

For each call it records when it started and ended (real monotonic time), the API, the token, whether it LANDED
(Step Functions applied it), whether its result was ambiguous to the caller (an error that leaves "did it land?"
open: a 5xx, a dropped connection, a read timeout), and the timeout the caller gave through :meth:`with_timeout`.

The n-th completion call (SendTaskSuccess or SendTaskFailure) and the n-th heartbeat of a token follow that
token's :class:`~tests.schedules.plan.CallPlan` list: sleep the latency, then fail before landing, or land, or
land and then fail. A task closes on its own at its ``close_at`` (schedule seconds after ``t0``), after which
every call for it is answered with its close code, as Step Functions answers a timed-out or stopped task.
"""

from __future__ import annotations

import re
import threading
import time
import types
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from callback_kit.task.answers import MAX_CALLBACK_ID_CHARS, MAX_DURABLE_RESULT_BYTES
from callback_kit.testing import client_error
from callback_kit.testing.fake_sfn import field_error
from tests.schedules.plan import CallPlan

#: Durable callbacks (Lambda durable functions) are answered through the Lambda API, which this fake serves too.
DURABLE_APIS = frozenset(
    {
        "SendDurableExecutionCallbackSuccess",
        "SendDurableExecutionCallbackFailure",
        "SendDurableExecutionCallbackHeartbeat",
    }
)
COMPLETIONS = (
    "SendTaskSuccess",
    "SendTaskFailure",
    "SendDurableExecutionCallbackSuccess",
    "SendDurableExecutionCallbackFailure",
)
HEARTBEATS = ("SendTaskHeartbeat", "SendDurableExecutionCallbackHeartbeat")
#: Errors after which the caller cannot tell whether the call landed.
AMBIGUOUS = frozenset(
    {"InternalFailure", "ServiceUnavailable", "ServiceException", "ConnectionClosedError", "ReadTimeoutError"}
)
#: Answers that say "this task is over" (timed out, stopped, or answered before); the durable API's one too.
CLOSED = frozenset({"TaskTimedOut", "TaskDoesNotExist", "CallbackTimeoutException"})
#: What the Lambda durable API answers where Step Functions answers a schedule's fault or verdict.
DURABLE_CODES = {
    "ThrottlingException": "TooManyRequestsException",
    "KmsThrottlingException": "TooManyRequestsException",
    "InternalFailure": "ServiceException",
    "ServiceUnavailable": "ServiceException",
    "KmsAccessDeniedException": "KMSAccessDeniedException",
    "TaskTimedOut": "CallbackTimeoutException",
    "TaskDoesNotExist": "CallbackTimeoutException",
    "InvalidToken": "ResourceNotFoundException",
    "ValidationException": "InvalidParameterValueException",
}
_STATUS = {"TooManyRequestsException": 429, "ServiceException": 500}


def code_for(api: str, code: str) -> str:
    """The code ``api`` answers with where Step Functions would answer ``code``."""
    return DURABLE_CODES.get(code, code) if api in DURABLE_APIS else code


ENDPOINT = "https://states.us-east-1.amazonaws.com"
#: botocore's ``CallbackId`` pattern.
_CALLBACK_ID = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass
class CallRecord:
    """One call the fake received, with its ground truth."""

    api: str
    token: str
    start: float
    thread: str
    timeout: float | None = None
    #: When the caller asked for its timeout (``with_timeout``): the timeout counts from there.
    issued: float | None = None
    end: float | None = None
    result: str = "in flight"
    landed: bool = False
    landed_at: float | None = None
    ambiguous: bool = False
    error: str | None = None  # SendTaskFailure's error name

    @property
    def completion(self) -> bool:
        return self.api in COMPLETIONS


@dataclass
class _Task:
    close_at: float | None = None  # real monotonic time
    close_code: str = "TaskTimedOut"
    answered: CallRecord | None = None
    completions: tuple[CallPlan, ...] = ()
    heartbeats: tuple[CallPlan, ...] = ()
    counts: dict[str, int] = field(default_factory=lambda: {"completion": 0, "heartbeat": 0})


def _fault(name: str, api: str) -> Exception:
    if name == "EndpointConnectionError":
        return EndpointConnectionError(endpoint_url=ENDPOINT)
    if name == "ConnectionClosedError":
        return ConnectionClosedError(endpoint_url=ENDPOINT)
    if name == "ReadTimeoutError":
        return ReadTimeoutError(endpoint_url=ENDPOINT)
    return _client_error(api, name)


def _client_error(api: str, code: str) -> Exception:
    code = code_for(api, code)
    return client_error(api, code, status=_STATUS.get(code))


class ScheduleFake:
    """The fake Step Functions of one schedule (see the module docstring)."""

    def __init__(
        self,
        scale: float,
        *,
        poll_hold: float = 1.0,
        poll_faults: int = 0,
        bucket: tuple[float, float, float] | None = None,
    ) -> None:
        self.scale = scale
        self.t0 = time.monotonic()
        #: The account's token bucket for SendTask* calls (burst, refill per schedule second, fill at the start).
        self._bucket = None if bucket is None else _Bucket(bucket[0], bucket[1] / scale, bucket[0] * bucket[2], self.t0)
        if bucket is not None:
            # An endpoint of its own, so that callback-kit paces this fake as it paces a real client, with a
            # limiter as fresh as a new process's.
            self.meta = types.SimpleNamespace(
                region_name="us-east-1", endpoint_url=f"https://{uuid.uuid4().hex}.invalid"
            )
        self.calls: list[CallRecord] = []
        self.tasks: dict[str, _Task] = {}
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._in_flight = 0
        self._pending_landings = 0
        self._queue: deque[tuple[str, str]] = deque()
        self.poll_hold = poll_hold * scale
        self.poll_faults = poll_faults
        self.open_polls = 0
        self.polls_returned = 0
        self.poll_errors = 0
        self.delivered: list[str] = []  # activity tokens handed out by GetActivityTask

    # -- set-up ---------------------------------------------------------------------------------------------
    def open_task(
        self,
        token: str,
        *,
        close_at: float | None = None,
        close_code: str = "TaskTimedOut",
        completions: tuple[CallPlan, ...] = (),
        heartbeats: tuple[CallPlan, ...] = (),
    ) -> None:
        """Open a task; ``close_at`` is in schedule seconds after :attr:`t0`."""
        with self._lock:
            self.tasks[token] = _Task(
                None if close_at is None else self.t0 + close_at * self.scale, close_code, None, completions, heartbeats
            )

    def add_activity_task(self, token: str, input: str) -> None:
        """Queue an opened task for :meth:`get_activity_task`."""
        with self._cond:
            self._queue.append((token, input))
            self._cond.notify_all()

    @property
    def quiet(self) -> bool:
        """No call in flight and no late landing pending."""
        with self._lock:
            return self._in_flight == 0 and self._pending_landings == 0

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    # -- the stepfunctions client ---------------------------------------------------------------------------
    def with_timeout(self, seconds: float) -> _Timed:
        """A view of this client whose calls give up with ``ReadTimeoutError`` after ``seconds``."""
        return _Timed(self, seconds)

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        return self._call("SendTaskSuccess", taskToken, None, output=output)

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        return self._call("SendTaskFailure", taskToken, None, error=error, cause=cause)

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        return self._call("SendTaskHeartbeat", taskToken, None)

    def get_activity_task(self, *, activityArn: str, workerName: str = "") -> dict[str, Any]:
        return self._poll(None)

    # -- the lambda client's durable callback methods -------------------------------------------------------
    def send_durable_execution_callback_success(self, *, CallbackId: str, Result: bytes = b"") -> dict[str, Any]:
        return self._call("SendDurableExecutionCallbackSuccess", CallbackId, None, Result=Result)

    def send_durable_execution_callback_failure(self, *, CallbackId: str, Error: Any = None) -> dict[str, Any]:
        return self._call("SendDurableExecutionCallbackFailure", CallbackId, None, Error=Error or {})

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> dict[str, Any]:
        return self._call("SendDurableExecutionCallbackHeartbeat", CallbackId, None)

    # -- internals ------------------------------------------------------------------------------------------
    def _call(
        self, api: str, token: str, timeout: float | None, issued: float | None = None, **params: Any
    ) -> dict[str, Any]:
        rec = CallRecord(api, token, time.monotonic(), threading.current_thread().name, timeout, issued)
        if api == "SendTaskFailure":
            rec.error = params.get("error")
        elif api == "SendDurableExecutionCallbackFailure":
            rec.error = params["Error"].get("ErrorType")
        kind = "completion" if rec.completion else "heartbeat"
        with self._lock:
            self.calls.append(rec)
            if self._bucket is not None and not self._bucket.take(rec.start):
                # Refused before it reaches the task: it does not land, and uses none of the token's plans.
                rec.result, rec.end = code_for(api, "ThrottlingException"), time.monotonic()
                throttled = True
            else:
                throttled = False
                self._in_flight += 1
        if throttled:
            raise _client_error(api, "ThrottlingException")
        with self._lock:
            task = self.tasks.get(token)
            plan = CallPlan(0.0)
            if task is not None:
                n = task.counts[kind]
                task.counts[kind] = n + 1
                plans = task.completions if kind == "completion" else task.heartbeats
                plan = plans[n] if n < len(plans) else plan
        try:
            return self._play(rec, plan, params)
        finally:
            with self._lock:
                rec.end = time.monotonic()
                self._in_flight -= 1

    def _play(self, rec: CallRecord, plan: CallPlan, params: dict[str, Any]) -> dict[str, Any]:
        latency = plan.latency * self.scale
        if rec.timeout is not None and latency > rec.timeout:
            time.sleep(max(0.0, rec.timeout))
            rec.result, rec.ambiguous = "ReadTimeoutError", True
            if plan.lands_late or (plan.fault is None or plan.after):
                # The request is on its way: it lands when its latency is over, the caller having given up.
                with self._lock:
                    self._pending_landings += 1
                timer = threading.Timer(latency - rec.timeout, self._land_late, (rec, params))
                timer.daemon = True
                timer.start()
            raise ReadTimeoutError(endpoint_url=ENDPOINT)
        time.sleep(latency)
        if rec.timeout is not None and time.monotonic() > rec.start + rec.timeout:
            # The sleep overran the caller's timeout (a loaded machine wakes threads late): a real client would
            # have given up by now, so this is a read timeout, and the request lands as it was going to.
            rec.result, rec.ambiguous = "ReadTimeoutError", True
            if plan.fault is None or plan.after or plan.lands_late:
                with self._lock:
                    self._apply(rec, params)
            raise ReadTimeoutError(endpoint_url=ENDPOINT)
        if plan.fault is not None and not plan.after:
            fault = code_for(rec.api, plan.fault)
            rec.result, rec.ambiguous = fault, fault in AMBIGUOUS
            raise _fault(plan.fault, rec.api)
        with self._lock:
            code = self._apply(rec, params)
        if code is not None:
            rec.result = code
            raise _client_error(rec.api, code)
        if plan.fault is not None:
            rec.result, rec.ambiguous = code_for(rec.api, plan.fault), True
            raise _fault(plan.fault, rec.api)
        rec.result = "ok"
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _land_late(self, rec: CallRecord, params: dict[str, Any]) -> None:
        with self._lock:
            self._apply(rec, params)
            self._pending_landings -= 1

    def _apply(self, rec: CallRecord, params: dict[str, Any]) -> str | None:
        """Apply a call that reached the service (lock held); return the error code it gets, if any."""
        code = self._verdict(rec, params)
        if code is not None:
            return code_for(rec.api, code)
        rec.landed, rec.landed_at = True, time.monotonic()
        if rec.completion:
            self.tasks[rec.token].answered = rec
        return None

    def _verdict(self, rec: CallRecord, params: dict[str, Any]) -> str | None:
        """Step Functions' answer to a call (``code_for`` turns it into the durable API's), or None: it lands."""
        token = rec.token
        durable = rec.api in DURABLE_APIS
        if not token or len(token) > (MAX_CALLBACK_ID_CHARS if durable else 2048):
            return "ValidationException"
        if durable and not _CALLBACK_ID.fullmatch(token):
            return "ValidationException"  # Lambda: InvalidParameterValueException
        task = self.tasks.get(token)
        if task is None:
            return "InvalidToken"
        now = time.monotonic()
        if task.answered is not None:
            return "TaskTimedOut"
        if task.close_at is not None and now >= task.close_at:
            return task.close_code
        if durable:
            too_large = len(params.get("Result", b"")) > MAX_DURABLE_RESULT_BYTES
            return "ValidationException" if too_large else None
        return field_error(rec.api, params)

    def _poll(self, timeout: float | None) -> dict[str, Any]:
        rec = CallRecord("GetActivityTask", "", time.monotonic(), threading.current_thread().name, timeout)
        with self._cond:
            self.calls.append(rec)
            if self.poll_faults > 0:
                self.poll_faults -= 1
                self.poll_errors += 1
                rec.result, rec.end = "ThrottlingException", time.monotonic()
                raise client_error("GetActivityTask", "ThrottlingException")
            self.open_polls += 1
            give_up = time.monotonic() + min(self.poll_hold, timeout if timeout is not None else self.poll_hold)
            try:
                while not self._queue:
                    left = give_up - time.monotonic()
                    if left <= 0:
                        rec.result, rec.end = "empty", time.monotonic()
                        self.polls_returned += 1
                        return {"ResponseMetadata": {"HTTPStatusCode": 200}}
                    self._cond.wait(left)
                token, text = self._queue.popleft()
                rec.token, rec.result, rec.end = token, "ok", time.monotonic()
                self.delivered.append(token)
                self.polls_returned += 1
                return {"taskToken": token, "input": text, "ResponseMetadata": {"HTTPStatusCode": 200}}
            finally:
                self.open_polls -= 1


@dataclass
class _Bucket:
    """Step Functions' token bucket for the SendTask* APIs: ``refill`` tokens a second, at most ``burst``."""

    burst: float
    refill: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        """Take a token if there is one (the caller holds the fake's lock)."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class _Timed:
    """The client :meth:`ScheduleFake.with_timeout` returns: the same fake, with the caller's timeout."""

    fake: ScheduleFake
    seconds: float
    issued: float = field(default_factory=time.monotonic)

    def with_timeout(self, seconds: float) -> _Timed:
        return _Timed(self.fake, seconds)

    def send_task_success(self, *, taskToken: str, output: str) -> dict[str, Any]:
        return self.fake._call("SendTaskSuccess", taskToken, self.seconds, self.issued, output=output)

    def send_task_failure(self, *, taskToken: str, error: str = "", cause: str = "") -> dict[str, Any]:
        return self.fake._call("SendTaskFailure", taskToken, self.seconds, self.issued, error=error, cause=cause)

    def send_task_heartbeat(self, *, taskToken: str) -> dict[str, Any]:
        return self.fake._call("SendTaskHeartbeat", taskToken, self.seconds, self.issued)

    def get_activity_task(self, *, activityArn: str, workerName: str = "") -> dict[str, Any]:
        return self.fake._poll(self.seconds)

    def send_durable_execution_callback_success(self, *, CallbackId: str, Result: bytes = b"") -> dict[str, Any]:
        return self.fake._call(
            "SendDurableExecutionCallbackSuccess", CallbackId, self.seconds, self.issued, Result=Result
        )

    def send_durable_execution_callback_failure(self, *, CallbackId: str, Error: Any = None) -> dict[str, Any]:
        return self.fake._call(
            "SendDurableExecutionCallbackFailure", CallbackId, self.seconds, self.issued, Error=Error or {}
        )

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> dict[str, Any]:
        return self.fake._call("SendDurableExecutionCallbackHeartbeat", CallbackId, self.seconds, self.issued)
