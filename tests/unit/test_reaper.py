"""The ECS stranded-token reaper on the in-memory Step Functions, fed the events/ files (AWS's documented shape)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callback_kit import reaper
from callback_kit.exceptions import (
    ERROR_CONTAINER_STOPPED,
    CallbackDeliveryError,
    InvalidTokenError,
    MalformedEventError,
    MissingTokenError,
)
from callback_kit.logs import fingerprint
from callback_kit.outcome import MAX_CAUSE_CHARS
from callback_kit.task.completion import Completer
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions
from tests.reliability.harness import ListHandler, captured_logs, no_sleep_policy

EVENTS = Path(__file__).resolve().parents[2] / "events"
#: A token that could not appear in a log line by accident, with the characters real ones have.
SECRET = "AQCSECRET+" + "r3ap/" * 120 + "=="


def load_event(name: str, token: str | None = SECRET, *, variable: str = "TASK_TOKEN") -> dict[str, Any]:
    """``events/<name>.json`` with its fake token replaced by ``token`` (``None``: the variable removed)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    for override in event["detail"]["overrides"]["containerOverrides"]:
        env = override["environment"]
        for entry in env:
            if entry["value"].startswith("FAKE-TASK-TOKEN-"):
                entry["value"] = token
                entry["name"] = variable
        override["environment"] = [e for e in env if e["value"] is not None]
    return event


@pytest.fixture
def sfn() -> FakeStepFunctions:
    fake = FakeStepFunctions()
    fake.open_task(SECRET)
    return fake


@pytest.fixture
def debug_logs() -> Iterator[ListHandler]:
    with captured_logs("", "botocore", "aws_lambda_powertools") as handler:
        yield handler


def handle(sfn: FakeStepFunctions, event: dict[str, Any], **options: Any) -> dict[str, str]:
    options.setdefault("retry", no_sleep_policy())
    return reaper.make_handler(client=sfn, **options)(event, FakeLambdaContext(remaining_ms=30_000))


def sent_causes(sfn: FakeStepFunctions) -> list[str]:
    """The causes of the delivered failures, as sent (the fake's ``failures()`` decodes JSON ones)."""
    return [c.params["cause"] for c in sfn.calls if c.api == "SendTaskFailure" and c.result == "ok"]


# -- what it answers ----------------------------------------------------------------------------------------------
def test_a_task_that_never_started_is_failed_with_the_stop_reason(sfn: FakeStepFunctions) -> None:
    # GIVEN a STOPPED event whose image could not be pulled (TaskFailedToStart), carrying an open task's token
    event = load_event("ecs_task_failed_to_start")
    # WHEN the reaper handles it
    result = handle(sfn, event)
    # THEN the task is failed with CallbackKit.ContainerStopped, its cause naming the stop code and reason
    assert result == {"result": "failed"}
    kind, error, cause = sfn.outcome(SECRET) or ()
    assert (kind, error) == ("failure", ERROR_CONTAINER_STOPPED)
    message = cause["errorMessage"]
    assert "stopCode TaskFailedToStart" in message
    assert "CannotPullContainerError" in message
    assert "container report: no exitCode" in message
    assert event["detail"]["taskArn"] in message


def test_a_container_killed_without_answering_is_failed_with_its_exit_code(sfn: FakeStepFunctions) -> None:
    # GIVEN a container OOM-killed (exit 137) before `callback-kit run` could answer
    event = load_event("ecs_task_out_of_memory")
    # WHEN the reaper handles the STOPPED event
    result = handle(sfn, event)
    # THEN the task is failed, and the cause names the exit code and the container's reason
    assert result == {"result": "failed"}
    (error, cause) = sfn.failures()[0]
    assert error == ERROR_CONTAINER_STOPPED
    message = cause["errorMessage"]
    assert "stopCode EssentialContainerExited" in message
    assert "container report: exitCode 137, reason: OutOfMemoryError" in message


def test_a_task_answered_before_its_container_exited_is_left_alone(sfn: FakeStepFunctions) -> None:
    # GIVEN a container that answered its task and then exited 0
    sfn.send_task_success(taskToken=SECRET, output='{"rows": 12}')
    event = load_event("ecs_task_exited_0")
    # WHEN the reaper handles the STOPPED event (Step Functions answers TaskTimedOut)
    result = handle(sfn, event)
    # THEN it returns normally (no Lambda retry), and the success stands
    assert result == {"result": "already_answered"}
    assert sfn.outcome(SECRET) == ("success", {"rows": 12})
    assert [c.result for c in sfn.calls_for(SECRET, "SendTaskFailure")] == ["TaskTimedOut"]


def test_a_task_closed_otherwise_is_left_alone_too(sfn: FakeStepFunctions) -> None:
    # GIVEN a task Step Functions no longer knows (TaskDoesNotExist: its execution was deleted)
    sfn.inject("SendTaskFailure", "TaskDoesNotExist")
    # WHEN the reaper handles the STOPPED event  THEN it returns normally
    assert handle(sfn, load_event("ecs_task_out_of_memory")) == {"result": "already_answered"}


