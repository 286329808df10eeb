"""A callback that lands while the task is still being set up is never lost (a race in moto 5.2.5's interpreter).

moto sets up a task's heartbeat endpoint only after the worker was invoked (the SQS message sent, the Lambda
called), then waits on that endpoint alone. A worker fast enough to answer in between had its SendTaskSuccess
accepted (200) and lost: the task failed States.Timeout at HeartbeatSeconds. Under CPU load this hung real
end-to-end tests. These tests force the window deterministically by answering from inside moto's own
SQS send, before moto's task code gets control back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from callback_kit.simulator import CallbackCall, LocalStepFunctions
from tests.simulator.strict_helpers import sqs_task

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def answer_inside_the_send(sim: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch, *, beat: bool) -> None:
    """Make moto's SQS send answer the token it carries before returning to the state machine."""
    from moto.sqs.models import sqs_backends

    backend = sqs_backends[sim.account_id][sim.region]
    original = backend.send_message

    def send_message(queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        message = original(queue_name, message_body, *args, **kwargs)
        token = json.loads(message_body)["TaskToken"]
        if beat:
            sim.sfn.send_task_heartbeat(taskToken=token)
        sim.sfn.send_task_success(taskToken=token, output='{"fast": true}')
        return message

    monkeypatch.setattr(backend, "send_message", send_message)


def test_a_success_sent_before_the_task_waits_is_the_task_result(
    sim: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a task with HeartbeatSeconds whose worker answers before moto's task code has set up its wait
    queue = sim.create_queue("fast")
    answer_inside_the_send(sim, monkeypatch, beat=False)
    arn = sim.create_state_machine("fast", {"StartAt": "W", "States": {"W": sqs_task(queue, heartbeat=1, timeout=5)}})
    callbacks: list[CallbackCall] = []
    sim.on_callback(callbacks.append)

    # WHEN it runs (no pump needed: the answer is given inside the send)
    result = sim.wait_for_execution(sim.start_execution(arn), timeout=4)

    # THEN the answer was accepted and is the task's result (moto alone: States.Timeout after 1 s)
    assert [(c.kind, c.rejected) for c in callbacks] == [("success", None)]
    assert result["status"] == "SUCCEEDED"
    assert result["output"] == {"fast": True}


def test_a_heartbeat_sent_before_the_task_waits_is_accepted(
    sim: LocalStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a worker that beats and then answers, both inside the send
    queue = sim.create_queue("beat-fast")
    answer_inside_the_send(sim, monkeypatch, beat=True)
    arn = sim.create_state_machine("beat", {"StartAt": "W", "States": {"W": sqs_task(queue, heartbeat=1, timeout=5)}})
    callbacks: list[CallbackCall] = []
    sim.on_callback(callbacks.append)

    # WHEN it runs
    result = sim.wait_for_execution(sim.start_execution(arn), timeout=4)

    # THEN both were accepted (moto alone: the heartbeat is refused InvalidToken, the success lost)
    assert [(c.kind, c.rejected) for c in callbacks] == [("heartbeat", None), ("success", None)]
    assert result["status"] == "SUCCEEDED"
