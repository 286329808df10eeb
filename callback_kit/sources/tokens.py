"""Where a task token sits in a message, and the message without it.

Without a ``token_path``, the token is looked for in these places, first found wins:

1. ``context.Task.Token`` (a payload built with ``"context.$": "$$"``),
2. the TaskToken family: ``TaskToken``, ``taskToken``, ``tasktoken``, ``TASK_TOKEN``, ``task_token``,
3. ``MyTaskToken``,
4. the generic ``token`` / ``Token``, last, because a business field (a card token) may carry that name.

Key names are compared without regard to case and ``_``, so ``Task_Token`` is in the TaskToken family. The
unambiguous places come first so that a business ``token`` beside ``context.Task.Token`` is never taken for the
task token. The function receives the message with every copy of the task token removed, wherever it sat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

from callback_kit.sources.depth import MAX_DEPTH, MessageTooDeepError

#: The spellings looked for when no ``token_path`` is given, in the order they are tried (see the module
#: docstring: names match regardless of case and ``_``, so these stand for every spelling of their family).
TOKEN_KEYS: tuple[str, ...] = (
    "context.Task.Token",
    "TaskToken",
    "taskToken",
    "tasktoken",
    "TASK_TOKEN",
    "task_token",
    "MyTaskToken",
    "token",
    "Token",
)
#: Step Functions' longest task token (botocore's model since 2024; older documents say 1,024).
MAX_TOKEN_CHARS = 2048
#: Where a Lambda durable callback id is looked for, at the top of a message (any case, ``_`` ignored, as for
#: token keys: ``callbackId``, ``CallbackId``, ``callback_id``). AWS defines no envelope for it; this is the
#: name its own API gives the parameter.
CALLBACK_ID_KEY = "callbackId"
#: The longest durable callback id (botocore's ``CallbackId`` shape).
MAX_CALLBACK_ID_CHARS = 1024

#: The places of the lookup order, as normalised key paths (see :func:`normalise`).
_PLACES: tuple[tuple[str, ...], ...] = (("context", "task", "token"), ("tasktoken",), ("mytasktoken",), ("token",))

MISSING: Any = object()
"""Marks a path that is not in a message (``None`` is a value a message can hold)."""


def is_mapping(obj: Any) -> TypeGuard[Mapping[Any, Any]]:
    """``is_mapping(obj)``, with decoded JSON's ``dict`` answered without the abstract-class check.

    Each record's parse asks this about ten times, and the check through ``Mapping`` costs a Python-level call.

    Example:
        >>> is_mapping({}), is_mapping([])
        (True, False)
    """
    return type(obj) is dict or isinstance(obj, Mapping)


def normalise(key: str) -> str:
    """A key as the lookup compares it: lower case, without ``_``.

    Example:
        >>> normalise("TASK_TOKEN") == normalise("taskToken") == "tasktoken"
        True
    """
    return key.replace("_", "").lower()


def find_token_path(message: Any, token_path: str | None = None) -> tuple[str, ...] | None:
    """The key path of the task token in ``message``, spelled as the message spells it, or ``None``.

    With ``token_path`` (dotted), only that exact path is looked at; otherwise the places of the module docstring,
    in order.

    Example:
        >>> find_token_path({"token": "card", "context": {"Task": {"Token": "t"}}})
        ('context', 'Task', 'Token')
        >>> find_token_path({"TASK_TOKEN": "t"})
        ('TASK_TOKEN',)
        >>> find_token_path({"meta": {"cb": "t"}}, "meta.cb")
        ('meta', 'cb')
    """
    if token_path:
        path = tuple(token_path.split("."))
        return path if get_path(message, path) is not MISSING else None
    if not is_mapping(message):
        return None
    keys = _normalised_keys(message)  # one pass over the top-level keys serves every place
    for head, *rest in _PLACES:
        key = keys.get(head)
        if key is None:
            continue
        below = _find_normalised(message[key], tuple(rest)) if rest else ()
        if below is not None:
            return (key, *below)
    return None


def find_callback_id_path(message: Any) -> tuple[str, ...] | None:
    """The key path of a durable callback id in ``message`` (spelled as the message spells it), or ``None``.

    Example:
        >>> find_callback_id_path({"callback_id": "abc", "order": 7})
        ('callback_id',)
        >>> find_callback_id_path({"order": 7}) is None
        True
    """
    if not is_mapping(message):
        return None
    key = _normalised_keys(message).get(normalise(CALLBACK_ID_KEY))
    return None if key is None else (key,)


def check_callback_id(value: Any) -> tuple[str | None, str | None]:
    """``(callback id, None)`` for a usable durable callback id, else ``(None, why not)``.

    Example:
        >>> check_callback_id("Y2ItMQ==")
        ('Y2ItMQ==', None)
        >>> check_callback_id("")
        (None, 'the durable callback id is not a non-empty string (got str)')
    """
    if not isinstance(value, str) or not value:
        return None, f"the durable callback id is not a non-empty string (got {type(value).__name__})"
    if len(value) > MAX_CALLBACK_ID_CHARS:
        # Lambda would refuse it (InvalidParameterValueException): this callback can never be answered from here.
        return None, f"the durable callback id is {len(value)} characters; Lambda's are at most {MAX_CALLBACK_ID_CHARS}"
    return value, None


def check_token(value: Any) -> tuple[str | None, str | None]:
    """``(token, None)`` for a usable token, else ``(None, why not)``.

    Example:
        >>> check_token("abc")
        ('abc', None)
        >>> check_token(42)
        (None, 'the task token is not a non-empty string (got int)')
    """
    if value is None or value is MISSING:
        return None, "no task token found"
    if not isinstance(value, str) or not value:
        return None, f"the task token is not a non-empty string (got {type(value).__name__})"
    if len(value) > MAX_TOKEN_CHARS:
        # Step Functions would answer ValidationException: this token can never be completed.
        return None, f"the task token is {len(value)} characters; Step Functions' tokens are at most {MAX_TOKEN_CHARS}"
    return value, None


def get_path(obj: Any, path: str | tuple[str, ...]) -> Any:
    """The value at a dotted path (or key tuple), or :data:`MISSING`.

    Example:
        >>> get_path({"a": {"b": 1}}, "a.b")
        1
    """
    for part in path.split(".") if isinstance(path, str) else path:
        if not is_mapping(obj) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def without_token(message: Any, path: tuple[str, ...] | None, token: str | None, *, raw: str | None = None) -> Any:
    """``message`` without the key at ``path`` and without any other entry whose value is ``token``.

    The message itself is not modified: only the mappings and lists on the way to a removed entry are copied.
    ``raw``, the JSON text the message was decoded from, saves the search for other copies when it holds the
    token only once (the copy at ``path``).

    Raises:
        MessageTooDeepError: the search for other copies went more than ``MAX_DEPTH`` levels down (a message that
            nests so deeply is not read, see :mod:`callback_kit.sources.depth`).

    Example:
        >>> without_token({"TaskToken": "t", "context": {"Task": {"Token": "t"}}, "token": "card"},
        ...               ("TaskToken",), "t")
        {'context': {'Task': {}}, 'token': 'card'}
    """
    if path:
        message = _without_path(message, path)
    if not token or (path and raw is not None and raw.count(token) == 1):
        return message
    return _strip(message, token)


def _normalised_keys(message: Mapping[Any, Any]) -> dict[str, str]:
    """Normalised key -> the message's own spelling (the first one, when two spellings normalise alike)."""
    keys: dict[str, str] = {}
    for key in message:
        if isinstance(key, str):
            keys.setdefault(normalise(key), key)
    return keys


