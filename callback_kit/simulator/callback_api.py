"""SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat answered as AWS answers them.

:func:`strict_backend_method` wraps one of moto's Step Functions backend methods. Requests are checked as the
service checks them (lengths -> ``ValidationException``, output that is not JSON -> ``InvalidOutput``), then
tokens the simulator issued are answered from the :data:`~callback_kit.simulator.ledger.LEDGER`: an open task
takes the callback (the first one wins), a closed one answers ``TaskTimedOut`` (moto: ``InvalidToken``, or a
200 that is silently ignored), a heartbeat is accepted whether or not the task has ``HeartbeatSeconds`` (moto:
``InvalidToken``). A token the simulator never issued goes to moto, which answers ``InvalidToken`` as AWS does.

Example:
    >>> check_request("success", "tok", output='{"ok": true}')
    >>> check_request("success", "tok", output="not json")
    Traceback (most recent call last):
    ...
    callback_kit.simulator.callback_api.CallbackRejectedError: InvalidOutput: Invalid Output: 'not valid JSON'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from callback_kit.simulator import moto_adapter
from callback_kit.simulator.ledger import LEDGER, TaskClosedError

__all__ = [
    "MAX_CAUSE_CHARS",
    "MAX_ERROR_CHARS",
    "MAX_OUTPUT_BYTES",
    "MAX_TOKEN_CHARS",
    "CallbackRejectedError",
    "check_request",
    "strict_backend_method",
]

Kind = Literal["success", "failure", "heartbeat"]

# Limits from botocore's stepfunctions service model (which checks only the minimums client-side).
MAX_TOKEN_CHARS = 2048
MAX_OUTPUT_BYTES = 262_144
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32_768

_TIMED_OUT = "Task Timed Out: 'Provided task does not exist anymore'"


class CallbackRejectedError(Exception):
    """A callback request the service refuses, with the error code AWS answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _too_long(field: str, limit: int) -> CallbackRejectedError:
    return CallbackRejectedError(
        "ValidationException",
        f"1 validation error detected: Value at '{field}' failed to satisfy constraint: "
        f"Member must have length less than or equal to {limit}",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_request(
    kind: Kind, token: str, *, output: str | None = None, error: str | None = None, cause: str | None = None
) -> None:
    """Check a callback request as the service does before it looks at the token.

    Raises:
        CallbackRejectedError: ``ValidationException`` (a field over its limit) or ``InvalidOutput``.

    Example:
        >>> check_request("failure", "tok", error="E" * 257)
        Traceback (most recent call last):
        ...
        callback_kit.simulator.callback_api.CallbackRejectedError: ValidationException: ... Value at 'error' ...
    """
    if len(token) > MAX_TOKEN_CHARS:
        raise _too_long("taskToken", MAX_TOKEN_CHARS)
    if kind == "success":
        text = output or ""
        if len(text.encode("utf-8")) > MAX_OUTPUT_BYTES:
            raise _too_long("output", MAX_OUTPUT_BYTES)
        try:
            json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            raise CallbackRejectedError("InvalidOutput", "Invalid Output: 'not valid JSON'") from None
    if kind == "failure":
        if error is not None and len(error) > MAX_ERROR_CHARS:
            raise _too_long("error", MAX_ERROR_CHARS)
        if cause is not None and len(cause) > MAX_CAUSE_CHARS:
            raise _too_long("cause", MAX_CAUSE_CHARS)


def strict_backend_method(kind: Kind, original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap moto's ``send_task_<kind>`` (the function on its backend class) so that it answers as AWS does.

    Args:
        kind: which callback API ``original`` implements.
        original: moto's function, called for tokens the simulator did not issue.

    Returns:
        A function with the signature of ``original``; it raises moto's service error with AWS's error code.
    """

    def send(backend: Any, task_token: str, *args: Any, **kwargs: Any) -> Any:
        output = kwargs.get("outcome", args[0] if args else None) if kind == "success" else None
        error = kwargs.get("error", args[0] if args else None) if kind == "failure" else None
        cause = kwargs.get("cause", args[1] if len(args) > 1 else None) if kind == "failure" else None
        try:
            check_request(kind, task_token, output=output, error=error, cause=cause)
        except CallbackRejectedError as rejected:
            raise moto_adapter.service_error(rejected.code, rejected.message) from None
        if not LEDGER.issued(task_token):
            return original(backend, task_token, *args, **kwargs)
        try:
            if kind == "heartbeat":
                LEDGER.beat(task_token)
            elif kind == "success":
                LEDGER.answer(task_token, moto_adapter.outcome_success(task_token, output or ""))
            else:
                LEDGER.answer(task_token, moto_adapter.outcome_failure(task_token, error, cause))
        except TaskClosedError:
            raise moto_adapter.service_error("TaskTimedOut", _TIMED_OUT) from None
        return None

    return send
