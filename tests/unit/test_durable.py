"""Durable callbacks (Lambda durable functions' callback ids) answered by the same worker, against the fake API."""

from __future__ import annotations

import gzip
import io
import json
import pathlib
import time
from typing import Any

import botocore
import pytest

import callback_kit as ck
from callback_kit.cli import main
from callback_kit.exceptions import ERROR_OUTPUT_TOO_LARGE
from callback_kit.logs import fingerprint
from callback_kit.outcome import Failure
from callback_kit.sources import parse_event
from callback_kit.task.answers import (
    DURABLE,
    MAX_CALLBACK_ID_CHARS,
    MAX_DURABLE_RESULT_BYTES,
    STEP_FUNCTIONS,
    answers_for,
)
from callback_kit.task.completion import Completer, Delivery, RetryPolicy
from callback_kit.testing import (
    FakeDurableCallbacks,
    FakeLambdaContext,
    FakeStepFunctions,
    eventbridge_event,
    sns_event,
    sns_notification,
    sqs_event,
)
from tests.reliability.harness import captured_logs

NO_SLEEP = RetryPolicy(sleep=lambda s: None)


@pytest.fixture
def lam() -> FakeDurableCallbacks:
    return FakeDurableCallbacks()


def make(lam: FakeDurableCallbacks, fn: Any, **options: Any) -> ck.CallbackHandler[Any, Any]:
    # A Step Functions fake too: a durable message must never reach it.
    options.setdefault("heartbeat_interval", 0)
    options.setdefault("client", FakeStepFunctions())
    return ck.callback_handler(lambda_client=lam, retry=NO_SLEEP, **options)(fn)


def failed_ids(response: Any) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def count_failed(response: Any) -> int:
    return len(response["batchItemFailures"])


def _has_durable_api() -> bool:
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    return "SendDurableExecutionCallbackSuccess" in model.operation_names


#: Tests that build callback-kit's real default Lambda client or read botocore's model of the durable API. The
#: floors job runs botocore 1.34, which predates that API (1.42.1): there the library says so (tested below).
needs_durable_botocore = pytest.mark.skipif(
    not _has_durable_api(), reason=f"botocore {botocore.__version__} predates the durable callback API (1.42.1)"
)


def _lambda_model() -> dict[str, Any]:
    root = pathlib.Path(botocore.__file__).parent / "data" / "lambda"
    newest = sorted(root.iterdir())[-1] / "service-2.json.gz"
    with gzip.open(newest) as f:
        model: dict[str, Any] = json.load(f)
    return model


@needs_durable_botocore
def test_the_limits_are_botocores() -> None:
    # GIVEN the installed botocore's model of the Lambda API
    shapes = _lambda_model()["shapes"]
    # THEN the Result limit and the callback id length are the ones encoded here
    assert shapes["BinaryOperationPayload"]["max"] == MAX_DURABLE_RESULT_BYTES
    assert shapes["CallbackId"]["max"] == MAX_CALLBACK_ID_CHARS
    assert answers_for("durable") is DURABLE
    assert answers_for("stepfunctions") is STEP_FUNCTIONS
    with pytest.raises(ValueError, match="kind must be one of"):
        answers_for("sfn")


@pytest.mark.parametrize("key", ["callbackId", "CallbackId", "callback_id", "CALLBACK_ID"])
def test_a_message_with_a_callback_id_is_answered_through_lambda(lam: FakeDurableCallbacks, key: str) -> None:
    # GIVEN a durable callback waiting, and its id in an SQS message under some spelling of callbackId
    cb = lam.open_callback()
    seen: list[Any] = []

    def check(order: dict[str, Any]) -> dict[str, Any]:
        seen.append((order, ck.current_task().kind, ck.current_task().token_fingerprint))
        return {"approved": order["total"] < 100}

    # WHEN the worker runs it
    response = make(lam, check)(sqs_event({key: cb, "total": 12}), FakeLambdaContext())
    # THEN the callback got the function's value, and the function saw neither the id nor a token
    assert failed_ids(response) == []
    assert lam.outcome(cb) == ("success", {"approved": True})
    assert seen == [({"total": 12}, "durable", fingerprint(cb))]


