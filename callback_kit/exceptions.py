"""Exceptions raised by callback-kit and by its users, and the error names it sends.

Every framework exception derives from :class:`CallbackKitError`. The ``ERROR_*`` constants are the
``error`` strings that callback-kit itself sends with SendTaskFailure; a state machine's Retry/Catch
``ErrorEquals`` can name them. They all start with ``CallbackKit.`` and never with the reserved ``States.``.
"""

from __future__ import annotations

#: The function returned a value whose JSON is over 262,144 UTF-8 bytes.
ERROR_OUTPUT_TOO_LARGE = "CallbackKit.OutputTooLarge"
#: The function returned a value that cannot be turned into JSON.
ERROR_OUTPUT_NOT_SERIALIZABLE = "CallbackKit.OutputNotSerializable"
#: Step Functions rejected the output (InvalidOutput / ValidationException) although it passed local checks.
ERROR_OUTPUT_REJECTED = "CallbackKit.OutputRejected"
#: The payload did not validate against the handler's ``model=``.
ERROR_INVALID_PAYLOAD = "CallbackKit.InvalidPayload"
#: The message carried a token but its payload could not be used (for example ``payload_path`` is missing).
ERROR_MALFORMED_MESSAGE = "CallbackKit.MalformedMessage"
#: The Lambda function was about to reach its timeout while the task still ran.
ERROR_LAMBDA_DEADLINE = "CallbackKit.LambdaDeadline"
#: An activity task ran longer than the worker's ``max_task_seconds``.
ERROR_TASK_TIMEOUT = "CallbackKit.TaskTimeout"
#: The activity worker, or ``callback-kit run`` on SIGTERM, shut down before the task could finish.
ERROR_WORKER_SHUTDOWN = "CallbackKit.WorkerShutdown"
#: ``callback-kit run``: the command exited non-zero, was killed by a signal, or could not be started.
ERROR_COMMAND_FAILED = "CallbackKit.CommandFailed"
#: ``callback-kit run``: the command succeeded but its stdout (or output file) is not JSON, or is missing.
ERROR_INVALID_COMMAND_OUTPUT = "CallbackKit.InvalidCommandOutput"
#: The reaper (:mod:`callback_kit.reaper`): the ECS task of an ``ecs:runTask.waitForTaskToken`` state stopped and
#: its container had not answered (it never started, or it was killed or exited first).
ERROR_CONTAINER_STOPPED = "CallbackKit.ContainerStopped"

RESERVED_ERROR_PREFIX = "States."
MAX_ERROR_CHARS = 256


class CallbackKitError(Exception):
    """Base class of every exception defined by callback-kit."""


class TaskFailed(CallbackKitError):
    """Raised by a user function to fail its task with a chosen error name.

    The state machine sees ``error`` as the task's error name (what ``Retry``/``Catch`` match) and ``cause``
    (default: the message) as its cause, as plain text: no stack trace, since this is an answer the function
    chose, not a crash. Without ``error``, the error name is ``TaskFailed`` (or what ``error_map`` maps it to).

    Example:
        >>> import callback_kit as ck
        >>> def handle(order: dict) -> dict:
        ...     if order["total"] < 0:
        ...         raise ck.TaskFailed("negative total", error="Order.Invalid")
        ...     return {"ok": True}

    Raises:
        ValueError: if ``error`` starts with the reserved ``States.`` prefix or is over 256 characters.
    """

    def __init__(self, message: str = "", *, error: str | None = None, cause: str | None = None) -> None:
        super().__init__(message)
        if error is not None:
            validate_error_name(error)
        self.message = message
        self.error = error
        self.cause = cause


class MissingTokenError(CallbackKitError):
    """An event or record carries no usable task token, so no callback can be sent for it."""


class RedeliverError(CallbackKitError):
    """Raised inside a task to send no callback and hand its message back for redelivery (SQS, async invokes).

    For what only a later delivery can settle, such as a duplicate of a message that another invocation is still
    running (see :mod:`callback_kit.idempotency`). A user function that fails should raise :class:`TaskFailed`.
    """


class MalformedEventError(CallbackKitError):
    """An event has no known shape (no batch, no envelope, no token anywhere), or not the one ``source=`` forces."""


class CallbackDeliveryError(CallbackKitError):
    """A callback could not be delivered to Step Functions after retries; the message must be redelivered."""

    def __init__(self, message: str, *, api: str, code: str | None = None) -> None:
        super().__init__(message)
        self.api = api
        self.code = code


class InvalidTokenError(CallbackDeliveryError):
    """Step Functions answered ``InvalidToken``: the string is not a task token it issued.

    Not "already closed": the token was quoted, URL-encoded, truncated, or a business field that looks like one
    was taken for it, and the real task is still waiting. The message is handed back so that it ends in the DLQ.
    """


class InvalidOutputError(CallbackKitError, ValueError):
    """An output cannot be sent with SendTaskSuccess: not JSON-serialisable, or over 262,144 bytes."""

    def __init__(self, message: str, *, error: str) -> None:
        super().__init__(message)
        self.error = error


class NotInTaskError(CallbackKitError, RuntimeError):
    """``current_task()`` or ``hand_off()`` was called outside a running task (``heartbeat()`` and ``is_cancelled()``
    work there: a no-op and ``False``), or ``hand_off()`` after callback-kit answered the task itself."""


def validate_error_name(error: str) -> str:
    """Check that ``error`` is an error name Step Functions will accept from SendTaskFailure.

    Example:
        >>> validate_error_name("Order.Invalid")
        'Order.Invalid'

    Raises:
        ValueError: if it starts with ``States.`` (reserved) or is longer than 256 characters.
    """
    if error.startswith(RESERVED_ERROR_PREFIX):
        raise ValueError(f"error names starting with {RESERVED_ERROR_PREFIX!r} are reserved: {error[:60]!r}")
    if len(error) > MAX_ERROR_CHARS:
        raise ValueError(f"error names are at most {MAX_ERROR_CHARS} characters, got {len(error)}")
    return error
