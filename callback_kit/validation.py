"""Checks run when a handler is decorated or a worker is built, so that a mistake fails at import, not per task.

Without them, a function that cannot take the payload, a ``model=`` pydantic cannot validate with, or an
``error_map`` keyed by strings are all accepted, and then every task fails (a ``TypeError`` sent to Step
Functions, ``CallbackKit.InvalidPayload`` that blames the payload, an error name silently not applied). Each
check raises ``TypeError`` (wrong kind of thing) or ``ValueError`` (right kind, bad value) with a message that
names the option, the value, and the fix.

Example:
    >>> def handler(event, context):
    ...     return {}
    >>> check_function(handler)
    Traceback (most recent call last):
    ...
    TypeError: handler(event, context) takes 2 arguments, but a callback-kit function receives the payload only...
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Collection, Mapping
from typing import Any

from callback_kit.exceptions import validate_error_name

__all__ = ["check_error_map", "check_function", "check_model", "check_option_names", "check_options", "check_worker"]

_PROCESS_EVENT_HINT = (
    "write 'def handler(payload)', or, to keep the (event, context) form, call "
    "ck.process_event(event, context, fn) from it"
)


def check_function(fn: Any) -> None:
    """Refuse what cannot serve as a task function: it must be callable with one argument, the payload.

    ``async def`` functions are accepted (their result is awaited); generator functions are not, since a
    generator is not a task's result.

    Raises:
        TypeError: ``fn`` is not callable, is a pydantic model class, a generator or async generator function,
            or cannot be called with exactly one positional argument (``def handler(event, context)``).

    Example:
        >>> async def approve(request: dict) -> dict:
        ...     return {"approved": True}
        >>> check_function(approve)  # accepted: the runner awaits it
    """
    if not callable(fn):
        raise TypeError(
            f"callback-kit needs a function of the payload, got {_describe(fn)}; "
            "use it as a decorator (@ck.callback_handler above a def) or pass the function itself"
        )
    if inspect.isclass(fn) and _is_pydantic_model(fn):
        raise TypeError(
            f"got the pydantic model {fn.__name__} where the function belongs: "
            f"pass it as @ck.callback_handler(model={fn.__name__}) above the function"
        )
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    if inspect.isasyncgenfunction(fn) or inspect.isasyncgenfunction(getattr(fn, "__call__", None)):  # noqa: B004
        raise TypeError(
            f"{name} is an async generator function: it would return an async generator, which is not a task "
            "result. Make it 'async def' and return the value (collect the items into a list)"
        )
    if inspect.isgeneratorfunction(fn) or inspect.isgeneratorfunction(getattr(fn, "__call__", None)):  # noqa: B004
        raise TypeError(
            f"{name} is a generator function (it uses 'yield'): it would return a generator, which is not a task "
            "result. Return the value instead (collect the items into a list)"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or an extension type without a signature: nothing to check
    _check_takes_one_argument(name, signature)


def check_model(model: Any) -> None:
    """Refuse a ``model=`` that pydantic cannot build a validator for (an unsupported or undefined type).

    Raises:
        TypeError: ``model`` is a string or an instance where a type belongs, or pydantic cannot make a
            schema for it.

    Example:
        >>> check_model(dict[str, int])
        >>> check_model("Order")
        Traceback (most recent call last):
        ...
        TypeError: model= must be a type such as a pydantic model class, not the string 'Order'...
    """
    if model is None:
        return
    if isinstance(model, str):
        raise TypeError(
            f"model= must be a type such as a pydantic model class, not the string {model!r}: pass the class"
        )
    if _is_pydantic_model(type(model)):
        raise TypeError(f"model= must be the model class, not an instance of it: pass {type(model).__name__}")
    if callable(getattr(model, "model_validate", None)) and not _is_pydantic_model(model):
        return  # validated through its own model_validate, as the runner does
    from pydantic import PydanticUserError, TypeAdapter

    try:
        if _is_pydantic_model(model):
            if not getattr(model, "__pydantic_complete__", True):
                model.model_rebuild()  # raises when a forward reference still names nothing
        else:
            TypeAdapter(model)
    except (PydanticUserError, NameError, TypeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TypeError(
            f"model={_describe(model)} cannot be used: pydantic cannot build a validator for it ({first_line}). "
            "Use a pydantic model, a dataclass, a TypedDict or a standard type, defined before the handler"
        ) from exc


def check_error_map(error_map: Any) -> None:
    """Refuse an ``error_map`` whose keys are not exception classes or whose values are not valid error names.

    Raises:
        TypeError: not a mapping, a key that is not an exception class (``{"ValueError": ...}``), a value that is
            not a string.
        ValueError: a value Step Functions refuses as an error name (``States.*``, over 256 characters).

    Example:
        >>> check_error_map({KeyError: "Order.Missing"})
        >>> check_error_map({"KeyError": "Order.Missing"})
        Traceback (most recent call last):
        ...
        TypeError: error_map keys must be exception classes, not the string 'KeyError': write KeyError, unquoted
    """
    if error_map is None:
        return
    if not isinstance(error_map, Mapping):
        raise TypeError(f"error_map must be a dict of exception class -> error name, not {_describe(error_map)}")
    for key, value in error_map.items():
        if isinstance(key, str):
            raise TypeError(f"error_map keys must be exception classes, not the string {key!r}: write {key}, unquoted")
        if not _is_subclass(key, BaseException):
            raise TypeError(f"error_map keys must be exception classes, not {_describe(key)}")
        if not isinstance(value, str):
            raise TypeError(f"error_map[{key.__name__}] must be an error name (a string), not {_describe(value)}")
        try:
            validate_error_name(value)
        except ValueError as exc:
            raise ValueError(f"error_map[{key.__name__}]: {exc}") from None


def check_option_names(options: Mapping[str, Any], known: Collection[str], call: str) -> None:
    """Refuse an option ``call`` does not take, naming the public call and the closest option it does take.

    Without it, a misspelt option surfaces as a ``TypeError`` about an internal class's ``__init__``.

    Raises:
        TypeError: an option name not in ``known``.

    Example:
        >>> check_option_names({"heartbeat_intervl": 5}, ["heartbeat_interval", "model"], "callback_handler()")
        Traceback (most recent call last):
        ...
        TypeError: callback_handler() got an unexpected option 'heartbeat_intervl'; did you mean 'heartbeat_interval'?
    """
    for name in options:
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; it takes {', '.join(sorted(known))}"
        raise TypeError(f"{call} got an unexpected option {name!r}{hint}")


def check_options(options: Mapping[str, Any]) -> None:
    """The decoration-time checks of :func:`~callback_kit.handler.callback_handler`'s options.

    Example:
        >>> check_options({"model": dict, "error_map": {ValueError: "Order.Invalid"}})
    """
    check_model(options.get("model"))
    check_error_map(options.get("error_map"))
    check_metrics(options.get("metrics"))


def check_metrics(metrics: Any) -> None:
    """Refuse a ``metrics=`` that is not a powertools ``Metrics`` (what it must do: add metrics, a dimension, flush).

    Example:
        >>> from aws_lambda_powertools import Metrics
        >>> check_metrics(Metrics(namespace="Orders"))
        >>> check_metrics("Orders")
        Traceback (most recent call last):
        ...
        TypeError: metrics= must be a powertools Metrics (aws_lambda_powertools.Metrics), not 'Orders' (a str)
    """
    if metrics is None:
        return
    if not all(callable(getattr(metrics, name, None)) for name in ("add_metric", "add_dimension", "flush_metrics")):
        given = _describe(metrics)
        raise TypeError(f"metrics= must be a powertools Metrics (aws_lambda_powertools.Metrics), not {given}")


def check_worker(fn: Any, *, model: Any = None, error_map: Any = None) -> None:
    """The construction-time checks of :class:`~callback_kit.activity.ActivityWorker`: function, model, error map.

    Example:
        >>> check_worker(lambda person: person, model=dict)
    """
    check_function(fn)
    check_model(model)
    check_error_map(error_map)


# -- helpers ----------------------------------------------------------------------------------------------------
def _check_takes_one_argument(name: str, signature: inspect.Signature) -> None:
    params = list(signature.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    keyword_required = [p for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    takes_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
    shown = f"{name}({', '.join(p.name for p in positional)})"
    if len(required) >= 2:
        raise TypeError(
            f"{shown} takes {len(required)} arguments, but a callback-kit function receives the payload only "
            f"(callback-kit finds the token and handles the Lambda context): {_PROCESS_EVENT_HINT}"
        )
    if not positional and not takes_varargs:
        raise TypeError(f"{name}() takes no argument, but it is called with the payload: write {name}(payload)")
    if keyword_required:
        names = ", ".join(p.name for p in keyword_required)
        raise TypeError(f"{name} has required keyword-only arguments ({names}) that callback-kit cannot give it")


def _is_pydantic_model(cls: Any) -> bool:
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return False
    return _is_subclass(cls, BaseModel)


def _is_subclass(value: Any, base: type) -> bool:
    """Whether ``value`` is a class derived from ``base``, never raising."""
    try:
        return isinstance(value, type) and issubclass(value, base)
    except TypeError:  # Python 3.10 takes a parametrised generic (list[int]) for a type, and issubclass refuses it
        return False


def _describe(value: Any) -> str:
    if isinstance(value, type):
        return value.__qualname__
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (a {type(value).__name__})"