def _find_normalised(message: Any, place: tuple[str, ...]) -> tuple[str, ...] | None:
    found: list[str] = []
    obj = message
    for part in place:
        if not is_mapping(obj):
            return None
        key = next((k for k in obj if isinstance(k, str) and normalise(k) == part), None)
        if key is None:
            return None
        found.append(key)
        obj = obj[key]
    return tuple(found)


def _without_path(message: Any, path: tuple[str, ...]) -> Any:
    head, rest = path[0], path[1:]
    if not is_mapping(message) or head not in message:
        return message
    copy = dict(message)
    if rest:
        copy[head] = _without_path(copy[head], rest)
    else:
        del copy[head]
    return copy


#: Leaf types of decoded JSON that cannot hold a token: skipped without the (slow) abstract Mapping check.
_LEAVES = frozenset({int, float, bool, type(None)})


def _strip(obj: Any, token: str, depth: int = 1) -> Any:
    """``obj`` without the mapping entries whose value is ``token``, at any depth; unchanged parts are shared."""
    kind = type(obj)
    if kind is not dict and kind is not list and not is_mapping(obj):
        return obj
    if depth > MAX_DEPTH:
        # Refused here rather than met as a RecursionError, whose depth depends on the caller's stack.
        raise MessageTooDeepError()
    if kind is list:
        return _strip_list(obj, token, depth)
    return _strip_mapping(obj, token, depth)


def _strip_mapping(obj: Mapping[Any, Any], token: str, depth: int) -> Any:
    out: dict[Any, Any] | None = None  # a copy, made at the first change
    for key, value in obj.items():
        kind = type(value)
        if kind is str:
            new: Any = _REMOVED if value == token else value
        elif kind in _LEAVES:
            new = value
        else:
            new = _strip(value, token, depth + 1)
        if out is None:
            if new is value:
                continue
            out = {}
            for earlier, kept in obj.items():  # the entries before this one, unchanged
                if earlier == key:
                    break
                out[earlier] = kept
        if new is not _REMOVED:
            out[key] = new
    return obj if out is None else out


def _strip_list(obj: list[Any], token: str, depth: int) -> list[Any]:
    out: list[Any] | None = None
    for index, item in enumerate(obj):
        kind = type(item)
        new = item if kind is str or kind in _LEAVES else _strip(item, token, depth + 1)
        if out is None and new is not item:
            out = obj[:index]
        if out is not None:
            out.append(new)
    return obj if out is None else out


#: Marks an entry removed by :func:`_strip`.
_REMOVED: Any = object()
