"""ck.durable_task_handler on AWS's local durable runner: one answer per task, whatever the replays."""

from __future__ import annotations

import sys

import pytest

if sys.version_info < (3, 11):
    pytest.skip(
        "the Lambda durable execution SDK and its local runner install on Python 3.11 and later only",
        allow_module_level=True,
    )

import json
from typing import Any

import pydantic
from aws_durable_execution_sdk_python import DurableContext, StepError, durable_execution
from aws_durable_execution_sdk_python.config import Duration, StepConfig
from aws_durable_execution_sdk_python.lambda_service import InvocationStatus
from aws_durable_execution_sdk_python.retries import RetryDecision

import callback_kit as ck
from callback_kit.durable_task import ANSWER_STEP_SUB_TYPE
from callback_kit.logs import fingerprint
from callback_kit.testing import FakeStepFunctions
from tests.durable_task.helpers import Body, answer_steps, no_sleep, result_json, run, started
from tests.reliability.harness import captured_logs

SDK_LOGGERS = ("aws_durable_execution_sdk_python", "aws_durable_execution_sdk_python_testing")


def _no_retry(_error: Exception, _attempts: int) -> RetryDecision:
    return RetryDecision.no_retry()


def test_a_body_replayed_through_waits_and_callbacks_answers_its_task_once() -> None:
    # GIVEN a durable function that waits, waits for two callbacks and waits again: its body is replayed on each
    # resume, and each replay reaches the end only once the last wait is over
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    body = Body()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def approve(order: dict[str, Any], context: DurableContext) -> dict[str, Any]:
        body.runs += 1
        context.wait(Duration.from_hours(1), name="cool-off")
        first = context.wait_for_callback(lambda _id, _ctx: None, name="manager")
        second = context.wait_for_callback(lambda _id, _ctx: None, name="finance")
        context.wait(Duration.from_seconds(30), name="settle")
        return {"order": order["id"], "approvals": [json.loads(first), json.loads(second)]}

    # WHEN the state machine's payload starts it and both callbacks are answered
    with started(approve, {"TaskToken": token, "id": "o-1"}) as (runner, arn):
        for name, answer in (("manager", "yes"), ("finance", "ok")):
            # The SDK names a wait_for_callback's callback after the operation.
            callback_id = runner.wait_for_callback(arn, name=f"{name} create callback id", timeout=10)
            runner.send_callback_success(callback_id, json.dumps(answer).encode())
        result = runner.wait_for_result(arn, timeout=30)

    # THEN the body ran several times, the task got one SendTaskSuccess with the function's output, and that
    # output is the execution's result
    expected = {"order": "o-1", "approvals": ["yes", "ok"]}
    assert body.runs >= 4
    assert result.status is InvocationStatus.SUCCEEDED
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskSuccess"]
    assert sfn.outcome(token) == ("success", expected)
    assert result_json(result) == expected
    [step] = answer_steps(result)
    assert step.sub_type == ANSWER_STEP_SUB_TYPE
    assert json.loads(step.result or "null") == "delivered"


def test_an_uncaught_exception_fails_the_task_once_and_the_execution_with_it() -> None:
    # GIVEN a durable function that waits, then refuses the order with a chosen error name
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def check(order: dict[str, Any], context: DurableContext) -> None:
        context.wait(Duration.from_minutes(5))
        raise ck.TaskFailed("negative total", error="Order.Invalid")

    # WHEN it runs to its end
    result = run(check, {"taskToken": token, "total": -1})

    # THEN the task failed once with that error and cause, and the execution failed with the same exception
    assert sfn.outcome(token) == ("failure", "Order.Invalid", "negative total")
    assert [c.api for c in sfn.calls_for(token)] == ["SendTaskFailure"]
    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert result.error.message == "negative total"
    assert len(answer_steps(result)) == 1


def test_a_failed_step_is_named_through_the_error_map() -> None:
    # GIVEN a function whose step fails for good, and an error_map that names the SDK's StepError
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn, error_map={StepError: "Order.LookupFailed"})
    def look_up(_order: dict[str, Any], context: DurableContext) -> None:
        def fetch(_step: Any) -> None:
            raise LookupError("no such order")

        context.step(fetch, name="fetch", config=StepConfig(retry_strategy=_no_retry))

    # WHEN it runs
    run(look_up, {"TaskToken": token})

    # THEN the task failed under the mapped name, the step's message in its cause
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", "Order.LookupFailed")
    assert outcome[2]["errorMessage"] == "no such order"


