"""A handler's options over its life: the environment read at each invocation, and derived handlers for tests."""

from __future__ import annotations

from typing import Any

import pytest

import callback_kit as ck
from callback_kit.handler import ENV_HEARTBEAT_INTERVAL, ENV_MAX_CONCURRENCY
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, direct_event


def seen_interval(handler: ck.CallbackHandler[Any, Any], sfn: FakeStepFunctions) -> float | None:
    """The heartbeat interval the function saw in its task info when the handler ran once."""
    token = sfn.open_task()
    handler(direct_event(token, {}), FakeLambdaContext())
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[0] == "success", outcome
    value: float | None = outcome[1]["interval"]
    return value


def test_an_environment_variable_set_after_the_first_invocation_applies_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a handler without a heartbeat interval of its own, already run once with the variable unset
    monkeypatch.delenv(ENV_HEARTBEAT_INTERVAL, raising=False)
    sfn = FakeStepFunctions()
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(client=sfn)(
        lambda p: {"interval": ck.current_task().heartbeat_interval}
    )
    assert seen_interval(handler, sfn) == 30.0

    # WHEN the variable is set, then removed again
    monkeypatch.setenv(ENV_HEARTBEAT_INTERVAL, "0")
    after_set = seen_interval(handler, sfn)
    monkeypatch.delenv(ENV_HEARTBEAT_INTERVAL)
    after_unset = seen_interval(handler, sfn)

    # THEN each invocation follows the environment as it is then: off, then the default again
    assert after_set is None
    assert handler.options.heartbeat_interval == 30.0
    assert after_unset == 30.0


def test_an_option_given_in_code_wins_over_a_variable_set_later(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a handler with max_concurrency given, and a variable for it set after decoration
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(max_concurrency=4)(lambda p: p)
    monkeypatch.setenv(ENV_MAX_CONCURRENCY, "7")

    # WHEN its options are read / THEN the given value stands
    assert handler.options.max_concurrency == 4


def test_with_options_derives_a_handler_and_leaves_the_original_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a module-level handler with its own options
    monkeypatch.delenv(ENV_HEARTBEAT_INTERVAL, raising=False)

    @ck.callback_handler(heartbeat_interval=20, payload_path="order")
    def handler(order: dict[str, Any]) -> dict[str, Any]:
        return {"approved": order["total"] < 100}

    # WHEN a test derives one that talks to a fake, with heartbeats off
    fake = FakeStepFunctions()
    derived = handler.with_options(client=fake, heartbeat_interval=0)
    token = fake.open_task()
    derived(direct_event(token, {"order": {"total": 12}}), FakeLambdaContext())

    # THEN the derived handler keeps the other options and answers on the fake; the original is unchanged
    assert fake.outcome(token) == ("success", {"approved": True})
    assert derived.fn is handler.fn
    assert (derived.options.payload_path, derived.options.heartbeat_interval) == ("order", None)
    assert (handler.options.client, handler.options.heartbeat_interval) == (None, 20.0)


def test_with_options_checks_what_it_is_given() -> None:
    # GIVEN a handler
    handler: ck.CallbackHandler[Any, Any] = ck.callback_handler(lambda p: p)

    # WHEN an option is misspelt or bad / THEN it is refused as by the decorator
    misspelt = r"^with_options\(\) got an unexpected option 'clint'; did you mean 'client'\?$"
    with pytest.raises(TypeError, match=misspelt):
        handler.with_options(clint=None)
    with pytest.raises(ValueError, match="max_concurrency"):
        handler.with_options(max_concurrency=0)