@pytest.mark.parametrize("shape", ["sns", "eventbridge", "direct", "sqs+sns", "sqs+eventbridge"])
def test_every_source_carries_a_callback_id(lam: FakeDurableCallbacks, shape: str) -> None:
    cb = lam.open_callback()
    message = {"callbackId": cb, "n": 2}
    events: dict[str, Any] = {
        "sns": sns_event(message),
        "eventbridge": eventbridge_event(message),
        "direct": message,
        "sqs+sns": sqs_event(json.dumps(sns_notification(message))),
        "sqs+eventbridge": sqs_event(json.dumps(eventbridge_event(message))),
    }
    event = events[shape]
    make(lam, lambda p: {"double": p["n"] * 2})(event, FakeLambdaContext())
    assert lam.outcome(cb) == ("success", {"double": 4})


def test_a_failure_sends_its_error_name_message_and_stack_lines(lam: FakeDurableCallbacks) -> None:
    # GIVEN two callbacks: one failed by a TaskFailed, one by an unexpected exception
    business, crash = lam.open_callback(), lam.open_callback()

    def check(order: dict[str, Any]) -> None:
        if order["kind"] == "business":
            raise ck.TaskFailed("negative total", error="Order.Invalid")
        raise KeyError("total")

    event = sqs_event({"callbackId": business, "kind": "business"}, {"callbackId": crash, "kind": "crash"})
    # WHEN they run
    response = make(lam, check)(event, FakeLambdaContext())
    # THEN each failure says its error name as ErrorType, and the crash's stack trace comes as a list of lines
    assert failed_ids(response) == []
    assert lam.outcome(business) == ("failure", "Order.Invalid", "negative total", None)
    kind, error_type, message, stack = lam.outcome(crash)  # type: ignore[misc]
    assert (kind, error_type, message) == ("failure", "KeyError", "'total'")
    assert stack
    assert all(isinstance(line, str) and "\n" not in line for line in stack)
    assert any("raise KeyError" in line for line in stack)


def test_a_result_over_a_mebibyte_fails_with_output_too_large(lam: FakeDurableCallbacks) -> None:
    # GIVEN one result over Step Functions' 256 KiB but within Lambda's 1 MiB, and one over 1 MiB
    fits, too_large = lam.open_callback(), lam.open_callback()
    size = {"fits": 300_000, "too_large": MAX_DURABLE_RESULT_BYTES}
    event = sqs_event({"callbackId": fits, "which": "fits"}, {"callbackId": too_large, "which": "too_large"})
    make(lam, lambda p: "x" * size[p["which"]])(event, FakeLambdaContext())
    # THEN the first is delivered whole, the second fails with the documented error name
    assert lam.outcome(fits) == ("success", "x" * 300_000)
    outcome = lam.outcome(too_large)
    assert outcome is not None
    assert outcome[:2] == ("failure", ERROR_OUTPUT_TOO_LARGE)
    assert "Lambda accepts at most 1048576" in outcome[2]


def _client_of_an_older_botocore(tmp_path: pathlib.Path, result_max: int) -> Any:
    """A real botocore Lambda client whose model says ``Result`` takes ``result_max`` bytes, as botocore 1.42.1 to
    1.43 said 262,144 (the installed model, rewritten into a data path of the client's own session)."""
    import botocore.session

    model = _lambda_model()
    model["shapes"]["BinaryOperationPayload"]["max"] = result_max
    folder = tmp_path / "lambda" / "2015-03-31"
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.get_session()
    session.set_config_variable("data_path", str(tmp_path))
    return session.create_client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@needs_durable_botocore
def test_a_result_within_lambdas_limit_but_over_the_clients_fails_at_once_rather_than_never_being_sent(
    tmp_path: pathlib.Path,
) -> None:
    from botocore.stub import ANY, Stubber

    # GIVEN a user's Lambda client from a botocore whose model still takes 256 KiB Results (botocore refuses a
    # larger one before sending it), and a function that returns 300,000 bytes: within Lambda's 1 MiB
    client = _client_of_an_older_botocore(tmp_path, 262_144)
    assert DURABLE.output_limit(client) == 262_144
    stub = Stubber(client)
    stub.add_response(
        "send_durable_execution_callback_failure",
        {},
        {"CallbackId": "cb-1", "Error": {"ErrorType": ERROR_OUTPUT_TOO_LARGE, "ErrorMessage": ANY}},
    )
    worker = ck.callback_handler(lambda_client=client, heartbeat_interval=0, retry=NO_SLEEP)
    handler: Any = worker(lambda p: "x" * 300_000)
    # WHEN the worker runs it
    with stub:
        response = handler(sqs_event({"callbackId": "cb-1"}), FakeLambdaContext())
    # THEN the callback is failed with the documented error name, naming the client's limit, and the message is
    # acknowledged: not handed back again and again until the callback times out
    stub.assert_no_pending_responses()
    assert failed_ids(response) == []
    # AND send_success refuses such a result before any call, as for one over 1 MiB
    with pytest.raises(ck.InvalidOutputError, match="262144"):
        ck.send_success("cb-2", "x" * 300_000, kind="durable", lambda_client=client)


