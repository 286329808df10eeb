"""How deeply a message may nest, and JSON text read within that bound.

Python's JSON decoder and every recursive walk over a decoded value stop at the interpreter's recursion limit,
and where that limit falls depends on the Python version (3.13's C decoder reads far deeper than 3.11's) and on
how deep the caller's stack already is. A message past it would raise ``RecursionError`` out of the parser and
sink its whole batch. So the bound is callback-kit's own, the same everywhere: a message nested more than
:data:`MAX_DEPTH` levels is not read. No state machine sends such a message on purpose; one that arrives is
treated like text that is not JSON (its token, if any, cannot be trusted to be where a reader would look).
"""

from __future__ import annotations

import json
from typing import Any

#: Levels of arrays and objects a message may nest (the message itself is level 1). Far above any real payload,
#: and far enough below the interpreter's recursion limit (1,000) that the walks over a message never reach it.
MAX_DEPTH = 256


class MessageTooDeepError(ValueError):
    """A message nests more than :data:`MAX_DEPTH` levels of arrays and objects."""

    def __init__(self, what: str = "the message") -> None:
        super().__init__(f"{what} is nested more than {MAX_DEPTH} levels deep")


def loads(text: str, what: str) -> tuple[Any, str | None]:
    """Decode JSON ``text``: ``(value, None)``, or ``(None, why not)`` when it is not JSON or nests too deeply.

    ``what`` names the text in the reason ("the SQS body"). Never raises for what the text holds.

    Example:
        >>> loads('{"a": [1]}', "the body")
        ({'a': [1]}, None)
        >>> loads("[" * 300 + "]" * 300, "the body")
        (None, 'the body is nested more than 256 levels deep')
        >>> loads("{", "the body")[1].startswith("the body is not valid JSON")
        True
    """
    try:
        value = json.loads(text)
    except RecursionError:
        return None, str(MessageTooDeepError(what))
    except ValueError as exc:
        return None, f"{what} is not valid JSON: {exc}"
    # Depth needs at least as many brackets: a count (C speed) spares the walk for all but large messages.
    if text.count("[") + text.count("{") > MAX_DEPTH and nests_deeper(value, MAX_DEPTH):
        return None, str(MessageTooDeepError(what))
    return value, None


def nests_deeper(value: Any, limit: int) -> bool:
    """Whether decoded JSON ``value`` nests more than ``limit`` levels of lists and dicts (without recursing).

    Example:
        >>> nests_deeper([[1]], 2), nests_deeper([[1]], 1)
        (False, True)
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        obj, depth = stack.pop()
        kind = type(obj)
        if kind is dict:
            children: Any = obj.values()
        elif kind is list:
            children = obj
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if type(child) in _CONTAINERS)
    return False


_CONTAINERS = frozenset({dict, list})
