"""The ``cause`` of a SendTaskFailure made from an exception: Lambda's error JSON, cut to Step Functions' limit.

A cause is read by whoever runs the state machine (the execution history, a Catch's ``$.Cause``), so it holds
the user's frames only, lists an exception group's members, and stays valid JSON within 32,768 characters
however large or hostile the exception: every walk here is bounded in time and memory.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import Any

from callback_kit.exceptions import MAX_ERROR_CHARS

MAX_CAUSE_CHARS = 32_768
#: How many members, and how many levels, of an exception group the cause lists.
MAX_GROUP_MEMBERS = 20
MAX_GROUP_DEPTH = 3
#: How many members the cause lists in all, every level together, and how much of each one's message: groups
#: that share members (or nest one group many times) would otherwise multiply at every level.
MAX_LISTED_MEMBERS = 100
MAX_MEMBER_MESSAGE_CHARS = 1000


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


def group_members(exc: BaseException) -> list[dict[str, Any]] | None:
    """The members of an exception group as ``{"errorType", "errorMessage"}`` (nested groups: ``"exceptions"``).

    A group met a second time (groups can share members) is listed without its members (``"repeated": true``),
    and the listing stops at ``MAX_LISTED_MEMBERS`` items: the work is bounded whatever the graph of groups.
    """
    expanded: set[int] = {id(exc)}
    budget = [MAX_LISTED_MEMBERS]

    def members_of(group: BaseException, depth: int) -> list[dict[str, Any]] | None:
        members = _exceptions(group)
        if members is None or depth > MAX_GROUP_DEPTH:
            return None
        items: list[dict[str, Any]] = []
        for member in members[:MAX_GROUP_MEMBERS]:
            if not isinstance(member, BaseException):
                continue
            if budget[0] <= 0:
                break
            budget[0] -= 1
            item: dict[str, Any] = {
                "errorType": type(member).__name__[:MAX_ERROR_CHARS],
                "errorMessage": describe(member)[:MAX_MEMBER_MESSAGE_CHARS],
            }
            if id(member) in expanded:
                if _exceptions(member) is not None:
                    item["repeated"] = True
            else:
                expanded.add(id(member))
                nested = members_of(member, depth + 1)
                if nested is not None:
                    item["exceptions"] = nested
            items.append(item)
        return items

    return members_of(exc, 0)


def _exceptions(exc: BaseException) -> tuple[Any, ...] | None:
    """``exc.exceptions`` when it is a tuple (an exception group's members), else ``None``; never raises."""
    try:
        members = getattr(exc, "exceptions", None)
    except Exception:  # a property that raises: treat the exception as no group at all
        return None
    return members if isinstance(members, tuple) else None


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