def test_the_function_never_sees_the_token_and_no_log_line_holds_it(capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN a payload holding the token twice (as TASK_TOKEN and in the whole context object) and a function
    # that logs through the SDK's logger and fails after a wait, with every logger at DEBUG
    sfn = FakeStepFunctions()
    token = sfn.open_task("AQCSECRET" + "k3y" * 200 + "END")
    body = Body()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def work(payload: dict[str, Any], context: DurableContext) -> None:
        body.payloads.append(payload)
        context.logger.info("working on %s", payload)
        context.wait(Duration.from_seconds(10))
        raise ValueError(f"cannot do {payload}")

    # WHEN it runs
    with captured_logs("", *SDK_LOGGERS) as logs:
        run(work, {"TASK_TOKEN": token, "context": {"Task": {"Token": token}}, "item": 7})

    # THEN every payload the function got lacks both copies, and neither the captured records nor the printed
    # lines hold the token or a piece of it
    assert body.payloads
    assert all(p == {"context": {"Task": {}}, "item": 7} for p in body.payloads)
    assert sfn.outcome(token) is not None
    assert sfn.outcome(token)[:2] == ("failure", "ValueError")
    printed = "".join(capfd.readouterr())
    logged = "\n".join(logs.lines)
    assert fingerprint(token) in logged  # the answer's own line, which names the task by its fingerprint
    for probe in (token, *(token[i : i + 24] for i in range(0, len(token) - 24, 97))):
        assert probe not in printed
        assert probe not in logged


def test_a_task_already_closed_is_acknowledged_with_no_second_call() -> None:
    # GIVEN a task that timed out while the function waited
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def slow(_payload: dict[str, Any], context: DurableContext) -> str:
        context.wait(Duration.from_days(2))
        sfn.close_task(token)  # Step Functions' TimeoutSeconds ran out meanwhile
        return "done"

    # WHEN the function ends
    result = run(slow, {"TaskToken": token})

    # THEN the one SendTaskSuccess was answered TaskTimedOut, taken as "already closed", and not retried
    assert [(c.api, c.result) for c in sfn.calls_for(token)] == [("SendTaskSuccess", "TaskTimedOut")]
    assert result.status is InvocationStatus.SUCCEEDED
    [step] = answer_steps(result)
    assert json.loads(step.result or "null") == "already_closed"


def test_an_answer_that_landed_before_its_response_was_lost_is_not_sent_twice() -> None:
    # GIVEN a SendTaskSuccess that Step Functions carries out but whose response is lost (a 500 after the fact)
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", "InternalFailure", landed=True)

    @durable_execution
    @ck.durable_task_handler(client=sfn, retry=no_sleep())
    def quick(_payload: dict[str, Any], _context: DurableContext) -> int:
        return 42

    # WHEN the function ends
    result = run(quick, {"TaskToken": token})

    # THEN the retry found the task closed and took it as delivered: the first answer stands, alone
    assert sfn.outcome(token) == ("success", 42)
    assert [c.result for c in sfn.calls_for(token)] == ["InternalFailure", "TaskTimedOut"]
    assert json.loads(answer_steps(result)[0].result or "null") == "delivered"


def test_a_delivery_that_outlasts_its_invocation_is_retried_by_the_step_and_lands_once() -> None:
    # GIVEN a Step Functions that fails every SendTaskSuccess of the first invocation's three attempts
    sfn = FakeStepFunctions()
    token = sfn.open_task()
    sfn.inject("SendTaskSuccess", "ServiceUnavailable", times=3)
    body = Body()

    @durable_execution
    @ck.durable_task_handler(client=sfn, retry=no_sleep())
    def quick(_payload: dict[str, Any], _context: DurableContext) -> str:
        body.runs += 1
        return "ok"

    # WHEN the function ends
    result = run(quick, {"TaskToken": token})

    # THEN the answer step was retried in a later invocation (the body replayed), and one answer landed
    assert result.status is InvocationStatus.SUCCEEDED
    assert sfn.outcome(token) == ("success", "ok")
    assert [c.result for c in sfn.calls_for(token)] == ["ServiceUnavailable"] * 3 + ["ok"]
    assert body.runs == 2
    [step] = answer_steps(result)
    assert step.attempt >= 1


def test_a_token_step_functions_never_issued_fails_the_execution_without_retrying() -> None:
    # GIVEN a payload whose "token" Step Functions does not know (a business field, a quoted copy...)
    sfn = FakeStepFunctions()

    @durable_execution
    @ck.durable_task_handler(client=sfn, retry=no_sleep())
    def quick(_payload: dict[str, Any], _context: DurableContext) -> str:
        return "ok"

    # WHEN the function ends
    result = run(quick, {"TaskToken": "not-a-real-token"})

    # THEN the one call got InvalidToken, the step was not retried, and the execution failed, saying so
    assert [c.result for c in sfn.calls] == ["InvalidToken"]
    assert result.status is InvocationStatus.FAILED
    [step] = answer_steps(result)
    assert step.error is not None
    assert "InvalidTokenError" in (step.error.type or "")


def test_a_payload_without_a_token_fails_the_execution_before_the_function_runs() -> None:
    # GIVEN a durable task handler invoked without a task token
    sfn = FakeStepFunctions()
    body = Body()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def quick(_payload: dict[str, Any], _context: DurableContext) -> str:
        body.runs += 1
        return "ok"

    # WHEN it runs
    result = run(quick, {"order": 1})

    # THEN nothing was called or sent, and the execution failed with MissingTokenError
    assert body.runs == 0
    assert sfn.calls == []
    assert result.status is InvocationStatus.FAILED
    assert result.error is not None
    assert "MissingTokenError" in (result.error.type or "")


def test_token_path_names_where_the_token_is() -> None:
    # GIVEN a token under a key of the state machine's choosing
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn, token_path="meta.cb")
    def echo(payload: dict[str, Any], _context: DurableContext) -> dict[str, Any]:
        return payload

    # WHEN it runs
    run(echo, {"meta": {"cb": token, "n": 1}})

    # THEN it was found there and taken out
    assert sfn.outcome(token) == ("success", {"meta": {"n": 1}})


