"""Validate a payload into the handler's ``model=``, and say why one does not match without showing its values."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

#: How many of a payload's keys a mismatch message lists.
MAX_KEYS_SHOWN = 20


def validate(model: Any, payload: Any) -> Any:
    """Validate ``payload`` into ``model``: a pydantic model class, or any type pydantic can validate."""
    validate_python: Callable[[Any], Any] = getattr(model, "model_validate", None) or _adapter(model).validate_python
    return validate_python(payload)


@functools.lru_cache(maxsize=64)
def _adapter(model: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def mismatch_message(exc: Exception, payload: Any) -> str:
    """Why ``payload`` does not match the model, naming fields and the payload's top-level keys, never values.

    The keys point at a wrong ``payload_path`` at once (the model's fields one level down); values may be
    personal data and must not land in a cause or a log line.

    Example:
        >>> from pydantic import BaseModel
        >>> class Document(BaseModel):
        ...     name: str
        >>> try:
        ...     validate(Document, {"document": {"name": "secret.pdf"}})
        ... except Exception as exc:
        ...     print(mismatch_message(exc, {"document": {"name": "secret.pdf"}}))
        the payload does not match the model: name: Field required; the payload's top-level keys: 'document'
    """
    return f"{_errors(exc)}; {describe_keys(payload)}"


def describe_keys(payload: Any) -> str:
    """The payload's top-level keys (at most :data:`MAX_KEYS_SHOWN`, each cut to 64 characters), or its type.

    Example:
        >>> describe_keys({"a": 1, "b": {"c": 2}}), describe_keys([1, 2])
        ("the payload's top-level keys: 'a', 'b'", 'the payload is a list, not an object')
    """
    if payload is None:
        return "the payload is null"
    if not isinstance(payload, Mapping):
        return f"the payload is {_a(type(payload).__name__)}, not an object"
    if not payload:
        return "the payload is an empty object"
    keys = [repr(str(k)[:64]) for k in list(payload)[:MAX_KEYS_SHOWN]]
    more = f" and {len(payload) - MAX_KEYS_SHOWN} more" if len(payload) > MAX_KEYS_SHOWN else ""
    return f"the payload's top-level keys: {', '.join(keys)}{more}"


def _a(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name


def _errors(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            # include_input=False: payload values may be personal data and must not land in a cause or log.
            items: list[Mapping[str, Any]] = errors(include_input=False, include_url=False)
            parts = [".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", "")) for e in items]
            return f"the payload does not match the model: {'; '.join(parts)}"
        except TypeError:
            pass
    return f"the payload does not match the model: {exc}"
