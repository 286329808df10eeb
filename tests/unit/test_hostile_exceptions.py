"""Exceptions that fight being read still fail their task once, and their cause is built in bounded memory."""

from __future__ import annotations

import json
import tracemalloc
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.outcome import MAX_CAUSE_CHARS, MAX_LISTED_MEMBERS, from_exception
from callback_kit.testing import FakeStepFunctions, direct_event


class Group(Exception):
    """An exception group on every supported Python (3.10 has no ExceptionGroup): members in ``.exceptions``."""

    def __init__(self, message: str, members: list[BaseException]) -> None:
        super().__init__(message)
        self.exceptions = tuple(members)


class MembersRaise(Exception):
    @property
    def exceptions(self) -> tuple[BaseException, ...]:
        raise RuntimeError("no members for you")


def _answer(error: BaseException) -> tuple[list[str], Any]:
    """Run a function that raises ``error``; the completion calls it led to, and the task's outcome."""
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    def fn(payload: dict[str, Any]) -> None:
        raise error

    ck.process_event(direct_event(token, {"n": 1}), None, fn, client=sfn, heartbeat_interval=0)
    return [c.api for c in sfn.calls_for(token)], sfn.outcome(token)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (ck.TaskFailed("bad order", error="Order.Invalid", cause={"sku": 7}), {"sku": 7}),  # type: ignore[arg-type]
        (ck.TaskFailed({"sku": 7}, error="Order.Invalid"), {"sku": 7}),  # type: ignore[arg-type]
    ],
    ids=["cause-dict", "message-dict"],
)
def test_a_task_failed_with_a_non_string_cause_is_sent_once_as_json(error: ck.TaskFailed, cause: Any) -> None:
    # GIVEN a function that fails its task with a cause (or message) that is an object, not text
    # WHEN it runs
    calls, outcome = _answer(error)

    # THEN exactly one SendTaskFailure was sent, carrying the object as JSON text (the fake decodes it)
    assert calls == ["SendTaskFailure"]
    assert outcome == ("failure", "Order.Invalid", cause)


def test_an_exception_whose_members_raise_is_answered_once() -> None:
    # GIVEN a function raising an exception whose .exceptions property raises
    # WHEN it runs
    calls, outcome = _answer(MembersRaise("broken group"))

    # THEN one SendTaskFailure, named after its class, and the members are left out of the cause
    assert calls == ["SendTaskFailure"]
    assert outcome[:2] == ("failure", "MembersRaise")
    assert "exceptions" not in outcome[2]


def test_a_cause_that_cannot_be_read_at_all_still_gives_a_failure() -> None:
    # GIVEN a TaskFailed whose cause cannot be turned into JSON or text
    class Unreadable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    # WHEN it is mapped / THEN a failure with a stand-in cause, not an exception
    failure = from_exception(ck.TaskFailed("x", cause=Unreadable()))  # type: ignore[arg-type]
    assert failure.error == "TaskFailed"
    assert "Unreadable" in failure.cause


def _shared_groups(message_chars: int = 100) -> Group:
    """Five objects: a leaf, and four groups each holding the one below twenty times."""
    node: BaseException = ValueError("x" * message_chars)
    for level in range(4):
        node = Group(f"level {level}", [node] * 20)
    assert isinstance(node, Group)
    return node


def test_nested_groups_sharing_members_build_their_cause_in_bounded_memory() -> None:
    # GIVEN a nested group in which every level holds the same member twenty times (160,000 paths, 5 objects)
    group = _shared_groups()

    # WHEN its failure is built, under tracemalloc
    tracemalloc.start()
    try:
        failure = from_exception(group)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN the memory is bounded (a few MiB, not hundreds), the cause fits, and each group is listed once
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert len(failure.cause) <= MAX_CAUSE_CHARS
    doc = json.loads(failure.cause)
    listed = _count(doc.get("exceptions", []))
    assert 0 < listed <= MAX_LISTED_MEMBERS
    assert doc["exceptions"][1]["repeated"] is True


def _count(items: list[dict[str, Any]]) -> int:
    return sum(1 + _count(item.get("exceptions", [])) for item in items)
