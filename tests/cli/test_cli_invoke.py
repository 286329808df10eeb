"""`callback-kit invoke` on handlers defined here and on the repo's events/, and `callback-kit activity`."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.cli import EXIT_OK, EXIT_USAGE, main
from callback_kit.invoke import invoke
from callback_kit.testing import FakeStepFunctions, sqs_event

REPO = Path(__file__).resolve().parents[2]
ARN = "arn:aws:states:us-east-1:123456789012:activity:cli"


@ck.callback_handler(heartbeat_interval=0)
def double(payload: dict[str, int]) -> dict[str, int]:
    return {"double": payload["n"] * 2}


@ck.callback_handler(heartbeat_interval=0)
def slow(payload: dict[str, Any]) -> str:
    deadline = time.monotonic() + 5
    while not ck.is_cancelled() and time.monotonic() < deadline:
        time.sleep(0.005)
    return "late"


def run_invoke(target: Any, event: Any, **options: Any) -> tuple[int, str]:
    out = io.StringIO()
    return invoke(target, event, out=out, **options), out.getvalue()


def test_invoke_prints_the_success_it_would_send() -> None:
    # GIVEN / WHEN a direct payload
    code, out = run_invoke(double, {"token": "t-1", "n": 21})
    # THEN the output is printed and every task was answered
    assert code == 0
    assert "SendTaskSuccess" in out
    assert '"double": 42' in out


def test_invoke_reports_records_without_a_token_as_redelivered() -> None:
    # GIVEN an SQS batch with one good record and one without a token
    event = sqs_event({"TaskToken": "t-1", "n": 1}, {"n": 2})
    # WHEN / THEN exit 1, and the batch response names the bad record
    code, out = run_invoke(double, event)
    assert code == 1
    assert "no usable task token" in out
    assert '"batchItemFailures": [{"itemIdentifier"' in out


def test_invoke_honours_the_remaining_time() -> None:
    # GIVEN a handler slower than the Lambda time left
    code, out = run_invoke(slow, {"token": "t-1"}, remaining_ms=300)
    # THEN the deadline guard's failure is what would be sent
    assert code == 0
    assert "error: CallbackKit.LambdaDeadline" in out


def test_invoke_command_exit_codes(tmp_path: Path) -> None:
    # GIVEN an event file, a bad one, and handler specs
    good = tmp_path / "event.json"
    good.write_text(json.dumps({"token": "t", "n": 1}), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    here = f"{__name__}:double"
    out, err = io.StringIO(), io.StringIO()
    # WHEN / THEN
    assert main(["invoke", here, "--event", str(good)], stdout=out, stderr=err) == EXIT_OK
    assert main(["invoke", here, "--event", str(bad)], stdout=out, stderr=err) == EXIT_USAGE
    assert main(["invoke", here, "--event", str(tmp_path / "none.json")], stdout=out, stderr=err) == EXIT_USAGE
    assert main(["invoke", "no_such_module:handler", "--event", str(good)], stdout=out, stderr=err) == EXIT_USAGE
    assert main(["invoke", f"{__name__}:missing", "--event", str(good)], stdout=out, stderr=err) == EXIT_USAGE


# The repo's events and the handler each is for (events/state_machine_input.json is an execution's input).
EVENTS = {
    "sqs_order_check.json": ("handlers.order_check:handler", "SendTaskSuccess"),
    "sqs_order_check_rejected.json": ("handlers.order_check:handler", "Order.Rejected"),
    "eventbridge_notify.json": ("handlers.notify:handler", "SendTaskSuccess"),
    "eventbridge_notify_no_email.json": ("handlers.notify:handler", "Notify.NoRecipient"),
    "direct_age_check.json": ("handlers.age_check:handler", "SendTaskSuccess"),
    "direct_age_check_underage.json": ("handlers.age_check:handler", '"verified": false'),
    "direct_age_check_invalid.json": ("handlers.age_check:handler", "Age.InvalidBirthDate"),
    "activity_age_check.json": ("handlers.age_check:check_age", "SendTaskSuccess"),
    "sqs_order_check_durable.json": ("handlers.order_check:handler", "SendDurableExecutionCallbackSuccess"),
}


# Events `callback-kit invoke` has no offline stand-in for: the approval API's (not a callback event: it completes
# handed-off tokens itself) and the approval notifier's (it publishes to an SNS topic). tests/e2e/test_patterns.py
# runs both on the simulator, and tests/sam/test_built_functions.py on the built functions. The ECS events are the
# reaper's, which runs no user function (tests/unit/test_reaper.py runs it on them). The durable function's own
# event needs Lambda's durable execution service to run it: the demo and tests/durable run it on AWS's local
# durable runner.
NOT_INVOKED = {
    "apigateway_approve.json",
    "apigateway_reject.json",
    "direct_request_approval.json",
    "durable_order.json",
    *(p.name for p in (REPO / "events").glob("ecs_*.json")),
}


def test_every_repo_event_is_covered() -> None:
    # GIVEN / WHEN / THEN each Lambda event in events/ has a case below
    names = {p.name for p in (REPO / "events").glob("*.json")} - {"state_machine_input.json"} - NOT_INVOKED
    assert names <= set(EVENTS), names - set(EVENTS)


@pytest.mark.skipif(not (REPO / "handlers").is_dir(), reason="handlers/ not in this checkout")
@pytest.mark.parametrize("event_name", sorted(EVENTS))
def test_invoke_runs_the_repo_handlers_on_their_events(event_name: str) -> None:
    # GIVEN a repo handler and its event file, as the README tells users to run them
    target, expected = EVENTS[event_name]
    exe = Path(sys.executable).with_name("callback-kit")
    # WHEN `callback-kit invoke` runs from the repo root
    result = subprocess.run(  # noqa: S603 - the installed command on the repo's own files
        [str(exe), "invoke", target, "--event", f"events/{event_name}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # THEN every task got its callback, and it is the expected one
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout


def test_activity_command_runs_a_worker_until_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN two queued activity tasks
    fake = FakeStepFunctions(activity_poll_seconds=0.02)
    tokens = [fake.add_activity_task(ARN, {"n": n}) for n in (1, 2)]

    def terminate_when_answered() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(fake.outcome(t) for t in tokens):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    # WHEN `callback-kit activity` runs (on this, the main thread) until the process gets SIGTERM
    threading.Thread(target=terminate_when_answered, daemon=True).start()
    argv = ["activity", ARN, f"{__name__}:double", "--concurrency", "2", "--heartbeat-interval", "0"]
    code = main([*argv, "--shutdown-grace-seconds", "1"], client=fake)
    # THEN it answered both, stopped cleanly, and exited 0
    assert code == EXIT_OK
    assert sorted(fake.outputs(), key=lambda o: int(o["double"])) == [{"double": 2}, {"double": 4}]
    assert "succeeded 2" in capsys.readouterr().err


def test_activity_command_refuses_a_bad_arn() -> None:
    # GIVEN / WHEN a state machine ARN where an activity ARN belongs / THEN usage error
    err = io.StringIO()
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:x"
    assert main(["activity", arn, f"{__name__}:double"], stderr=err) == EXIT_USAGE
    assert "activity ARN" in err.getvalue()


def notify(payload: dict[str, Any]) -> None:
    ck.hand_off()


def test_invoke_reports_a_hand_off_as_answered_by_someone_else(tmp_path: Path) -> None:
    # GIVEN a notifier that hands its token off, and a direct event for it
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"token": "tok-for-the-approver", "order": 1}))
    out, err = io.StringIO(), io.StringIO()
    # WHEN it is invoked offline
    code = main(["invoke", f"{__name__}:notify", "--event", str(event)], stdout=out, stderr=err)
    # THEN nothing was sent, that is what was meant, and the command says so
    assert code == EXIT_OK, out.getvalue() + err.getvalue()
    assert "handed off" in out.getvalue()
