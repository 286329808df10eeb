"""A retried callback task gets a new token per attempt, as on AWS (moto reused the first token and its outcome)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callback_kit.simulator import LocalStepFunctions
from tests.simulator.strict_helpers import error_code, sqs_task, take_token

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def test_a_retry_after_a_failure_callback_waits_for_a_new_token(sim: LocalStepFunctions) -> None:
    # GIVEN a callback task retried once on the worker's error "Flaky"
    queue = sim.create_queue("retried")
    retry = [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    task = sqs_task(queue, timeout=10, Retry=retry)
    execution = sim.start_execution(sim.create_state_machine("retried", {"StartAt": "W", "States": {"W": task}}))

    # WHEN the first attempt is failed, and the second one is answered with the token its own message carries
    first = take_token(sim, queue)
    sim.sfn.send_task_failure(taskToken=first, error="Flaky", cause="try again")
    second = take_token(sim, queue)
    late = error_code(sim.sfn.send_task_success, taskToken=first, output='{"from": "first"}')
    sim.sfn.send_task_success(taskToken=second, output='{"from": "second"}')

    # THEN the attempts had different tokens, the first one is closed, and the second answer is the result
    # (moto alone: the same token twice, and the retry failed at once with the first attempt's outcome)
    assert first != second
    assert late == "TaskTimedOut"
    result = sim.wait_for_execution(execution, timeout=5)
    assert (result["status"], result["output"]) == ("SUCCEEDED", {"from": "second"})


def test_a_retry_after_a_heartbeat_timeout_gets_a_new_token(sim: LocalStepFunctions) -> None:
    # GIVEN a task with HeartbeatSeconds=1 retried once on States.Timeout
    queue = sim.create_queue("beat-retried")
    retry = [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 1, "MaxAttempts": 1}]
    task = sqs_task(queue, timeout=10, heartbeat=1, Retry=retry)
    execution = sim.start_execution(sim.create_state_machine("beat-retried", {"StartAt": "W", "States": {"W": task}}))

    # WHEN the first attempt is left to time out, and the second is answered
    first = take_token(sim, queue)
    second = take_token(sim, queue)
    sim.sfn.send_task_success(taskToken=second, output='{"attempt": 2}')

    # THEN the retry had its own token and the first one answers TaskTimedOut
    assert first != second
    assert error_code(sim.sfn.send_task_heartbeat, taskToken=first) == "TaskTimedOut"
    assert sim.wait_for_execution(execution, timeout=5)["output"] == {"attempt": 2}