@pytest.mark.parametrize("status", ["PROVISIONING", "PENDING", "RUNNING", "DEPROVISIONING"])
def test_a_task_not_stopped_is_ignored(sfn: FakeStepFunctions, status: str) -> None:
    # GIVEN a task whose container may still answer
    event = load_event("ecs_task_running")
    event["detail"]["lastStatus"] = status
    # WHEN the reaper handles it  THEN nothing is sent
    assert handle(sfn, event) == {"result": "not_stopped"}
    assert sfn.calls == []


def test_a_task_without_the_token_variable_is_ignored(sfn: FakeStepFunctions) -> None:
    # GIVEN a stopped task of the cluster that no callback task started (no TASK_TOKEN in its overrides)
    event = load_event("ecs_task_out_of_memory", token=None)
    # WHEN the reaper handles it  THEN nothing is sent
    assert handle(sfn, event) == {"result": "no_token"}
    # AND neither is anything for a task with no overrides at all
    del event["detail"]["overrides"]
    assert handle(sfn, event) == {"result": "no_token"}
    assert sfn.calls == []


def test_a_custom_token_env(sfn: FakeStepFunctions) -> None:
    # GIVEN a state machine that puts the token in JOB_TOKEN (callback-kit run --token-env JOB_TOKEN)
    event = load_event("ecs_task_job_token", variable="JOB_TOKEN")
    # WHEN the default reaper handles it  THEN it finds no TASK_TOKEN and sends nothing
    assert handle(sfn, event) == {"result": "no_token"}
    # WHEN one made with token_env="JOB_TOKEN" does  THEN the task is failed
    assert handle(sfn, event, token_env="JOB_TOKEN") == {"result": "failed"}
    assert (sfn.outcome(SECRET) or ())[1] == ERROR_CONTAINER_STOPPED