@needs_durable_botocore
def test_the_output_limit_is_the_clients_model(tmp_path: pathlib.Path) -> None:
    # GIVEN clients from the installed botocore, from one that says less, and a fake without a model
    import boto3

    installed = boto3.client("lambda", region_name="us-east-1")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    # THEN each limit is the one its client checks before sending
    assert DURABLE.output_limit(installed) == _lambda_model()["shapes"]["BinaryOperationPayload"]["max"]
    assert DURABLE.output_limit(_client_of_an_older_botocore(tmp_path, 1000)) == 1000
    assert DURABLE.output_limit(FakeDurableCallbacks()) == MAX_DURABLE_RESULT_BYTES
    assert STEP_FUNCTIONS.output_limit(sfn) == STEP_FUNCTIONS.max_output_bytes == 262_144


@pytest.mark.parametrize("code", ["TooManyRequestsException", "ServiceException"])
def test_throttles_and_server_faults_are_retried(lam: FakeDurableCallbacks, code: str) -> None:
    cb = lam.open_callback()
    lam.inject("SendDurableExecutionCallbackSuccess", code, times=2)
    response = make(lam, lambda p: {"ok": True})(sqs_event({"callbackId": cb}), FakeLambdaContext())
    assert failed_ids(response) == []
    assert lam.outcome(cb) == ("success", {"ok": True})
    assert [c.result for c in lam.calls_for(cb)] == [code, code, "ok"]


def test_a_closed_callback_is_acknowledged_not_redelivered(lam: FakeDurableCallbacks) -> None:
    # GIVEN a callback that timed out before the worker answered
    cb = lam.open_callback()
    lam.close_callback(cb)
    response = make(lam, lambda p: {"ok": True})(sqs_event({"callbackId": cb}), FakeLambdaContext())
    # THEN Lambda's CallbackTimeoutException is taken as "already closed": the message is not handed back
    assert failed_ids(response) == []
    assert [c.result for c in lam.calls_for(cb)] == ["CallbackTimeoutException"]


@pytest.mark.parametrize("callback_id", ["bm90LWlzc3VlZA==", "not an id!"])
def test_an_id_lambda_does_not_know_is_handed_back(lam: FakeDurableCallbacks, callback_id: str) -> None:
    # GIVEN an id Lambda never issued (ResourceNotFoundException) or one it cannot read (InvalidParameterValue)
    response = make(lam, lambda p: {"ok": True})(sqs_event({"callbackId": callback_id}), FakeLambdaContext())
    # THEN the real callback still waits: the message goes back (and, in the end, to the DLQ)
    assert count_failed(response) == 1


def test_a_message_with_a_token_and_a_callback_id_is_handed_back(lam: FakeDurableCallbacks) -> None:
    # GIVEN a message carrying both kinds of string
    sfn = FakeStepFunctions()
    token, cb = sfn.open_task(), lam.open_callback()
    ran: list[Any] = []
    [record] = parse_event(sqs_event({"TaskToken": token, "callbackId": cb}))
    # THEN it is not guessed: nothing runs, nothing is sent, it goes back, and the reason names both keys
    assert record.token is None
    assert record.problem is not None
    assert "TaskToken" in record.problem
    assert "callbackId" in record.problem
    handler = make(lam, ran.append, client=sfn)
    response = handler(sqs_event({"TaskToken": token, "callbackId": cb}), FakeLambdaContext())
    assert count_failed(response) == 1
    assert ran == []
    assert lam.calls == []
    assert sfn.calls == []
    # AND token_path settles it: the task token is answered, the callbackId is then the message's own field
    handler = make(lam, lambda p: sorted(p), client=sfn, token_path="TaskToken")
    handler(sqs_event({"TaskToken": token, "callbackId": cb}), FakeLambdaContext())
    assert sfn.outcome(token) == ("success", ["callbackId"])


