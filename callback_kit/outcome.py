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
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from callback_kit.exceptions import (
    ERROR_OUTPUT_NOT_SERIALIZABLE,
    ERROR_OUTPUT_TOO_LARGE,
    MAX_ERROR_CHARS,
    RESERVED_ERROR_PREFIX,
    TaskFailed,
)

MAX_OUTPUT_BYTES = 262_144
MAX_CAUSE_CHARS = 32_768
#: How many members, and how many levels, of an exception group the cause lists.
MAX_GROUP_MEMBERS = 20
MAX_GROUP_DEPTH = 3

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


def encode_output(value: Any) -> Success | Failure:
    """Encode a function's return value as SendTaskSuccess output, or explain why it cannot be.

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
    if len(raw) > MAX_OUTPUT_BYTES:
        return failure(
            ERROR_OUTPUT_TOO_LARGE,
            f"the return value is {len(raw)} bytes of JSON; Step Functions accepts at most {MAX_OUTPUT_BYTES}",
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
    if isinstance(exc, TaskFailed) and exc.error:
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
    Any other exception gives Lambda's JSON cause (``errorMessage``, ``errorType``, ``stackTrace``; see
    :func:`stack_trace` for which frames). Never raises, whatever ``exc`` does: an exception whose ``__str__``
    raises is described by its class name. The members of an exception group are listed in the cause
    (``"exceptions"``), nested groups included.

    Example:
        >>> f = from_exception(ValueError("bad order"))
        >>> f.error, json.loads(f.cause)["errorMessage"]
        ('ValueError', 'bad order')
        >>> from_exception(TaskFailed("negative total", error="Order.Invalid"))
        Failure(error='Order.Invalid', cause='negative total')
    """
    name = error_name(exc, error_map)
    if isinstance(exc, TaskFailed):
        # A business failure the function chose: the state machine's Catch reads its cause, which is the message
        # (or the cause given), never a stack trace of where it was raised.
        cause = exc.cause if exc.cause is not None else exc.message
        return Failure(name, truncate_text(cause, MAX_CAUSE_CHARS))
    return failure(name, describe(exc), error_type=type(exc).__name__, exc=exc)


