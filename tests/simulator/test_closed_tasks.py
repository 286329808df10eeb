"""Closed tasks answer TaskTimedOut as on AWS; tokens never issued answer InvalidToken.

moto answers InvalidToken for a closed task's token once the execution has ended, and accepts (200, ignored) a
second callback while it still runs; AWS answers TaskTimedOut to both. callback-kit reads InvalidToken as "this
is not a token" (hand the message back to the DLQ), so the simulator must say what AWS says.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from callback_kit.simulator import CallbackCall, LocalStepFunctions
from tests.simulator.strict_helpers import error_code, sqs_task, take_token, wait_for_status

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def test_callbacks_on_an_answered_task_answer_task_timed_out_while_the_execution_runs(sim: LocalStepFunctions) -> None:
    # GIVEN a task answered once, and the execution moved on to a second task that is still waiting
    first, second = sim.create_queue("first"), sim.create_queue("second")
    definition = {
        "StartAt": "One",
        "States": {"One": sqs_task(first, Next="Two"), "Two": sqs_task(second, timeout=30)},
    }
    execution = sim.start_execution(sim.create_state_machine("two-tasks", definition))
    token = take_token(sim, first)
    sim.sfn.send_task_success(taskToken=token, output='{"n": 1}')
    take_token(sim, second)
    callbacks: list[CallbackCall] = []
    sim.on_callback(callbacks.append)

    # WHEN every callback API is called again with the first task's token
    codes = [
        error_code(sim.sfn.send_task_success, taskToken=token, output='{"n": 2}'),
        error_code(sim.sfn.send_task_failure, taskToken=token, error="Late"),
        error_code(sim.sfn.send_task_heartbeat, taskToken=token),
    ]

    # THEN each one is TaskTimedOut (moto: 200 and ignored), observers see it, and the first answer stands
    assert codes == ["TaskTimedOut"] * 3
    assert [c.rejected for c in callbacks] == ["TaskTimedOut"] * 3
    assert sim.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    sim.sfn.stop_execution(executionArn=execution)


def test_callbacks_after_the_execution_ended_answer_task_timed_out(sim: LocalStepFunctions) -> None:
    # GIVEN an execution whose only task was answered, so the execution SUCCEEDED
    queue = sim.create_queue("done")
    arn = sim.create_state_machine("done", {"StartAt": "W", "States": {"W": sqs_task(queue)}})
    execution = sim.start_execution(arn)
    token = take_token(sim, queue)
    sim.sfn.send_task_success(taskToken=token, output="{}")
    assert sim.wait_for_execution(execution, timeout=3)["status"] == "SUCCEEDED"

    # WHEN the token is used again / THEN TaskTimedOut (moto: InvalidToken)
    assert error_code(sim.sfn.send_task_success, taskToken=token, output="{}") == "TaskTimedOut"
    assert error_code(sim.sfn.send_task_heartbeat, taskToken=token) == "TaskTimedOut"


def test_a_timed_out_task_answers_task_timed_out_even_when_catch_keeps_the_execution_running(
    sim: LocalStepFunctions,
) -> None:
    # GIVEN a task that times out after 1 s and a Catch that sends the execution on to a second, waiting task
    first, second = sim.create_queue("slow"), sim.create_queue("fallback")
    catch = [{"ErrorEquals": ["States.Timeout"], "Next": "Fallback"}]
    definition = {
        "StartAt": "Slow",
        "States": {"Slow": sqs_task(first, timeout=1, Catch=catch), "Fallback": sqs_task(second, timeout=30)},
    }
    execution = sim.start_execution(sim.create_state_machine("timeout-caught", definition))
    token = take_token(sim, first)

    # WHEN the worker answers after the timeout, while the execution still runs
    take_token(sim, second)
    code = error_code(sim.sfn.send_task_success, taskToken=token, output="{}")

    # THEN TaskTimedOut (moto: 200, and the answer is lost)
    assert code == "TaskTimedOut"
    assert sim.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    sim.sfn.stop_execution(executionArn=execution)


def test_a_stopped_execution_answers_task_timed_out(sim: LocalStepFunctions) -> None:
    # GIVEN a waiting task whose execution is stopped
    queue = sim.create_queue("stopped")
    execution = sim.start_execution(
        sim.create_state_machine("stopped", {"StartAt": "W", "States": {"W": sqs_task(queue, timeout=30)}})
    )
    token = take_token(sim, queue)
    sim.sfn.stop_execution(executionArn=execution)
    wait_for_status(sim, execution, "ABORTED")

    # WHEN / THEN the worker's answer is TaskTimedOut
    assert error_code(sim.sfn.send_task_failure, taskToken=token, error="Late") == "TaskTimedOut"


def test_a_token_that_was_never_issued_answers_invalid_token(sim: LocalStepFunctions) -> None:
    # GIVEN a running simulator with an open task (so the ledger is not empty)
    queue = sim.create_queue("open")
    execution = sim.start_execution(
        sim.create_state_machine("open", {"StartAt": "W", "States": {"W": sqs_task(queue, timeout=30)}})
    )
    token = take_token(sim, queue)

    # WHEN strings that are not that token are used: quoted, truncated, made up
    codes = {
        error_code(sim.sfn.send_task_success, taskToken=f'"{token}"', output="{}"),
        error_code(sim.sfn.send_task_failure, taskToken=token[:-1], error="E"),
        error_code(sim.sfn.send_task_heartbeat, taskToken="not-a-token"),
    }

    # THEN InvalidToken, and the real task is still open
    assert codes == {"InvalidToken"}
    sim.sfn.send_task_success(taskToken=token, output='{"ok": true}')
    assert sim.wait_for_execution(execution, timeout=3)["output"] == {"ok": True}
