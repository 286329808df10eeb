"""Return values and exceptions mapped to what Step Functions accepts, within its limits."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callback_kit.exceptions import (
    ERROR_OUTPUT_NOT_SERIALIZABLE,
    ERROR_OUTPUT_TOO_LARGE,
    TaskFailed,
    validate_error_name,
)
from callback_kit.outcome import (
    MAX_CAUSE_CHARS,
    MAX_OUTPUT_BYTES,
    Failure,
    Success,
    encode_output,
    error_name,
    failure,
    from_exception,
    lambda_error_cause,
    safe_error_name,
    truncate_text,
)


class Receipt(pydantic.BaseModel):
    order_id: int
    at: datetime.date


@dataclasses.dataclass
class Point:
    x: int
    y: int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"ack": "success"}, {"ack": "success"}),
        ([1, "a", None], [1, "a", None]),
        ("text", "text"),
        (3, 3),
        (2.5, 2.5),
        (True, True),
        (None, None),
        (Receipt(order_id=1, at=datetime.date(2026, 1, 2)), {"order_id": 1, "at": "2026-01-02"}),
        (Point(1, 2), {"x": 1, "y": 2}),
        ({"nested": [Point(0, 0)]}, {"nested": [{"x": 0, "y": 0}]}),
        ((1, 2), [1, 2]),
        (float("nan"), None),
    ],
    ids=["dict", "list", "str", "int", "float", "bool", "none", "pydantic", "dataclass", "nested", "tuple", "nan"],
)
def test_return_values_become_json(value: Any, expected: Any) -> None:
    result = encode_output(value)
    assert isinstance(result, Success)
    assert json.loads(result.output) == expected


def test_output_at_the_limit_passes_and_one_byte_more_fails() -> None:
    # GIVEN a string whose JSON (with its two quotes) is exactly the limit
    exact = "a" * (MAX_OUTPUT_BYTES - 2)
    # THEN it is sent, and one more byte is a documented failure
    assert isinstance(encode_output(exact), Success)
    over = encode_output(exact + "a")
    assert isinstance(over, Failure)
    assert over.error == ERROR_OUTPUT_TOO_LARGE
    assert "262145 bytes" in json.loads(over.cause)["errorMessage"]


def test_limit_counts_utf8_bytes_not_characters() -> None:
    # 'é' is two bytes: half the limit in characters is already the whole limit in bytes
    result = encode_output("é" * (MAX_OUTPUT_BYTES // 2))
    assert isinstance(result, Failure)
    assert result.error == ERROR_OUTPUT_TOO_LARGE


@pytest.mark.parametrize(
    "value", [object(), {"f": lambda: 1}, "\ud800", b"\xff"], ids=["object", "fn", "surrogate", "bytes"]
)
def test_unserialisable_output_is_a_documented_failure(value: Any) -> None:
    result = encode_output(value)
    assert isinstance(result, Failure)
    assert result.error == ERROR_OUTPUT_NOT_SERIALIZABLE
    assert json.loads(result.cause)["errorType"] == ERROR_OUTPUT_NOT_SERIALIZABLE


def test_circular_output_is_a_failure_not_a_crash() -> None:
    loop: list[Any] = []
    loop.append(loop)
    result = encode_output(loop)
    assert isinstance(result, Failure)
    assert result.error == ERROR_OUTPUT_NOT_SERIALIZABLE


class OrderError(Exception):
    pass


class PaymentError(OrderError):
    pass


def test_error_names() -> None:
    assert error_name(ValueError("x")) == "ValueError"
    assert error_name(TaskFailed("x", error="Order.Invalid")) == "Order.Invalid"
    assert error_name(TaskFailed("x")) == "TaskFailed"
    # error_map is matched along the class hierarchy, nearest class first
    mapping: dict[type[BaseException], str] = {OrderError: "Order.Failed", PaymentError: "Payment.Declined"}
    assert error_name(PaymentError(), mapping) == "Payment.Declined"
    assert error_name(OrderError(), {OrderError: "Order.Failed"}) == "Order.Failed"
    assert error_name(PaymentError(), {OrderError: "Order.Failed"}) == "Order.Failed"
    # TaskFailed.error beats the map
    assert error_name(TaskFailed("x", error="Mine"), {TaskFailed: "Mapped"}) == "Mine"


def test_reserved_and_long_error_names() -> None:
    with pytest.raises(ValueError, match="reserved"):
        TaskFailed("x", error="States.Timeout")
    with pytest.raises(ValueError, match="256"):
        validate_error_name("E" * 257)
    assert safe_error_name("States.Timeout") == "Error.States.Timeout"
    assert len(safe_error_name("E" * 1000)) == 256


def test_exception_cause_follows_lambdas_convention() -> None:
    # GIVEN an exception raised with a traceback
    try:
        raise ValueError("bad order 7")
    except ValueError as exc:
        result = from_exception(exc)
    # THEN the cause is Lambda's errorMessage/errorType/stackTrace object
    cause = json.loads(result.cause)
    assert result.error == "ValueError"
    assert cause["errorMessage"] == "bad order 7"
    assert cause["errorType"] == "ValueError"
    assert any("test_exception_cause_follows_lambdas_convention" in frame for frame in cause["stackTrace"])


def test_task_failed_with_an_explicit_cause_uses_it_verbatim() -> None:
    result = from_exception(TaskFailed("msg", error="Order.Invalid", cause="total below zero"))
    assert result == Failure("Order.Invalid", "total below zero")
    huge = from_exception(TaskFailed("m", cause="é" * MAX_CAUSE_CHARS))
    assert len(huge.cause.encode()) <= MAX_CAUSE_CHARS


def test_huge_stack_is_cut_oldest_frames_first() -> None:
    frames = [f"frame {i} " + "x" * 500 for i in range(200)]
    cause = json.loads(lambda_error_cause("boom", "E", frames))
    assert cause["truncated"] is True
    assert cause["errorMessage"] == "boom"
    assert cause["stackTrace"][-1] == frames[-1], "the innermost frame is the one to keep"
    assert len(lambda_error_cause("boom", "E", frames)) <= MAX_CAUSE_CHARS


@settings(max_examples=150, deadline=None)
@given(message=st.text(min_size=0, max_size=80_000), error_type=st.text(max_size=400))
def test_any_exception_message_yields_a_valid_cause_within_limits(message: str, error_type: str) -> None:
    result = failure("X", message, error_type=error_type)
    assert len(result.cause) <= MAX_CAUSE_CHARS
    assert len(result.cause.encode("utf-8")) <= MAX_CAUSE_CHARS
    doc = json.loads(result.cause)
    assert message.startswith(doc["errorMessage"])


@settings(max_examples=60, deadline=None)
@given(
    unit=st.text(alphabet=st.sampled_from('"\\\n\x00é😀\ud800a'), min_size=1, max_size=50),
    repeat=st.integers(min_value=1_000, max_value=40_000),
)
def test_escaping_heavy_messages_are_cut_to_fit(unit: str, repeat: int) -> None:
    # Escapes make the JSON up to 6x (or 12x for astral characters) longer than the message itself.
    message = (unit * repeat)[:200_000]
    cause = lambda_error_cause(message, "E", ["frame\n"] * 10)
    assert len(cause) <= MAX_CAUSE_CHARS
    assert message.startswith(json.loads(cause)["errorMessage"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values, padding=st.integers(min_value=0, max_value=MAX_OUTPUT_BYTES + 10))
def test_any_output_yields_a_valid_call_within_limits(value: Any, padding: int) -> None:
    # GIVEN any JSON-like value, sometimes padded past the output limit
    result = encode_output({"v": value, "pad": "p" * padding})
    # THEN it is either a success whose output is valid JSON within the limit, or a documented failure
    if isinstance(result, Success):
        assert len(result.output.encode("utf-8")) <= MAX_OUTPUT_BYTES
        decoded = json.loads(result.output)
        assert decoded["pad"] == "p" * padding
    else:
        assert result.error in (ERROR_OUTPUT_TOO_LARGE, ERROR_OUTPUT_NOT_SERIALIZABLE)
        assert len(result.cause) <= MAX_CAUSE_CHARS
        json.loads(result.cause)


@given(st.text(max_size=200), st.integers(min_value=0, max_value=300))
def test_truncate_text_never_splits_a_character(text: str, limit: int) -> None:
    cut = truncate_text(text, limit)
    assert len(cut.encode("utf-8")) <= limit
    assert text.encode("utf-8", errors="replace").decode().startswith(cut)
