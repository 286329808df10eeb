"""An in-memory Lambda durable callback API that answers as AWS does, records the calls, and injects faults."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callback_kit.task.answers import MAX_CALLBACK_ID_CHARS, MAX_DURABLE_RESULT_BYTES
from callback_kit.testing.fake_sfn import Call, client_error

SUCCESS = "SendDurableExecutionCallbackSuccess"
FAILURE = "SendDurableExecutionCallbackFailure"
HEARTBEAT = "SendDurableExecutionCallbackHeartbeat"
#: botocore's ``CallbackId`` pattern.
_ID = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass
class _Callback:
    closed_reason: str | None = None
    outcome: tuple[Any, ...] | None = None
    heartbeat_seconds: float | None = None
    heartbeat_due: float | None = None


@dataclass
class FakeDurableCallbacks:
    """An in-memory Lambda durable callback API: the three ``send_durable_execution_callback_*`` methods of a
    boto3 ``lambda`` client, answering as Lambda does.

    Callback ids come from :meth:`open_callback`. An id that was never opened gets ``ResourceNotFoundException``
    (one that breaks botocore's pattern or length, ``InvalidParameterValueException``); a callback that was
    answered, :meth:`close_callback`-ed, or whose heartbeat timeout passed gets ``CallbackTimeoutException``
    (Lambda's answer for "expired or already closed"). A ``Result`` over 1,048,576 bytes gets
    ``InvalidParameterValueException``. :meth:`inject` makes calls fail (``TooManyRequestsException``,
    ``ServiceException``, or any exception).

    Example:
        >>> lam = FakeDurableCallbacks()
        >>> cb = lam.open_callback()
        >>> _ = lam.send_durable_execution_callback_success(CallbackId=cb, Result=b'{"ok": true}')
        >>> lam.outcome(cb)
        ('success', {'ok': True})
        >>> lam.send_durable_execution_callback_heartbeat(CallbackId=cb)
        Traceback (most recent call last):
        ...
        botocore.exceptions.ClientError: An error occurred (CallbackTimeoutException) when calling the ...
    """

    #: The clock heartbeat timeouts are measured on; inject a fake one to expire callbacks without waiting.
    clock: Callable[[], float] = time.monotonic
    #: Every request received, in order (``Call.token`` holds the callback id).
    calls: list[Call] = field(default_factory=list, init=False)
    #: The callbacks by id.
    callbacks: dict[str, _Callback] = field(default_factory=dict, init=False)
    _faults: list[list[Any]] = field(default_factory=list, init=False, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)

    def open_callback(self, callback_id: str | None = None, *, heartbeat_seconds: float | None = None) -> str:
        """Create a waiting callback and return its id (a new random one, shaped like Lambda's, unless given).

        ``heartbeat_seconds``: the callback's heartbeat timeout, on :attr:`clock`; a beat or an answer that comes
        later than that after the last beat finds it closed.
        """
        callback_id = callback_id or base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
        with self._lock:
            due = None if heartbeat_seconds is None else self.clock() + heartbeat_seconds
            self.callbacks[callback_id] = _Callback(heartbeat_seconds=heartbeat_seconds, heartbeat_due=due)
        return callback_id

    def close_callback(self, callback_id: str, reason: str = "CallbackTimeoutException") -> None:
        """Close a callback as Lambda does when it times out or its execution ends."""
        with self._lock:
            self.callbacks.setdefault(callback_id, _Callback()).closed_reason = reason

    def inject(self, api: str, error: str | BaseException, *, times: int = 1) -> None:
        """Make the next ``times`` calls of ``api`` (a Send... API name, or ``"*"``) fail with ``error``."""
        with self._lock:
            self._faults.append([api, error, times])

    # -- the lambda client methods --------------------------------------------------------------------------
    def send_durable_execution_callback_success(self, *, CallbackId: str, Result: bytes = b"") -> dict[str, Any]:
        """SendDurableExecutionCallbackSuccess."""
        return self._apply(SUCCESS, CallbackId, {"Result": Result})

    def send_durable_execution_callback_failure(
        self,
        *,
        CallbackId: str,
        Error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """SendDurableExecutionCallbackFailure."""
        return self._apply(FAILURE, CallbackId, {"Error": Error or {}})

    def send_durable_execution_callback_heartbeat(self, *, CallbackId: str) -> dict[str, Any]:
        """SendDurableExecutionCallbackHeartbeat."""
        return self._apply(HEARTBEAT, CallbackId, {})

    # -- inspection -----------------------------------------------------------------------------------------
    def outcome(self, callback_id: str) -> tuple[Any, ...] | None:
        """``("success", decoded result)``, ``("failure", ErrorType, ErrorMessage, StackTrace)``, or ``None``.

        Example:
            >>> lam = FakeDurableCallbacks()
            >>> cb = lam.open_callback()
            >>> _ = lam.send_durable_execution_callback_failure(
            ...     CallbackId=cb, Error={"ErrorType": "Order.Invalid", "ErrorMessage": "negative total"})
            >>> lam.outcome(cb)
            ('failure', 'Order.Invalid', 'negative total', None)
        """
        callback = self.callbacks.get(callback_id)
        return None if callback is None else callback.outcome

    def heartbeats(self, callback_id: str | None = None) -> int:
        """How many heartbeats were accepted (for one id, or in all)."""
        return sum(1 for c in self.calls if c.api == HEARTBEAT and c.result == "ok" and callback_id in (None, c.token))

    def calls_for(self, callback_id: str, api: str | None = None) -> list[Call]:
        """The requests made for one callback id (optionally of one API)."""
        return [c for c in self.calls if c.token == callback_id and api in (None, c.api)]

    # -- internals ------------------------------------------------------------------------------------------
    def _apply(self, api: str, callback_id: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            fault = self._take_fault(api)
            if fault is not None:
                return self._raise(api, callback_id, params, fault)
            code = self._validate(api, callback_id, params)
            if code is not None:
                return self._raise(api, callback_id, params, code)
            callback = self.callbacks[callback_id]
            if api == HEARTBEAT:
                if callback.heartbeat_seconds is not None:
                    callback.heartbeat_due = self.clock() + callback.heartbeat_seconds
            else:
                callback.closed_reason = "answered"
                if api == SUCCESS:
                    result = params["Result"]
                    callback.outcome = ("success", json.loads(result) if result else None)
                else:
                    error = params["Error"]
                    callback.outcome = (
                        "failure",
                        error.get("ErrorType"),
                        error.get("ErrorMessage"),
                        error.get("StackTrace"),
                    )
            self.calls.append(Call(api, callback_id, params, "ok"))
            return {"ResponseMetadata": {"HTTPStatusCode": 200}}

    def _take_fault(self, api: str) -> str | BaseException | None:
        for fault in self._faults:
            if fault[0] in (api, "*") and fault[2] > 0:
                fault[2] -= 1
                error: str | BaseException = fault[1]
                return error
        return None

    def _validate(self, api: str, callback_id: str, params: dict[str, Any]) -> str | None:
        if not callback_id or len(callback_id) > MAX_CALLBACK_ID_CHARS or not _ID.fullmatch(callback_id):
            return "InvalidParameterValueException"
        if api == SUCCESS and len(params["Result"]) > MAX_DURABLE_RESULT_BYTES:
            return "InvalidParameterValueException"
        callback = self.callbacks.get(callback_id)
        if callback is None:
            return "ResourceNotFoundException"
        if (
            callback.closed_reason is None
            and callback.heartbeat_due is not None
            and self.clock() > callback.heartbeat_due
        ):
            callback.closed_reason = "heartbeat timeout"
        if callback.closed_reason is not None:
            return "CallbackTimeoutException"
        return None

    def _raise(self, api: str, callback_id: str, params: dict[str, Any], error: str | BaseException) -> dict[str, Any]:
        self.calls.append(Call(api, callback_id, params, error if isinstance(error, str) else type(error).__name__))
        if isinstance(error, BaseException):
            raise error
        status = 500 if error == "ServiceException" else 429 if error == "TooManyRequestsException" else 400
        raise client_error(api, error, status=status)
