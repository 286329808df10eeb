"""The callback API as AWS answers it: heartbeats without HeartbeatSeconds, size limits, InvalidOutput, cause kept.

moto rejects heartbeats on tasks without HeartbeatSeconds (InvalidToken), enforces no size limit, accepts
output that is not JSON (then fails the execution States.Runtime) and drops the cause of SendTaskFailure.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from callback_kit.simulator import LocalStepFunctions
from callback_kit.simulator.callback_api import (
    MAX_CAUSE_CHARS,
    MAX_ERROR_CHARS,
    MAX_OUTPUT_BYTES,
    CallbackRejectedError,
    check_request,
)
from tests.simulator.strict_helpers import error_code, sqs_task, take_token


@pytest.fixture
def sim() -> Iterator[LocalStepFunctions]:
    with LocalStepFunctions() as simulator:
        yield simulator


def open_task(sim: LocalStepFunctions, name: str, **task: object) -> tuple[str, str]:
    """Start a one-task execution and return (execution ARN, token)."""
    queue = sim.create_queue(name)
    definition = {"StartAt": "W", "States": {"W": sqs_task(queue, **task)}}  # type: ignore[arg-type]
    execution = sim.start_execution(sim.create_state_machine(name, definition))
    return execution, take_token(sim, queue)


# -- the checks on their own ---------------------------------------------------------------------------------------


def code_of(**kwargs: object) -> str | None:
    try:
        check_request(**kwargs)  # type: ignore[arg-type]
    except CallbackRejectedError as rejected:
        return rejected.code
    return None


def test_output_is_limited_in_utf8_bytes_not_characters() -> None:
    # GIVEN outputs at the limit and one byte over it, the latter in two-byte characters (fewer chars than bytes)
    at_limit = json.dumps("x" * (MAX_OUTPUT_BYTES - 2))
    over_in_bytes = json.dumps("é" * (MAX_OUTPUT_BYTES // 2), ensure_ascii=False)

    # WHEN / THEN the first is accepted, the second refused although it has fewer characters than the limit
    assert len(at_limit.encode()) == MAX_OUTPUT_BYTES
    assert code_of(kind="success", token="t", output=at_limit) is None
    assert len(over_in_bytes) < MAX_OUTPUT_BYTES < len(over_in_bytes.encode())
    assert code_of(kind="success", token="t", output=over_in_bytes) == "ValidationException"


@pytest.mark.parametrize("output", ["not json", "{'single': 1}", "NaN", "", '{"a": 1} trailing'])
def test_output_that_is_not_json_is_invalid_output(output: str) -> None:
    # GIVEN / WHEN / THEN
    assert code_of(kind="success", token="t", output=output) == "InvalidOutput"


@pytest.mark.parametrize("output", ["42", '"text"', "null", "[1, 2]", '{"a": {"b": true}}'])
def test_any_json_value_is_valid_output(output: str) -> None:
    # GIVEN / WHEN / THEN
    assert code_of(kind="success", token="t", output=output) is None


def test_error_cause_and_token_lengths_are_limited() -> None:
    # GIVEN / WHEN / THEN fields at their limits pass, one character more is a ValidationException
    assert code_of(kind="failure", token="t", error="E" * MAX_ERROR_CHARS, cause="c" * MAX_CAUSE_CHARS) is None
    assert code_of(kind="failure", token="t", error="E" * (MAX_ERROR_CHARS + 1)) == "ValidationException"
    assert code_of(kind="failure", token="t", cause="c" * (MAX_CAUSE_CHARS + 1)) == "ValidationException"
    assert code_of(kind="heartbeat", token="t" * 2049) == "ValidationException"


# -- through the simulator -------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_heartbeats_on_a_task_without_heartbeat_seconds_are_accepted(sim: LocalStepFunctions) -> None:
    # GIVEN a waiting task without HeartbeatSeconds
    execution, token = open_task(sim, "no-heartbeat-seconds", timeout=10)

    # WHEN the worker beats (as callback-kit does for any long task), then answers
    sim.sfn.send_task_heartbeat(taskToken=token)
    sim.sfn.send_task_heartbeat(taskToken=token)
    sim.sfn.send_task_success(taskToken=token, output='{"done": true}')

    # THEN the beats were accepted (moto: InvalidToken) and the answer is the result
    assert sim.wait_for_execution(execution, timeout=3)["output"] == {"done": True}


@pytest.mark.e2e
def test_refused_callbacks_leave_the_task_open_for_a_valid_one(sim: LocalStepFunctions) -> None:
    # GIVEN a waiting task
    execution, token = open_task(sim, "refusals")

    # WHEN the worker sends what AWS refuses: non-JSON output, over-long output, error and cause
    codes = [
        error_code(sim.sfn.send_task_success, taskToken=token, output="{not json"),
        error_code(sim.sfn.send_task_success, taskToken=token, output=json.dumps("x" * MAX_OUTPUT_BYTES)),
        error_code(sim.sfn.send_task_failure, taskToken=token, error="E" * (MAX_ERROR_CHARS + 1)),
        error_code(sim.sfn.send_task_failure, taskToken=token, error="E", cause="c" * (MAX_CAUSE_CHARS + 1)),
    ]

    # THEN each was refused as AWS refuses it (moto: accepted), and the task still takes a valid answer
    assert codes == ["InvalidOutput", "ValidationException", "ValidationException", "ValidationException"]
    sim.sfn.send_task_success(taskToken=token, output='{"ok": 1}')
    assert sim.wait_for_execution(execution, timeout=3)["output"] == {"ok": 1}


@pytest.mark.e2e
def test_the_cause_reaches_the_execution_and_catch(sim: LocalStepFunctions) -> None:
    # GIVEN one execution that fails outright and one that catches the error into $.error
    queue = sim.create_queue("causes")
    catch = [{"ErrorEquals": ["Order.Invalid"], "ResultPath": "$.error", "Next": "Rejected"}]
    caught = {"StartAt": "W", "States": {"W": sqs_task(queue, Catch=catch), "Rejected": {"Type": "Pass", "End": True}}}
    uncaught = {"StartAt": "W", "States": {"W": sqs_task(queue)}}
    failing = sim.start_execution(sim.create_state_machine("uncaught", uncaught))
    tokens = [take_token(sim, queue)]
    catching = sim.start_execution(sim.create_state_machine("caught", caught))
    tokens.append(take_token(sim, queue))

    # WHEN the worker fails both tasks with an error and a cause
    for token in tokens:
        sim.sfn.send_task_failure(taskToken=token, error="Order.Invalid", cause="negative total")

    # THEN the cause is kept (moto: dropped) in the execution, its history and what Catch passes on
    failed = sim.wait_for_execution(failing, timeout=3)
    assert (failed["error"], failed.get("cause")) == ("Order.Invalid", "negative total")
    task_failed = next(e for e in sim.history(failing) if e["type"] == "TaskFailed")
    assert task_failed["taskFailedEventDetails"]["cause"] == "negative total"
    assert sim.wait_for_execution(catching, timeout=3)["output"]["error"] == {
        "Error": "Order.Invalid",
        "Cause": "negative total",
    }
