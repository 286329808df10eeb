"""Turn what a user function did into what Step Functions accepts.

A return value becomes the JSON ``output`` of SendTaskSuccess; an exception becomes the ``error`` and
``cause`` of SendTaskFailure. Step Functions' limits are enforced here, in UTF-8 bytes, because botocore only
checks minimum lengths and an over-long field would otherwise come back as a ValidationException after the
function's work is done:

* ``output``: valid JSON, at most 262,144 bytes; otherwise the task fails with
  ``CallbackKit.OutputTooLarge`` or ``CallbackKit.OutputNotSerializable``.
* ``error``: at most 256 characters, never starting with ``States.``.
* ``cause``: at most 32,768 characters. A ``TaskFailed``'s cause is its text (``cause=``, else the message); any
  other exception's follows Lambda's own error convention (a JSON object with ``errorMessage``, ``errorType`` and
  ``stackTrace``, the user's frames only) and is cut so that it stays valid JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from callback_kit.causes import (
    MAX_CAUSE_CHARS,
    MAX_GROUP_DEPTH,
    MAX_GROUP_MEMBERS,
    MAX_LISTED_MEMBERS,
    describe,
    group_members,
    lambda_error_cause,
    stack_trace,
    truncate_text,
)
from callback_kit.exceptions import (
    ERROR_OUTPUT_NOT_SERIALIZABLE,
    ERROR_OUTPUT_TOO_LARGE,
    MAX_ERROR_CHARS,
    RESERVED_ERROR_PREFIX,
    TaskFailed,
)

MAX_OUTPUT_BYTES = 262_144

__all__ = [
    "MAX_CAUSE_CHARS",
    "MAX_GROUP_DEPTH",
    "MAX_GROUP_MEMBERS",
    "MAX_LISTED_MEMBERS",
    "MAX_OUTPUT_BYTES",
    "ErrorMap",
    "Failure",
    "Outcome",
    "Success",
    "describe",
    "encode_output",
    "error_name",
    "failure",
    "from_exception",
    "lambda_error_cause",
    "safe_error_name",
    "stack_trace",
    "truncate_text",
]

ErrorMap: TypeAlias = Mapping[type[BaseException], str]


@dataclass(frozen=True)
class Success:
    """A SendTaskSuccess to make: ``output`` is a JSON document within the size limit."""

    output: str


@dataclass(frozen=True)
class Failure:
    """A SendTaskFailure to make: ``error`` and ``cause`` are within Step Functions' limits."""

    error: str
    cause: str


Outcome: TypeAlias = Success | Failure


def encode_output(
    value: Any, *, max_bytes: int = MAX_OUTPUT_BYTES, service: str = "Step Functions"
) -> Success | Failure:
    """Encode a function's return value as SendTaskSuccess output, or explain why it cannot be.

    ``max_bytes`` is the limit of the backend the output goes to (a durable callback's ``Result`` takes 1 MiB),
    and ``service`` the name its refusal gives.

    pydantic models, dataclasses, dicts, lists, tuples, sets, scalars, ``None``, dates, UUIDs and Decimals are
    accepted (through pydantic's serializer); NaN and infinities become ``null`` as they have no JSON form.

    Example:
        >>> encode_output({"ack": "success"})
        Success(output='{"ack":"success"}')
        >>> encode_output(object()).error
        'CallbackKit.OutputNotSerializable'
    """
    raw = _plain_json(value)
    if raw is None:
        # Imported here rather than at module level: pydantic_core is only needed for values plain json cannot
        # encode (models, dataclasses, dates, NaN), and a Lambda cold start pays for every import.
        from pydantic_core import to_json

        try:
            raw = to_json(value, inf_nan_mode="null")
        except Exception as exc:
            return failure(ERROR_OUTPUT_NOT_SERIALIZABLE, f"the return value is not JSON-serialisable: {describe(exc)}")
    if len(raw) > max_bytes:
        return failure(
            ERROR_OUTPUT_TOO_LARGE,
            f"the return value is {len(raw)} bytes of JSON; {service} accepts at most {max_bytes}",
        )
    return Success(raw.decode("utf-8"))


_PLAIN = (dict, list, str, int, float, bool, type(None))


