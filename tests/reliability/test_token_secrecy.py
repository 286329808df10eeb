"""Token secrecy: no raw task token in any log record or printed line, on every path, with DEBUG logging on.

The library's own logger, botocore's and urllib3's loggers and the root logger are captured at DEBUG, and so is
everything written to stdout/stderr (the powertools Logger prints JSON lines there). One path runs a real boto3
``stepfunctions`` client against moto, so that botocore's request logging (which prints request bodies, task
token included) is exercised for real.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

import callback_kit as ck
from callback_kit import logs, send
from callback_kit.logs import BOTOCORE_LOGGERS, TokenRedactingFilter, fingerprint, redact_tokens
from callback_kit.task import clients, completion
from callback_kit.testing import FakeLambdaContext
from tests.reliability.harness import (
    FakeClock,
    ListHandler,
    ScriptedStepFunctions,
    build_event,
    captured_logs,
    check_task_invariant,
    invoke,
    manual_scheduler,
    no_sleep_policy,
)

CAPTURED = (*BOTOCORE_LOGGERS, "", "moto", "aws_lambda_powertools")


def _secret(fake: Any = None) -> str:
    """A long token that could not appear in a log by accident; opened in ``fake`` when given."""
    token = "AQCSECRET" + "k3y" * 200 + "END"
    if fake is not None:
        fake.open_task(token)
    return token


def _assert_no_token(token: str, handler: ListHandler, printed: str) -> None:
    # The whole token, and any 24-character slice of it (a token cut short in a message is still a leak).
    probes = {token, *(token[i : i + 24] for i in range(0, len(token) - 24, 97))}
    for line in [*handler.lines, printed]:
        for probe in probes:
            assert probe not in line, f"token leaked: {line[:300]}"


@pytest.fixture
def debug_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[ListHandler]:
    with captured_logs(*CAPTURED) as handler:
        yield handler


def test_success_failure_retries_heartbeats_and_cancellation_never_log_the_token(
    debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN tasks that succeed after retries, fail, beat, and get cancelled by a heartbeat answered "closed"
    fake = ScriptedStepFunctions()
    clock = FakeClock()
    scheduler = manual_scheduler(clock)
    ok, failed, beating, cancelled = (_secret() + s for s in ("ok", "fail", "beat", "cancel"))
    for token in (ok, failed, beating, cancelled):
        fake.open_task(token)
    fake.inject("SendTaskSuccess", "ThrottlingException", times=2)  # retries, logged at WARNING
    fake.inject("SendTaskFailure", "InternalFailure", times=1)

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        if payload["kind"] == "fail":
            raise ValueError("no stock")
        if payload["kind"] in ("beat", "cancel"):
            if payload["kind"] == "cancel":
                fake.close_task(cancelled)
            ck.heartbeat()
            clock.advance(10)
            scheduler.run_pending()
        return {"seen_by": ck.current_task().token_fingerprint}

    handler = ck.callback_handler(
        client=fake, retry=no_sleep_policy(), scheduler=scheduler, heartbeat_interval=10, max_concurrency=1
    )(work)
    event, _ = build_event(
        "sqs",
        [
            {"TaskToken": ok, "kind": "ok"},
            {"TaskToken": failed, "kind": "fail"},
            {"TaskToken": beating, "kind": "beat"},
            {"TaskToken": cancelled, "kind": "cancel"},
        ],
    )

    # WHEN the batch is handled with every logger at DEBUG
    delivery = invoke(fake, handler, event)

    # THEN every path ran as expected
    assert check_task_invariant(fake, ok, [delivery], [False]) == "success"
    assert check_task_invariant(fake, failed, [delivery], [False]) == "failure"
    assert check_task_invariant(fake, beating, [delivery], [False]) == "success"
    assert check_task_invariant(fake, cancelled, [delivery], [False]) == "closed"
    assert fake.heartbeats(beating) == 1
    # AND logs say what happened, with fingerprints, and never a token
    assert any(fingerprint(ok) in line for line in debug_logs.lines)
    printed = capfd.readouterr()
    for token in (ok, failed, beating, cancelled):
        _assert_no_token(token, debug_logs, printed.out + printed.err)


def test_deadline_and_missing_or_oversized_tokens_never_log_the_token(
    debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a task still running when the Lambda deadline comes, and records whose tokens cannot be used
    fake = ScriptedStepFunctions()
    token = _secret(fake)
    too_long = _secret() * 4  # over 2,048 characters: refused before any call
    release = threading.Event()

    finished = threading.Event()

    def work(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            release.wait(timeout=5)  # "slow": runs past the deadline guard
            return {}
        finally:
            finished.set()

    handler = ck.callback_handler(client=fake, retry=no_sleep_policy(), heartbeat_interval=0, deadline_margin=1.0)(work)
    event, _ = build_event("sqs", [{"TaskToken": token}, {"TaskToken": too_long}, {"NoToken": True}])
    context = FakeLambdaContext(remaining_ms=1_050)

    # WHEN the event is handled and the deadline guard fires
    delivery = invoke(fake, handler, event, context)
    release.set()
    finished.wait(timeout=5)  # let the abandoned function end, and log, inside this test's capture
    time.sleep(0.05)

    # THEN the running task was failed with the documented error, the unusable records handed back
    outcome = fake.outcome(token)
    assert outcome is not None
    assert outcome[:2] == ("failure", "CallbackKit.LambdaDeadline")
    assert len(delivery.redelivered_ids) == 2
    # AND no token, not even the unusable one, reached a log or the console
    printed = capfd.readouterr()
    _assert_no_token(token, debug_logs, printed.out + printed.err)
    _assert_no_token(too_long, debug_logs, printed.out + printed.err)


@pytest.fixture
def moto_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The library's own default client, built inside moto (and forgotten afterwards)."""
    with mock_aws():
        monkeypatch.setattr(clients, "_default_client", None)
        yield


