"""Where a ``.waitForTaskToken`` task puts the task token, in JSONPath and in JSONata.

JSONPath writes ``"TaskToken.$": "$$.Task.Token"`` (or passes the whole context, ``"context.$": "$$"``); JSONata
writes ``"TaskToken": "{% $states.context.Task.Token %}"`` in ``Arguments``. Either may hide the token inside an
intrinsic or an expression (``States.Format(...)``, ``{% {'t': $states.context.Task.Token} %}``): the token is
passed, but at a key that only running the expression would tell.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from callback_kit.sources.tokens import find_token_path

#: ``$$.Task.Token``, ``$$.Task`` or ``$$`` alone (the whole context object), anywhere in a JSONPath string.
_JSONPATH_TOKEN = re.compile(r"\$\$(\.Task(\.Token)?)?(?![\w.\[])")
#: The same in JSONata: ``$states.context.Task.Token``, ``$states.context.Task``, ``$states.context``.
_JSONATA_TOKEN = re.compile(r"\$states\.context(\.Task(\.Token)?)?(?![\w.\[])")
#: ``'key': $states.context.Task.Token`` inside a JSONata object constructor.
_JSONATA_KEYED = re.compile(r"[\"'`]?([A-Za-z_][\w-]*)[\"'`]?\s*:\s*\$states\.context\.Task\.Token(?![\w.\[])")

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class TokenRef:
    """One place a state's Parameters/Arguments pass the token.

    Attributes:
        path: the location of the value in Parameters/Arguments (keys without their ``.$``).
        suffix: where the token sits inside that value: ``""`` (the value is the token), ``"Task.Token"`` (the
            whole context), ``"Token"`` (``$$.Task``), or ``None`` when an intrinsic or expression builds it.
    """

    path: Path
    suffix: str | None


def token_refs(arguments: Any) -> list[TokenRef]:
    """Every place the token is passed in a state's ``Parameters`` (JSONPath) or ``Arguments`` (JSONata).

    Example:
        >>> token_refs({"MessageBody": {"TaskToken.$": "$$.Task.Token", "ctx.$": "$$"}})
        [TokenRef(path=('MessageBody', 'TaskToken'), suffix=''),
         TokenRef(path=('MessageBody', 'ctx'), suffix='Task.Token')]
        >>> token_refs({"Payload": {"token": "{% $states.context.Task.Token %}"}})
        [TokenRef(path=('Payload', 'token'), suffix='')]
    """
    return list(_refs(arguments, ()))


def _refs(value: Any, path: Path) -> Iterator[TokenRef]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            key = str(key)
            if key.endswith(".$") and isinstance(item, str):
                ref = _jsonpath_ref(item, (*path, key[:-2]))
                if ref:
                    yield ref
            else:
                yield from _refs(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _refs(item, (*path, index))
    elif isinstance(value, str) and "{%" in value:
        yield from _jsonata_refs(value, path)


def _jsonpath_ref(text: str, path: Path) -> TokenRef | None:
    match = _JSONPATH_TOKEN.search(text)
    if not match:
        return None
    if match.group(0) != text.strip():
        return TokenRef(path, None)  # inside an intrinsic: States.Format('...', $$.Task.Token)
    return TokenRef(path, _suffix(match))


def _jsonata_refs(text: str, path: Path) -> Iterator[TokenRef]:
    match = _JSONATA_TOKEN.search(text)
    if not match:
        return
    body = text.strip().removeprefix("{%").removesuffix("%}").strip()
    if match.group(0) == body:
        yield TokenRef(path, _suffix(match))
        return
    keyed = _JSONATA_KEYED.search(body)
    if keyed and body.startswith("{"):
        yield TokenRef((*path, keyed.group(1)), "")  # {% {'taskToken': $states.context.Task.Token, ...} %}
    else:
        yield TokenRef(path, None)


def _suffix(match: re.Match[str]) -> str:
    if match.group(2):
        return ""
    return "Token" if match.group(1) else "Task.Token"


def key_path(ref: TokenRef, root: Path) -> str | None:
    """The dotted path of the token inside the message at ``root`` (``None``: not inside it, or not knowable).

    Example:
        >>> key_path(TokenRef(("Payload", "ctx"), "Task.Token"), ("Payload",))
        'ctx.Task.Token'
    """
    if ref.suffix is None or ref.path[: len(root)] != root:
        return None
    parts = [str(p) for p in ref.path[len(root) :]]
    if ref.suffix:
        parts.append(ref.suffix)
    return ".".join(parts)


def worker_finds_token(path: str) -> bool:
    """Whether a callback-kit worker finds a token at this dotted path of the message without ``token_path``.

    The one place CK008 asks, and it asks the worker's own lookup (:func:`callback_kit.sources.tokens.find_token_path`)
    with a message holding a token at that path, so the checker and the workers cannot disagree.

    Example:
        >>> [worker_finds_token(p) for p in ("TaskToken", "TASK_TOKEN", "context.Task.Token", "approvalToken")]
        [True, True, True, False]
    """
    parts = path.split(".")
    message: Any = "token"
    for part in reversed(parts):
        message = {part: message}
    return find_token_path(message) == tuple(parts)