def _plain_json(value: Any) -> bytes | None:
    """The JSON of a value made of dicts, lists and scalars, as pydantic would write it; ``None`` otherwise."""
    if type(value) not in _PLAIN:
        return None
    try:
        # A date or a model inside, NaN, a cycle, a lone surrogate: pydantic decides, as it always did.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError):
        return None


def error_name(exc: BaseException, error_map: ErrorMap | None = None) -> str:
    """The error name Step Functions should see for ``exc``.

    Precedence: ``TaskFailed.error``, then the nearest class of ``exc`` in ``error_map``, then the exception's
    class name, as Lambda reports it.

    Example:
        >>> error_name(KeyError("x"))
        'KeyError'
        >>> error_name(KeyError("x"), {LookupError: "Lookup.Failed"})
        'Lookup.Failed'
    """
    if isinstance(exc, TaskFailed) and isinstance(exc.error, str) and exc.error:
        return safe_error_name(exc.error)
    if error_map:
        for klass in type(exc).__mro__:
            if klass in error_map:
                return safe_error_name(error_map[klass])
    return safe_error_name(type(exc).__name__)


def safe_error_name(name: str) -> str:
    """Make ``name`` acceptable to SendTaskFailure: not ``States.``-prefixed and at most 256 characters."""
    if name.startswith(RESERVED_ERROR_PREFIX):
        # Step Functions rejects the call outright; keep the information under a non-reserved name.
        name = "Error." + name
    return name[:MAX_ERROR_CHARS]


def from_exception(exc: BaseException, error_map: ErrorMap | None = None) -> Failure:
    """Map an exception raised by a user function to a SendTaskFailure.

    A :class:`~callback_kit.exceptions.TaskFailed` gives its cause as plain text: its ``cause=``, else its message.
    A cause or message that is not a string (``TaskFailed(cause={"sku": 7})``) is sent as its JSON text.
    Any other exception gives Lambda's JSON cause (``errorMessage``, ``errorType``, ``stackTrace``; see
    :func:`stack_trace` for which frames). Never raises, whatever ``exc`` does: an exception whose ``__str__``
    raises is described by its class name, and one whose attributes raise is described by its class name alone.
    The members of an exception group are listed in the cause (``"exceptions"``), nested groups included, each
    group once however often it is shared, and at most ``MAX_LISTED_MEMBERS`` in all.

    Example:
        >>> f = from_exception(ValueError("bad order"))
        >>> f.error, json.loads(f.cause)["errorMessage"]
        ('ValueError', 'bad order')
        >>> from_exception(TaskFailed("negative total", error="Order.Invalid"))
        Failure(error='Order.Invalid', cause='negative total')
        >>> from_exception(TaskFailed("bad", cause={"sku": 7}))
        Failure(error='TaskFailed', cause='{"sku": 7}')
    """
    try:
        name = error_name(exc, error_map)
        if isinstance(exc, TaskFailed):
            # A business failure the function chose: the state machine's Catch reads its cause, which is the
            # message (or the cause given), never a stack trace of where it was raised.
            cause = exc.cause if exc.cause is not None else exc.message
            return Failure(name, truncate_text(_text(cause), MAX_CAUSE_CHARS))
        return failure(name, describe(exc), error_type=type(exc).__name__, exc=exc)
    except Exception:
        # An exception that fights being read (a property that raises, an error_map that cannot be searched)
        # still fails its task: an answer with less in it beats a task that runs again on every delivery.
        kind = type(exc).__name__
        return failure(kind, f"<{kind}: the exception could not be read>")


def _text(value: object) -> str:
    """A cause as text: a string as it is, anything else as its JSON (or, failing that, a stand-in)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:  # RecursionError, a __str__ that raises, a key that is not a string
        return f"<{type(value).__name__}>"


def failure(error: str, message: str, *, error_type: str | None = None, exc: BaseException | None = None) -> Failure:
    """Build a Failure whose cause follows Lambda's error convention.

    Example:
        >>> failure("CallbackKit.InvalidPayload", "total: field required").cause
        '{"errorMessage": "total: field required", "errorType": "CallbackKit.InvalidPayload"}'
    """
    stack = stack_trace(exc) if exc is not None else None
    members = group_members(exc) if exc is not None else None
    return Failure(safe_error_name(error), lambda_error_cause(message, error_type or error, stack, members))
