"""Mistakes are refused when the handler is decorated or the worker built, with a message that says the fix."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.handler import ENV_DEADLINE_MARGIN, ENV_HEARTBEAT_INTERVAL, ENV_MAX_CONCURRENCY
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:eu-west-1:123456789012:activity:ageCheck"


class Order(BaseModel):
    total: float


@dataclasses.dataclass
class Person:
    age: int


class PersonDict(TypedDict):
    age: int


class NotPydantic:
    """A plain class pydantic has no schema for."""

    def __init__(self, value: int) -> None:
        self.value = value


def untyped(value: Any) -> Any:
    """Pass a wrong function past mypy (which catches these too) to test the check done at run time."""
    return value


# -- the function ------------------------------------------------------------------------------------------------
def test_event_context_handler_is_refused_and_points_to_process_event() -> None:
    # GIVEN the natural first try when migrating a hand-written handler
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {}

    # WHEN it is decorated / THEN it is refused at once, saying what to do instead
    with pytest.raises(TypeError) as raised:
        ck.callback_handler(untyped(handler))
    message = str(raised.value)
    assert "handler(event, context) takes 2 arguments" in message
    assert "receives the payload only" in message
    assert "ck.process_event(event, context, fn)" in message


def test_event_context_handler_is_refused_with_options_too() -> None:
    # GIVEN / WHEN the decorator with options over an (event, context) function / THEN refused
    with pytest.raises(TypeError, match="payload only"):

        @ck.callback_handler(heartbeat_interval=5)  # type: ignore[arg-type]  # what mypy also catches
        def handler(event: dict[str, Any], context: Any) -> None: ...


@pytest.mark.parametrize("value", ["handler", 42, {"fn": 1}])
def test_a_non_callable_is_refused(value: Any) -> None:
    # GIVEN / WHEN something that is not a function is decorated / THEN refused, naming what it got
    with pytest.raises(TypeError, match="needs a function of the payload, got"):
        ck.callback_handler(value)
    # AND the same through the decorator with options
    with pytest.raises(TypeError, match="needs a function of the payload, got"):
        ck.callback_handler(heartbeat_interval=5)(value)


def test_a_pydantic_model_in_place_of_the_function_is_refused() -> None:
    # GIVEN / WHEN the model is given where the function belongs / THEN the message shows model=
    with pytest.raises(TypeError, match=r"model=Order"):
        ck.callback_handler(untyped(Order))


def test_generator_functions_are_refused() -> None:
    # GIVEN a function that yields its results
    def items(payload: dict[str, Any]) -> Iterator[int]:
        yield 1

    # WHEN / THEN refused with the reason
    with pytest.raises(TypeError, match=r"generator function .* not a task result"):
        ck.callback_handler(items)


def test_async_generator_functions_are_refused() -> None:
    # GIVEN an async function that yields
    async def items(payload: dict[str, Any]) -> AsyncIterator[int]:
        yield 1

    # WHEN / THEN refused with the reason
    with pytest.raises(TypeError, match="async generator function"):
        ck.callback_handler(items)


def test_async_functions_are_accepted() -> None:
    # GIVEN an async def of the payload
    async def approve(request: dict[str, Any]) -> dict[str, Any]:
        return {"approved": True}

    # WHEN it is decorated / THEN it is accepted and still callable directly
    handler = ck.callback_handler(approve)
    assert handler.fn is approve


@pytest.mark.parametrize(
    "fn",
    [
        lambda payload: payload,
        lambda payload, extra=1: payload,
        lambda *args: args,
        functools.partial(lambda prefix, payload: payload, "x"),
        len,
    ],
)
def test_functions_of_one_argument_are_accepted(fn: Callable[..., Any]) -> None:
    # GIVEN / WHEN / THEN
    assert ck.callback_handler(fn).fn is fn


def test_a_callable_object_with_a_payload_argument_is_accepted() -> None:
    # GIVEN an object whose __call__ takes the payload
    class Handler:
        def __call__(self, payload: dict[str, Any]) -> dict[str, Any]:
            return payload

    # WHEN / THEN it is accepted
    handler = Handler()
    assert ck.callback_handler(handler).fn is handler


def test_a_function_without_arguments_is_refused() -> None:
    # GIVEN / WHEN / THEN
    def ping() -> str:
        return "pong"

    with pytest.raises(TypeError, match=r"ping\(\) takes no argument"):
        ck.callback_handler(untyped(ping))


def test_required_keyword_only_arguments_are_refused() -> None:
    # GIVEN / WHEN / THEN
    def handle(payload: dict[str, Any], *, region: str) -> None: ...

    with pytest.raises(TypeError, match=r"required keyword-only arguments \(region\)"):
        ck.callback_handler(untyped(handle))


# -- model= ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [Order, Person, PersonDict, dict[str, int], list[Order], int])
def test_models_pydantic_can_validate_are_accepted(model: Any) -> None:
    # GIVEN / WHEN / THEN
    ck.callback_handler(model=model)(lambda payload: payload)


def test_a_model_pydantic_cannot_build_a_schema_for_is_refused() -> None:
    # GIVEN a plain class pydantic has no schema for / WHEN it is the model / THEN refused, not InvalidPayload later
    with pytest.raises(TypeError) as raised:
        ck.callback_handler(model=NotPydantic)(lambda payload: payload)
    message = str(raised.value)
    assert "model=NotPydantic cannot be used" in message
    assert "pydantic cannot build a validator" in message


def test_a_model_with_an_undefined_forward_reference_is_refused() -> None:
    # GIVEN a model that names a type that is never defined
    class Basket(BaseModel):
        items: list[Missing]  # type: ignore[name-defined]  # noqa: F821

    # WHEN / THEN refused at decoration
    with pytest.raises(TypeError, match=r"model=.*Basket cannot be used"):
        ck.callback_handler(model=Basket)(lambda payload: payload)


@pytest.mark.parametrize(
    ("model", "expected"), [("Order", "not the string 'Order'"), (Order(total=1), "not an instance")]
)
def test_a_model_that_is_not_a_type_is_refused(model: Any, expected: str) -> None:
    # GIVEN / WHEN / THEN
    with pytest.raises(TypeError, match=expected):
        ck.callback_handler(model=model)(lambda payload: payload)


# -- error_map= --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("error_map", "error", "expected"),
    [
        ({"ValueError": "Order.Invalid"}, TypeError, "not the string 'ValueError': write ValueError, unquoted"),
        ({ValueError(): "Order.Invalid"}, TypeError, "keys must be exception classes"),
        ({int: "Order.Invalid"}, TypeError, "keys must be exception classes, not int"),
        ({ValueError: 42}, TypeError, r"error_map\[ValueError\] must be an error name"),
        ({ValueError: "States.Timeout"}, ValueError, r"error_map\[ValueError\]: .*reserved"),
        ({ValueError: "E" * 300}, ValueError, "at most 256"),
        ([ValueError], TypeError, "must be a dict"),
    ],
)
def test_bad_error_maps_are_refused(error_map: Any, error: type[Exception], expected: str) -> None:
    # GIVEN / WHEN a bad error_map / THEN refused at decoration, naming the key
    with pytest.raises(error, match=expected):
        ck.callback_handler(error_map=error_map)(lambda payload: payload)


def test_a_good_error_map_is_accepted() -> None:
    # GIVEN / WHEN / THEN
    ck.callback_handler(error_map={KeyError: "Order.Missing", Exception: "Order.Failed"})(lambda p: p)


# -- ActivityWorker -------------------------------------------------------------------------------------------------
def test_the_activity_worker_refuses_an_event_context_function() -> None:
    # GIVEN / WHEN / THEN the same check when the worker is built
    def handler(event: Any, context: Any) -> None: ...

    with pytest.raises(TypeError, match="payload only"):
        ActivityWorker(ARN, untyped(handler), client=FakeStepFunctions())


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [({"model": NotPydantic}, "model=NotPydantic"), ({"error_map": {"KeyError": "X"}}, "error_map keys")],
)
def test_the_activity_worker_refuses_bad_models_and_error_maps(kwargs: dict[str, Any], expected: str) -> None:
    # GIVEN / WHEN / THEN
    with pytest.raises(TypeError, match=expected):
        ActivityWorker(ARN, lambda p: p, client=FakeStepFunctions(), **kwargs)


# -- option values -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"heartbeat_interval": -1}, "heartbeat_interval must be a number of seconds >= 0, not -1"),
        ({"deadline_margin": -0.5}, "deadline_margin must be a number of seconds >= 0, not -0.5"),
        ({"max_concurrency": 0}, "max_concurrency must be a whole number >= 1, not 0"),
        ({"max_concurrency": 2.5}, "max_concurrency must be a whole number >= 1, not 2.5"),
        ({"heartbeat_interval": "soon"}, "heartbeat_interval must be a number, not 'soon'"),
        ({"deadline_margin": float("nan")}, "deadline_margin must be a number of seconds >= 0, not nan"),
    ],
)
def test_each_bad_option_is_named_with_its_value(options: dict[str, Any], expected: str) -> None:
    # GIVEN / WHEN one bad option / THEN the error names that option and its value, and no other option
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        ck.callback_handler(**options)(lambda p: p)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (ENV_HEARTBEAT_INTERVAL, "-3", f"heartbeat_interval (from ${ENV_HEARTBEAT_INTERVAL}) must be"),
        (ENV_DEADLINE_MARGIN, "two", f"deadline_margin (from ${ENV_DEADLINE_MARGIN}) must be a number, not 'two'"),
        (ENV_MAX_CONCURRENCY, "0", f"max_concurrency (from ${ENV_MAX_CONCURRENCY}) must be a whole number"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    variable: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bad value in the environment
    monkeypatch.setenv(variable, value)
    # WHEN a handler is decorated / THEN the error names the option, the variable and the value
    with pytest.raises(ValueError, match=re.escape(expected)):
        ck.callback_handler(lambda p: p)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda: ck.callback_handler(heartbeat_intervl=5),  # type: ignore[call-overload]
            "callback_handler() got an unexpected option 'heartbeat_intervl'; did you mean 'heartbeat_interval'?",
        ),
        (
            lambda: ck.process_event({}, None, lambda p: p, paylod_path="document"),
            "process_event() got an unexpected option 'paylod_path'; did you mean 'payload_path'?",
        ),
    ],
)
def test_a_misspelt_option_names_the_public_call_and_the_closest_option(call: Any, expected: str) -> None:
    # GIVEN / WHEN an option name with a typo
    with pytest.raises(TypeError) as raised:
        call()
    # THEN the error names the call the user wrote and suggests the option meant, not an internal class
    assert str(raised.value) == expected
    assert "HandlerOptions" not in str(raised.value)