@pytest.mark.usefixtures("moto_default_client")
def test_botocore_debug_logging_of_the_default_client_is_redacted(
    debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the library's default client (a real boto3 client, talking to moto) and botocore at DEBUG
    token = _secret()

    # WHEN callbacks are sent (moto without its simulator accepts any token)
    assert ck.send_heartbeat(token) is ck.Delivery.DELIVERED
    assert ck.send_success(token, {"ok": True}) is ck.Delivery.DELIVERED
    assert ck.send_failure(token, "Order.Invalid", "bad") is ck.Delivery.DELIVERED

    # THEN botocore did log the requests (the test is not vacuous), with the token replaced by its fingerprint
    requests = [line for line in debug_logs.lines if line.startswith("botocore.endpoint") and "params" in line]
    assert len(requests) >= 3
    assert all(fingerprint(token) in line for line in requests)
    printed = capfd.readouterr()
    _assert_no_token(token, debug_logs, printed.out + printed.err)


def test_without_the_filter_botocore_would_log_the_token(debug_logs: ListHandler) -> None:
    # GIVEN a client of the user's own and botocore's loggers without callback-kit's filter
    token = _secret()
    removed = [name for name in BOTOCORE_LOGGERS if logs._redactor in logging.getLogger(name).filters]
    for name in removed:
        logging.getLogger(name).removeFilter(logs._redactor)
    try:
        with mock_aws():
            client = boto3.client("stepfunctions", region_name="us-east-1")
            # WHEN a callback is sent through it
            client.send_task_success(taskToken=token, output="{}")
    finally:
        for name in removed:
            logging.getLogger(name).addFilter(logs._redactor)

    # THEN the raw token is in botocore's DEBUG log: the reason install_token_redaction exists
    assert any(token in line for line in debug_logs.lines)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'taskToken': 'abc123'}", "{'taskToken': '" + fingerprint("abc123") + "'}"),
        ('b\'{"taskToken": "abc/+=1"}\'', 'b\'{"taskToken": "' + fingerprint("abc/+=1") + "\"}'"),
        ('{\\"taskToken\\":\\"abc\\"}', '{\\"taskToken\\":\\"' + fingerprint("abc") + '\\"}'),
        ("taskToken=abc&x=1", "taskToken=" + fingerprint("abc") + "&x=1"),
        ("TaskToken: abc", "TaskToken: " + fingerprint("abc")),
        ("nothing to see", "nothing to see"),
    ],
    ids=["dict-repr", "json-in-bytes", "escaped-json", "form", "plain", "no-token"],
)
def test_redact_tokens_forms(text: str, expected: str) -> None:
    # GIVEN a log text in one of the forms botocore and users write / WHEN redacted / THEN only the value changes
    assert redact_tokens(text) == expected