@pytest.mark.parametrize("value", ["", None, 7, "A" * (MAX_CALLBACK_ID_CHARS + 1)])
def test_an_unusable_callback_id_is_handed_back_without_a_call(lam: FakeDurableCallbacks, value: Any) -> None:
    response = make(lam, lambda p: None)(sqs_event({"callbackId": value}), FakeLambdaContext())
    assert count_failed(response) == 1
    assert lam.calls == []


def test_heartbeats_go_to_the_callback_and_a_closed_one_cancels(lam: FakeDurableCallbacks) -> None:
    # GIVEN a callback with a heartbeat timeout, and a function that runs for several beat intervals
    cb = lam.open_callback(heartbeat_seconds=0.3)

    def slow(payload: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.5)
        return {"slow": True}

    make(lam, slow, heartbeat_interval=0.05)(sqs_event({"callbackId": cb}), FakeLambdaContext())
    # THEN the beats kept it alive past its heartbeat timeout, and the answer landed
    assert lam.heartbeats(cb) >= 3
    assert lam.outcome(cb) == ("success", {"slow": True})
    # AND a beat that finds the callback closed cancels the task: no answer is sent for it
    closed = lam.open_callback()
    cancelled: list[bool] = []

    def watch(payload: dict[str, Any]) -> None:
        lam.close_callback(closed)
        deadline = time.monotonic() + 2
        while not ck.is_cancelled() and time.monotonic() < deadline:
            time.sleep(0.01)
        cancelled.append(ck.is_cancelled())

    response = make(lam, watch, heartbeat_interval=0.05)(sqs_event({"callbackId": closed}), FakeLambdaContext())
    assert cancelled == [True]
    assert failed_ids(response) == []
    assert [c.api for c in lam.calls_for(closed)] == ["SendDurableExecutionCallbackHeartbeat"]


def test_hand_off_returns_the_callback_id_and_sends_nothing(lam: FakeDurableCallbacks) -> None:
    cb = lam.open_callback()
    handed: list[str] = []
    make(lam, lambda p: handed.append(ck.hand_off()))(sqs_event({"callbackId": cb}), FakeLambdaContext())
    assert handed == [cb]
    assert lam.calls == []
    # WHEN whoever holds it answers, told explicitly that it is a durable callback
    assert ck.send_success(cb, {"approved": True}, kind="durable", lambda_client=lam) is Delivery.DELIVERED
    assert lam.outcome(cb) == ("success", {"approved": True})
    assert ck.send_heartbeat(cb, kind="durable", lambda_client=lam) is Delivery.ALREADY_CLOSED
    assert ck.send_failure(cb, "X", kind="durable", lambda_client=lam) is Delivery.ALREADY_CLOSED


def test_send_functions_refuse_an_unknown_kind_and_an_oversized_result(lam: FakeDurableCallbacks) -> None:
    cb = lam.open_callback()
    with pytest.raises(ValueError, match="kind must be one of"):
        ck.send_success(cb, {}, kind="lambda", lambda_client=lam)  # type: ignore[arg-type]
    with pytest.raises(ck.InvalidOutputError, match="1048576"):
        ck.send_success(cb, "x" * MAX_DURABLE_RESULT_BYTES, kind="durable", lambda_client=lam)
    assert lam.calls == []


def test_the_send_commands_answer_a_durable_callback_with_durable(lam: FakeDurableCallbacks) -> None:
    ok, failed, beat = lam.open_callback(), lam.open_callback(), lam.open_callback()
    out, err = io.StringIO(), io.StringIO()
    assert main(["send-success", ok, "--durable", "--output", '{"a": 1}'], lambda_client=lam, stdout=out) == 0
    assert main(["send-failure", failed, "--durable", "--error", "E.x", "--cause", "why"], lambda_client=lam) == 0
    assert main(["send-heartbeat", beat, "--durable"], lambda_client=lam, stdout=out) == 0
    assert lam.outcome(ok) == ("success", {"a": 1})
    assert lam.outcome(failed) == ("failure", "E.x", "why", None)
    assert "SendDurableExecutionCallbackSuccess delivered for tok-" in out.getvalue()
    assert ok not in out.getvalue()
    # A second answer: exit code 1, "already closed"
    assert main(["send-success", ok, "--durable"], lambda_client=lam, stderr=err) == 1
    assert "already closed" in err.getvalue()