def test_the_module_handler_reads_the_token_variable_from_the_environment(
    sfn: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the module-level handler, configured by $CALLBACK_KIT_TOKEN_ENV, on callback-kit's default client
    monkeypatch.setattr("callback_kit.task.clients.default_client", lambda: sfn)
    monkeypatch.setattr(reaper, "_configured", None)
    monkeypatch.setenv(reaper.ENV_TOKEN_ENV, "JOB_TOKEN")
    # WHEN it handles a stopped task whose token is in JOB_TOKEN
    result = reaper.handler(load_event("ecs_task_job_token", variable="JOB_TOKEN"), FakeLambdaContext())
    # THEN the task is failed
    assert result == {"result": "failed"}
    assert (sfn.outcome(SECRET) or ())[1] == ERROR_CONTAINER_STOPPED


def test_the_same_token_in_two_containers_is_answered_once(sfn: FakeStepFunctions) -> None:
    # GIVEN the token passed to the job and to a sidecar
    event = load_event("ecs_task_out_of_memory")
    overrides = event["detail"]["overrides"]["containerOverrides"]
    overrides.append({"name": "sidecar", "environment": copy.deepcopy(overrides[0]["environment"])})
    # WHEN the reaper handles the event  THEN one SendTaskFailure is sent
    assert handle(sfn, event) == {"result": "failed"}
    assert len(sfn.calls_for(SECRET, "SendTaskFailure")) == 1


# -- how it answers: the library's answering path -----------------------------------------------------------------
def test_throttling_is_retried_as_for_every_answer(sfn: FakeStepFunctions) -> None:
    # GIVEN Step Functions throttling the first two calls
    sfn.inject("SendTaskFailure", "ThrottlingException", times=2)
    # WHEN the reaper handles a stopped task  THEN the third attempt delivers the failure
    assert handle(sfn, load_event("ecs_task_out_of_memory")) == {"result": "failed"}
    assert [c.result for c in sfn.calls_for(SECRET)] == ["ThrottlingException", "ThrottlingException", "ok"]


def test_an_undeliverable_answer_raises_so_that_lambda_retries(sfn: FakeStepFunctions) -> None:
    # GIVEN Step Functions failing every attempt
    sfn.inject("SendTaskFailure", "InternalFailure", times=100)
    # WHEN the reaper handles a stopped task  THEN it raises: Lambda retries, then the on-failure destination
    with pytest.raises(CallbackDeliveryError):
        handle(sfn, load_event("ecs_task_out_of_memory"))


def test_an_invalid_token_is_not_taken_for_an_answered_task() -> None:
    # GIVEN a token Step Functions never issued (InvalidToken: the real task may still wait)
    sfn = FakeStepFunctions()
    # WHEN the reaper handles the stopped task  THEN it raises, so that the event ends in the DLQ
    with pytest.raises(InvalidTokenError):
        handle(sfn, load_event("ecs_task_out_of_memory"))


def test_an_over_long_token_is_refused_without_a_call(sfn: FakeStepFunctions) -> None:
    # GIVEN a variable holding more than Step Functions' 2,048 characters
    with pytest.raises(MissingTokenError, match="2048"):
        handle(sfn, load_event("ecs_task_out_of_memory", token="A" * 2049))
    assert sfn.calls == []


def test_the_call_is_bounded_by_the_lambda_deadline(sfn: FakeStepFunctions) -> None:
    # GIVEN a Lambda with 4 s left and the default 2 s margin (the calls must end 0.5 s before the Lambda does)
    context = FakeLambdaContext(remaining_ms=4_000)
    # WHEN the reaper answers
    result = reaper.make_handler(client=sfn, retry=no_sleep_policy())(load_event("ecs_task_out_of_memory"), context)
    # THEN its one call was given a timeout that ends before that reserve
    assert result == {"result": "failed"}
    assert len(sfn.timeouts) == 1
    assert 0 < sfn.timeouts[0] <= 3.5


def test_a_cause_over_step_functions_limit_is_cut(sfn: FakeStepFunctions) -> None:
    # GIVEN a stop reason far over the 32,768-character cause limit
    event = load_event("ecs_task_out_of_memory")
    event["detail"]["containers"][0]["reason"] = "x" * 100_000
    # WHEN the reaper handles it  THEN the failure is delivered with a cause within the limit, still valid JSON
    assert handle(sfn, event) == {"result": "failed"}
    cause = sent_causes(sfn)[0]
    assert len(cause) <= MAX_CAUSE_CHARS
    assert json.loads(cause)["truncated"] is True


def test_events_that_are_not_ecs_task_state_changes_are_refused(sfn: FakeStepFunctions) -> None:
    # GIVEN a rule that sends the reaper other events
    wrong: list[Any] = [{"detail-type": "ECS Container Instance State Change", "detail": {}}, [], {"detail-type": ""}]
    for event in wrong:
        # WHEN it handles one  THEN it raises (the event ends in the DLQ, where the wiring mistake shows)
        with pytest.raises(MalformedEventError):
            handle(sfn, event)
    with pytest.raises(MalformedEventError, match="detail"):
        handle(sfn, {"detail-type": reaper.DETAIL_TYPE})


# -- what it logs -------------------------------------------------------------------------------------------------
def test_no_raw_token_in_any_log_line(
    sfn: FakeStepFunctions, debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a stop reason that quotes the token (an entry point that echoed its environment), every path of the
    # reaper, and every logger at DEBUG
    failed = load_event("ecs_task_out_of_memory")
    failed["detail"]["containers"][0]["reason"] = f"exec failed: TASK_TOKEN={SECRET} not accepted"
    sfn.inject("SendTaskFailure", "ThrottlingException")
    other = SECRET + "-other"
    sfn.open_task(other)
    sfn.close_task(other)
    # WHEN the reaper fails one task after a retry, finds another closed, ignores others, and refuses bad ones
    assert handle(sfn, failed) == {"result": "failed"}
    assert handle(sfn, load_event("ecs_task_exited_0", other)) == {"result": "already_answered"}
    assert handle(sfn, load_event("ecs_task_running")) == {"result": "not_stopped"}
    assert handle(sfn, load_event("ecs_task_job_token", variable="JOB_TOKEN")) == {"result": "no_token"}
    with pytest.raises(InvalidTokenError):
        handle(FakeStepFunctions(), load_event("ecs_task_failed_to_start"))
    # THEN the logs name the tokens by fingerprint only, and neither the logs, the output nor the cause hold them
    assert any(fingerprint(SECRET) in line for line in debug_logs.lines)
    assert any(fingerprint(other) in line for line in debug_logs.lines)
    printed = capfd.readouterr()
    cause = sent_causes(sfn)[0]
    probes = [SECRET, SECRET[10:40], SECRET[300:330]]
    for text in [*debug_logs.lines, printed.out, printed.err, cause]:
        for probe in probes:
            assert probe not in text, f"token leaked: {text[:300]}"
    assert fingerprint(SECRET) in cause


def test_a_task_found_answered_is_logged_at_info_not_warning(sfn: FakeStepFunctions, debug_logs: ListHandler) -> None:
    # GIVEN a container that answered and exited: the usual end of every task that ran
    sfn.send_task_success(taskToken=SECRET, output="{}")
    # WHEN the reaper handles its STOPPED event
    handle(sfn, load_event("ecs_task_exited_0"))
    # THEN nothing is logged above INFO: a warning for every successful task would only be noise
    assert [r.levelname for r in debug_logs.records if r.levelname not in ("DEBUG", "INFO")] == []


def test_reap_is_the_function_behind_the_handler(sfn: FakeStepFunctions) -> None:
    # GIVEN a Completer of one's own (a different retry policy, say)
    completer = Completer(sfn, no_sleep_policy(), closed_is_expected=True)
    # WHEN reap() is called directly  THEN it does what the handler does and says so
    assert reaper.reap(load_event("ecs_task_failed_to_start"), completer=completer) is reaper.Reaped.FAILED
