"""callback-kit: answer AWS Step Functions callback tasks from Lambda and activity workers, properly.

Example:
    >>> import callback_kit as ck
    >>> @ck.callback_handler
    ... def handler(payload: dict) -> dict:
    ...     return {"ack": "success"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from callback_kit.context import TaskInfo, current_task, hand_off, heartbeat, is_cancelled
from callback_kit.durable_task import durable_task_handler
from callback_kit.exceptions import (
    CallbackDeliveryError,
    CallbackKitError,
    InvalidOutputError,
    InvalidTokenError,
    MalformedEventError,
    MissingTokenError,
    NotInTaskError,
    TaskFailed,
)
from callback_kit.handler import CallbackHandler, callback_handler, process_event
from callback_kit.prewarm import prewarm
from callback_kit.send import Delivery, send_failure, send_heartbeat, send_success

if TYPE_CHECKING:
    from callback_kit.activity import ActivityWorker

__version__ = "0.1.0"

__all__ = [
    "ActivityWorker",
    "CallbackDeliveryError",
    "CallbackHandler",
    "CallbackKitError",
    "Delivery",
    "InvalidOutputError",
    "InvalidTokenError",
    "MalformedEventError",
    "MissingTokenError",
    "NotInTaskError",
    "TaskFailed",
    "TaskInfo",
    "__version__",
    "callback_handler",
    "current_task",
    "durable_task_handler",
    "hand_off",
    "heartbeat",
    "is_cancelled",
    "prewarm",
    "process_event",
    "send_failure",
    "send_heartbeat",
    "send_success",
]


def __getattr__(name: str) -> Any:
    # ActivityWorker is imported on first use: a Lambda handler never needs it, and a cold start pays per import.
    if name == "ActivityWorker":
        from callback_kit.activity import ActivityWorker

        return ActivityWorker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
