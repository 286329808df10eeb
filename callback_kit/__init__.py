"""callback-kit: answer AWS Step Functions callback tasks from Lambda and activity workers, properly.

Example:
    >>> import callback_kit as ck
    >>> @ck.callback_handler
    ... def handler(payload: dict) -> dict:
    ...     return {"ack": "success"}
"""

from __future__ import annotations

from callback_kit.completion import Delivery, send_failure, send_heartbeat, send_success
from callback_kit.context import TaskInfo, current_task, heartbeat, is_cancelled
from callback_kit.exceptions import (
    CallbackDeliveryError,
    CallbackKitError,
    InvalidOutputError,
    MalformedEventError,
    MissingTokenError,
    NotInTaskError,
    TaskFailed,
)
from callback_kit.handler import CallbackHandler, callback_handler, process_event

__version__ = "0.1.0"

__all__ = [
    "CallbackDeliveryError",
    "CallbackHandler",
    "CallbackKitError",
    "Delivery",
    "InvalidOutputError",
    "MalformedEventError",
    "MissingTokenError",
    "NotInTaskError",
    "TaskFailed",
    "TaskInfo",
    "__version__",
    "callback_handler",
    "current_task",
    "heartbeat",
    "is_cancelled",
    "process_event",
    "send_failure",
    "send_heartbeat",
    "send_success",
]