class Receipt(pydantic.BaseModel):
    order: str
    total: float


def test_a_model_returned_is_sent_as_json_and_is_the_execution_result() -> None:
    # GIVEN a function returning a pydantic model, which json.dumps (the SDK's serializer) cannot write
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def receipt(_payload: dict[str, Any], _context: DurableContext) -> Receipt:
        return Receipt(order="o-1", total=9.5)

    # WHEN it runs
    result = run(receipt, {"TaskToken": token})

    # THEN the task and the execution both have the model's JSON
    assert sfn.outcome(token) == ("success", {"order": "o-1", "total": 9.5})
    assert result.status is InvocationStatus.SUCCEEDED
    assert result_json(result) == {"order": "o-1", "total": 9.5}


def test_an_output_that_cannot_be_sent_fails_the_task_and_the_execution() -> None:
    # GIVEN a function that returns something with no JSON form
    sfn = FakeStepFunctions()
    token = sfn.open_task()

    @durable_execution
    @ck.durable_task_handler(client=sfn)
    def odd(_payload: dict[str, Any], _context: DurableContext) -> object:
        return object()

    # WHEN it runs
    result = run(odd, {"TaskToken": token})

    # THEN the task failed with the documented name, and so did the execution
    outcome = sfn.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", "CallbackKit.OutputNotSerializable")
    assert result.status is InvocationStatus.FAILED


def test_the_decorators_in_the_wrong_order_are_refused_with_the_fix() -> None:
    # GIVEN the durable task handler put above @durable_execution, so that it gets Lambda's own arguments
    @ck.durable_task_handler(client=FakeStepFunctions())
    def handler(_payload: dict[str, Any], _context: Any) -> None:
        return None

    # WHEN Lambda calls it / THEN the error says which way round they go
    with pytest.raises(TypeError, match="@durable_execution above"):
        handler({"DurableExecutionArn": "arn", "CheckpointToken": "c"}, object())