def test_redacting_filter_rewrites_formatted_records() -> None:
    # GIVEN a record whose token is in its arguments, not in its format string
    record = logging.LogRecord("botocore.endpoint", logging.DEBUG, "x", 1, "params: %s", ({"taskToken": "t0k"},), None)

    # WHEN the filter sees it
    assert TokenRedactingFilter().filter(record)

    # THEN the stored message is already redacted, with no arguments left to re-insert the token
    assert record.getMessage() == "params: {'taskToken': '" + fingerprint("t0k") + "'}"


@pytest.mark.parametrize(
    ("argv", "token_via", "fault", "exit_code"),
    [
        (["send-success", "--output", '{"ok": true}'], "stdin", None, 0),
        (["send-failure", "--error", "Order.Invalid", "--cause", "bad"], "env", None, 0),
        (["send-heartbeat"], "argv", None, 0),
        (["send-success", "--output", "{}"], "argv", "closed", 1),
        (["send-failure", "--error", "Order.Invalid"], "env", "ThrottlingException", 3),
        (["send-heartbeat", "--verbose"], "stdin", "KmsAccessDeniedException", 3),
    ],
    ids=["success-stdin", "failure-env", "heartbeat-argv", "closed", "throttled-out", "kms-denied"],
)
def test_cli_never_prints_or_logs_the_token(
    debug_logs: ListHandler,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    token_via: str,
    fault: str | None,
    exit_code: int,
) -> None:
    # GIVEN the callback-kit command, a token given on stdin, in the environment or as an argument, and a fault
    import io

    from callback_kit import cli

    fake = ScriptedStepFunctions()
    token = _secret(fake)
    if fault == "closed":
        fake.close_task(token)
    elif fault is not None:
        fake.inject("*", fault, times=99)
    stdin = io.StringIO(token + "\n" if token_via == "stdin" else "")
    if token_via == "env":
        monkeypatch.setenv(cli.ENV_TOKEN, token)
    args = [argv[0], *([token] if token_via == "argv" else ["-"] if token_via == "stdin" else []), *argv[1:]]
    # The command's completions retry with the default policy: keep its backoff from really sleeping.
    monkeypatch.setattr(send, "Completer", functools.partial(completion.Completer, policy=no_sleep_policy()))

    # WHEN the command runs
    code = cli.main(args, client=fake, stdin=stdin)

    # THEN it exits as documented and neither its output nor any log line holds the token
    assert code == exit_code
    printed = capfd.readouterr()
    assert fingerprint(token) in printed.out + printed.err
    _assert_no_token(token, debug_logs, printed.out + printed.err)


def test_cli_invoke_prints_fingerprints_only(debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]) -> None:
    # GIVEN the offline 'invoke' command on an SQS event carrying a token
    from callback_kit import cli

    token = _secret()
    event = json.dumps(build_event("sqs", [{"TaskToken": token, "n": 1}])[0])

    # WHEN it runs a handler of the sample app... or any handler: here one defined by the test
    code = cli.main(["invoke", "tests.reliability.test_token_secrecy:echo_handler", "--event", "-"], stdin=_io(event))

    # THEN what it prints (the callback it would send) names the task by fingerprint only
    assert code == 0
    printed = capfd.readouterr()
    assert fingerprint(token) in printed.out
    _assert_no_token(token, debug_logs, printed.out + printed.err)


@ck.callback_handler(heartbeat_interval=0)
def echo_handler(payload: dict[str, Any]) -> dict[str, Any]:
    """The handler 'callback-kit invoke' runs in the test above."""
    return payload


def _io(text: str) -> Any:
    import io

    return io.StringIO(text)


@pytest.mark.usefixtures("moto_default_client")
def test_cli_on_the_default_client_with_botocore_debug(
    debug_logs: ListHandler, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the command with its default (real boto3) client on moto, and botocore logging requests at DEBUG
    from callback_kit import cli

    token = _secret()

    # WHEN a success is sent with the token on stdin
    code = cli.main(["send-success", "-", "--output", '{"ok": true}', "--verbose"], stdin=_io(token))

    # THEN it was delivered, botocore logged it, and no token leaked
    assert code == cli.EXIT_OK
    assert any(line.startswith("botocore.endpoint") and fingerprint(token) in line for line in debug_logs.lines)
    printed = capfd.readouterr()
    _assert_no_token(token, debug_logs, printed.out + printed.err)