def test_completer_classifies_each_code(lam: FakeDurableCallbacks) -> None:
    completer = Completer(lambda_client=lam, policy=NO_SLEEP)
    cb = lam.open_callback()
    lam.inject("SendDurableExecutionCallbackFailure", "KMSAccessDeniedException")
    with pytest.raises(ck.CallbackDeliveryError) as caught:
        completer.complete(cb, Failure("E", "c"), kind="durable")
    assert caught.value.code == "KMSAccessDeniedException"
    with pytest.raises(ck.InvalidTokenError):
        completer.complete("bm90LWlzc3VlZA==", Failure("E", "c"), kind="durable")
    # A heartbeat to an id Lambda does not know is not "closed": the real callback still waits
    assert completer.heartbeat("bm90LWlzc3VlZA==", kind="durable") is True
    lam.close_callback(cb)
    assert completer.heartbeat(cb, kind="durable") is False


def test_the_callback_id_is_never_logged(lam: FakeDurableCallbacks) -> None:
    cb = "SECRETCALLBACK" + "k3y" * 100 + "=="
    lam.open_callback(cb)
    lam.inject("SendDurableExecutionCallbackSuccess", "TooManyRequestsException")
    with captured_logs() as handler:
        make(lam, lambda p: 1 / 0)(sqs_event({"callbackId": cb, "x": cb}), FakeLambdaContext())
        make(lam, lambda p: None)(sqs_event({"callbackId": cb}), FakeLambdaContext())  # closed by now
    assert handler.lines
    assert not [line for line in handler.lines if cb in line or cb[10:40] in line]
    assert any(fingerprint(cb) in line for line in handler.lines)


@needs_durable_botocore
def test_the_default_lambda_client_is_built_as_the_step_functions_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from callback_kit.task import clients, timeouts

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(clients, "_default_lambda_client", None)
    client = Completer().resolved_client("durable")
    assert client is clients.default_lambda_client()
    assert client.meta.service_model.service_name == "lambda"
    assert timeouts.own(client)  # bounded variants, as for Step Functions
    assert client.meta.config.retries["total_max_attempts"] == 1  # the completer retries, not botocore


@needs_durable_botocore
def test_botocore_debug_logs_of_the_default_lambda_client_show_no_callback_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN callback-kit's default Lambda client, pointed at a port where nothing listens, and botocore at DEBUG
    from callback_kit.logs import BOTOCORE_LOGGERS
    from callback_kit.task import clients

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "_default_lambda_client", None)
    callback_id = "SECRET+Callback/" + "k3y" * 60 + "=="
    # WHEN a durable success cannot be delivered
    with captured_logs(*BOTOCORE_LOGGERS) as handler, pytest.raises(ck.CallbackDeliveryError):
        Completer(policy=RetryPolicy(max_attempts=1, sleep=lambda s: None)).complete(
            callback_id, Failure("E", "c"), kind="durable"
        )
    # THEN the request was logged (its REST path included) with the id masked, raw or URL-encoded
    from urllib.parse import quote

    lines = "\n".join(handler.lines)
    assert "durable-execution-callbacks/tok-" in lines
    assert callback_id not in lines
    assert quote(callback_id, safe="") not in lines
    assert callback_id[16:60] not in lines


def test_a_heartbeat_never_raises_whatever_the_lambda_client_does() -> None:
    # A client without the durable methods (an old boto3's, say): the beat is logged as failed, the task goes on
    assert Completer(lambda_client=object()).heartbeat("Y2I=", kind="durable") is True


def test_a_botocore_without_the_durable_api_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a botocore whose Lambda client lacks the durable callback methods (older than 1.42.1)
    from callback_kit.task import clients

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setattr(clients, "_default_lambda_client", None)
    monkeypatch.setattr(clients, "build_client", lambda service, config: object())

    def echo(payload: Any) -> Any:
        return payload

    lam_less = ck.callback_handler(client=FakeStepFunctions(), retry=NO_SLEEP, heartbeat_interval=0)(echo)
    # WHEN a durable callback comes / THEN the message goes back, and the reason says what to upgrade
    with captured_logs() as handler:
        response = lam_less(sqs_event({"callbackId": "Y2I="}), FakeLambdaContext())
    assert count_failed(response) == 1
    assert any("needs botocore >= 1.42.1" in line for line in handler.lines)
