"""What the simulator hands to observers and handlers: queues, deliveries, callback calls, and token helpers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from callback_kit.logs import fingerprint
from callback_kit.sources import TOKEN_KEYS as SOURCE_TOKEN_KEYS

__all__ = [
    "TERMINAL_STATUSES",
    "TOKEN_KEYS",
    "CallbackCall",
    "Delivery",
    "LambdaHandler",
    "Queue",
    "find_token",
    "token_fingerprint",
]

LambdaHandler = Callable[[Any, Any], Any]
"""A Lambda entry point: ``handler(event, context) -> response``."""

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})

# The library's own key list, minus the dotted context path that find_token() checks last.
TOKEN_KEYS: tuple[str, ...] = tuple(key for key in SOURCE_TOKEN_KEYS if "." not in key)
"""Keys under which the harness looks for a task token (also ``context.Task.Token``), in this order."""

#: Return a short, stable, non-reversible name for a task token, safe to print and log. It *is* the library's
#: :func:`callback_kit.logs.fingerprint`, so that the fingerprints the simulator and the demo show are the ones
#: the workers log.
token_fingerprint = fingerprint


def find_token(payload: Any) -> str | None:
    """Find a task token in a payload under the keys of :data:`TOKEN_KEYS` or at ``context.Task.Token``."""
    if not isinstance(payload, Mapping):
        return None
    for key in TOKEN_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return value
    task = payload.get("context", {})
    task = task.get("Task", {}) if isinstance(task, Mapping) else {}
    value = task.get("Token") if isinstance(task, Mapping) else None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Queue:
    """An SQS queue created in the simulator.

    Example:
        >>> q = Queue(name="work", url="https://sqs/x", arn="arn:aws:sqs:us-east-1:1:work", fifo=False)
    """

    name: str
    url: str
    arn: str
    fifo: bool


@dataclass(frozen=True)
class Delivery:
    """One call of a handler by the harness, as observers see it.

    Attributes:
        source: ``"sqs"``, ``"eventbridge"``, ``"sns"`` or ``"lambda"``.
        target: the queue, topic or function name the event came from.
        event: the event passed to the handler.
        result: what the handler returned (``None`` when it raised).
        error: the exception it raised, if any.
        attempt: 1 for the first delivery of this event, 2+ for retries.
        tokens: fingerprints of the tokens (or durable callback ids) found in the event.
        seconds: how long the call took.

    Example:
        >>> sim.on_delivery(lambda d: print(d.describe()))                   # doctest: +SKIP
    """

    source: str
    target: str
    event: Any
    result: Any
    error: BaseException | None
    attempt: int
    tokens: tuple[str, ...]
    seconds: float

    def describe(self) -> str:
        """One readable line, with token fingerprints only."""
        what = f"raised {type(self.error).__name__}: {self.error}" if self.error else f"returned {self.result!r}"
        retry = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        where = f"{self.source}:{self.target} {', '.join(self.tokens)}{retry}"
        return f"handler <- {where}: {what} [{self.seconds:.2f}s]"


@dataclass(frozen=True)
class CallbackCall:
    """A SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat seen by the simulator, from any client.

    Example:
        >>> sim.on_callback(lambda c: print(c.describe()))                   # doctest: +SKIP
    """

    kind: Literal["success", "failure", "heartbeat"]
    token: str  # a fingerprint, never the raw token
    output: str | None = None
    error: str | None = None
    rejected: str | None = None  # the error code the simulator answered with, if any

    def describe(self) -> str:
        """One readable line."""
        detail = self.output if self.kind == "success" else self.error if self.kind == "failure" else ""
        status = f" -> rejected: {self.rejected}" if self.rejected else ""
        return f"callback {self.kind} {self.token} {detail or ''}".rstrip() + status