def describe(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's own ``__str__`` raises (a hostile or broken class).

    Example:
        >>> class Hostile(Exception):
        ...     def __str__(self) -> str:
        ...         raise RuntimeError("no")
        >>> describe(Hostile())
        '<Hostile: str() raised RuntimeError>'
    """
    try:
        text = str(exc)
    except BaseException as err:
        return f"<{type(exc).__name__}: str() raised {type(err).__name__}>"
    return text if isinstance(text, str) else f"<{type(exc).__name__}>"


def failure(error: str, message: str, *, error_type: str | None = None, exc: BaseException | None = None) -> Failure:
    """Build a Failure whose cause follows Lambda's error convention.

    Example:
        >>> failure("CallbackKit.InvalidPayload", "total: field required").cause
        '{"errorMessage": "total: field required", "errorType": "CallbackKit.InvalidPayload"}'
    """
    stack = stack_trace(exc) if exc is not None else None
    members = _group_members(exc) if exc is not None else None
    return Failure(safe_error_name(error), lambda_error_cause(message, error_type or error, stack, members))


#: callback-kit's own directory: its frames (the runner that called the function) say nothing about the failure.
_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: The standard library's event loop frames that carry an ``async def`` function: as little use as the runner's.
_ASYNCIO_DIR = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "asyncio") + os.sep


def stack_trace(exc: BaseException) -> list[str] | None:
    """The frames of ``exc``'s traceback as the cause's ``stackTrace`` shows them (``None`` if they cannot be read).

    The execution history is read by whoever runs the state machine, so it gets the user's frames only: none of
    callback-kit's own (nor the event loop's around an ``async def`` function), and file paths relative to the
    code root (``$LAMBDA_TASK_ROOT`` in Lambda, else the working directory), as Lambda shows its own errors.
    Files outside the root (installed libraries) keep their full path.

    Example:
        >>> def check(order: dict) -> None:
        ...     raise KeyError("total")
        >>> try:
        ...     check({})
        ... except KeyError as exc:
        ...     print(stack_trace(exc)[-1].splitlines()[0].split(",", 1)[1])
         line 2, in check
    """
    try:
        frames = traceback.extract_tb(exc.__traceback__)
        root = os.path.abspath(os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()) + os.sep
        kept = traceback.StackSummary()
        for frame in frames:
            path = os.path.abspath(frame.filename) if frame.filename and not frame.filename.startswith("<") else ""
            if path.startswith(_OWN_DIR) or (path.startswith(_ASYNCIO_DIR) and not kept):
                continue
            if path.startswith(root):
                frame.filename = path[len(root) :]
            kept.append(frame)
        return kept.format()
    except Exception:  # a traceback that cannot be formatted is not worth losing the answer over
        return None


def _group_members(exc: BaseException, depth: int = 0) -> list[dict[str, Any]] | None:
    """The members of an exception group as ``{"errorType", "errorMessage"}`` (nested groups: ``"exceptions"``)."""
    members = getattr(exc, "exceptions", None)
    if not isinstance(members, tuple) or depth > MAX_GROUP_DEPTH:
        return None
    items: list[dict[str, Any]] = []
    for member in members[:MAX_GROUP_MEMBERS]:
        if not isinstance(member, BaseException):
            continue
        item: dict[str, Any] = {
            "errorType": type(member).__name__[:MAX_ERROR_CHARS],
            "errorMessage": describe(member)[:MAX_CAUSE_CHARS],
        }
        nested = _group_members(member, depth + 1)
        if nested is not None:
            item["exceptions"] = nested
        items.append(item)
    return items


def lambda_error_cause(
    message: str, error_type: str, stack: list[str] | None = None, members: list[dict[str, Any]] | None = None
) -> str:
    """Serialise an error as Lambda does (errorMessage, errorType, stackTrace) within the cause limit.

    The result is always a valid JSON object of at most 32,768 ASCII characters. When it would be longer, the
    oldest stack frames are dropped first, then the members of an exception group, then the message is cut, and
    ``"truncated": true`` is added. The work is linear in the size of the input, however large the message.

    Example:
        >>> len(lambda_error_cause("x" * 100_000, "ValueError")) <= MAX_CAUSE_CHARS
        True
    """
    # No prefix longer than the limit can fit (JSON escaping only lengthens it): cut before encoding anything.
    message = message[: MAX_CAUSE_CHARS + 1]
    doc: dict[str, Any] = {"errorMessage": message, "errorType": error_type[:MAX_ERROR_CHARS]}
    if stack is not None:
        doc["stackTrace"] = [frame[:MAX_CAUSE_CHARS] for frame in stack]
    if members is not None:
        doc["exceptions"] = members
    text = _dump(doc)
    if len(text) <= MAX_CAUSE_CHARS:
        return text
    doc["truncated"] = True
    frames: list[str] = doc.get("stackTrace", [])
    if frames:
        # The frames nearest the raise are the informative ones: keep the innermost that fit, in one pass.
        room = MAX_CAUSE_CHARS - len(_dump({**doc, "stackTrace": []}))
        kept: list[str] = []
        for frame in reversed(frames):
            cost = len(_dump([frame])) - 2 + (2 if kept else 0)  # the frame's JSON plus ", "
            if cost > room:
                break
            kept.append(frame)
            room -= cost
        doc["stackTrace"] = kept[::-1]
    if len(_dump(doc)) <= MAX_CAUSE_CHARS:
        return _dump(doc)
    if "exceptions" in doc:
        doc["exceptions"] = doc["exceptions"][:1]
        if len(_dump(doc)) > MAX_CAUSE_CHARS:
            del doc["exceptions"]
        if len(_dump(doc)) <= MAX_CAUSE_CHARS:
            return _dump(doc)
    doc["errorMessage"] = ""
    budget = MAX_CAUSE_CHARS - len(_dump(doc))
    doc["errorMessage"] = _longest_prefix_within(message, budget)
    return _dump(doc)


def truncate_text(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    # "replace" turns lone surrogates, which no UTF-8 API accepts, into "?".
    raw = text.encode("utf-8", errors="replace")
    return raw[:limit].decode("utf-8", errors="ignore")


def _dump(doc: Any) -> str:
    # ensure_ascii makes characters and UTF-8 bytes the same count, so one limit covers both readings.
    return json.dumps(doc, ensure_ascii=True)


def _longest_prefix_within(message: str, budget: int) -> str:
    """The longest prefix of ``message`` whose JSON string encoding (quotes excluded) fits ``budget``."""
    lo, hi = 0, min(len(message), budget)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(json.dumps(message[:mid], ensure_ascii=True)) - 2 <= budget:
            lo = mid
        else:
            hi = mid - 1
    return message[:lo]
