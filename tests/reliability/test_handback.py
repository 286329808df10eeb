"""RedeliverError: a task that only a later delivery can settle sends nothing and hands its message back."""

from __future__ import annotations

from typing import Any

import pytest

import callback_kit as ck
from callback_kit.exceptions import RedeliverError
from callback_kit.testing import FakeLambdaContext
from tests.reliability.harness import (
    LambdaSource,
    ScriptedStepFunctions,
    build_event,
    check_task_invariant,
    invoke,
    new_token,
    no_sleep_policy,
)


@pytest.mark.parametrize("source", ["sqs", "fifo", "eventbridge", "direct"])
def test_redeliver_error_sends_nothing_and_hands_the_message_back(source: LambdaSource) -> None:
    # GIVEN a function that cannot settle its task in this delivery (another invocation is running it, say)
    fake = ScriptedStepFunctions()
    token = new_token(fake)

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        raise RedeliverError("busy elsewhere")

    def handler(event: Any, context: Any) -> Any:
        return ck.process_event(event, context, work, client=fake, retry=no_sleep_policy(), heartbeat_interval=0)

    event, _ = build_event(source, [{"TaskToken": token}])

    # WHEN the event is handled, under a Lambda context so that the deadline guard watches too
    delivery = invoke(fake, handler, event, FakeLambdaContext())

    # THEN no callback was sent (not a failure: the task is not over) and the message goes back to its source
    assert delivery.calls == []
    if source in ("sqs", "fifo"):
        assert len(delivery.redelivered_ids) == 1
        assert delivery.raised is None
    else:
        assert isinstance(delivery.raised, ck.CallbackDeliveryError)
    assert check_task_invariant(fake, token, [delivery], [True]) == "redelivered"
