"""A client the user passes (``client=``) is the client every call goes through, under every deadline.

Whatever the user configured on it comes along: event handlers (a botocore Stubber, a ``before-call`` hook),
``verify=``, its timeouts and retries. callback-kit never copies it; when its own timeouts times its attempts can
outlive the time a call has, it says so once (docs/reliability.md, "What a user's client gets"). The clients
callback-kit builds itself are bounded exactly: no completion of theirs outlives the handler's return.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

import callback_kit as ck
from callback_kit.task import clients
from callback_kit.task.completion import RetryPolicy
from callback_kit.testing import FakeLambdaContext, sqs_event
from tests.schedules.endpoint import self_signed

REMAINING_MS = [1_000, 5_000, 30_000, 900_000]
TOKEN = "AQBtoken-of-a-user-client-test-" + "x" * 40


#: Where a call that escaped the user's handlers would go: a closed port on this machine, never AWS.
NOWHERE = "http://127.0.0.1:9"


def _user_client(**kwargs: Any) -> Any:
    kwargs.setdefault("endpoint_url", NOWHERE)
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    return session.client("stepfunctions", **kwargs)


def _handler(client: Any) -> Any:
    @ck.callback_handler(client=client, heartbeat_interval=0)
    def approve(order: dict[str, Any]) -> dict[str, Any]:
        return {"approved": order["total"] < 100}

    return approve


@pytest.mark.parametrize("remaining_ms", REMAINING_MS)
def test_a_stubber_on_the_users_client_answers_every_call(remaining_ms: int) -> None:
    # GIVEN a user's client with a botocore Stubber that expects one SendTaskSuccess
    client = _user_client()
    stubber = Stubber(client)
    stubber.add_response("send_task_success", {}, {"taskToken": TOKEN, "output": '{"approved":true}'})
    handler = _handler(client)

    # WHEN a record comes in with this much time left
    with stubber:
        response = handler(sqs_event({"TaskToken": TOKEN, "total": 12}), FakeLambdaContext(remaining_ms=remaining_ms))

    # THEN the stub answered the call (nothing went to AWS) and the record was acknowledged
    stubber.assert_no_pending_responses()
    assert response == {"batchItemFailures": []}


@pytest.mark.parametrize("remaining_ms", REMAINING_MS)
def test_a_before_call_hook_on_the_users_client_sees_every_call(remaining_ms: int) -> None:
    # GIVEN a user's client with a before-call hook that answers SendTaskSuccess itself (a fault injector would
    # sit here too)
    client = _user_client()
    seen: list[dict[str, Any]] = []

    def answer(params: dict[str, Any], **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        seen.append(json.loads(params["body"]))
        return SimpleNamespace(status_code=200, headers={}), {"ResponseMetadata": {"HTTPStatusCode": 200}}

    client.meta.events.register("before-call.states.SendTaskSuccess", answer)
    handler = _handler(client)

    # WHEN a record comes in with this much time left
    response = handler(sqs_event({"TaskToken": TOKEN, "total": 12}), FakeLambdaContext(remaining_ms=remaining_ms))

    # THEN the hook saw the call, and the record was acknowledged
    assert [call["taskToken"] for call in seen] == [TOKEN]
    assert response == {"batchItemFailures": []}


class _Endpoint(ThreadingHTTPServer):
    daemon_threads = True
    calls: list[str]


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Endpoint

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        self.server.calls.append(body.get("taskToken", ""))
        data = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def self_signed_endpoint(tmp_path: Path) -> Iterator[_Endpoint]:
    """A Step Functions stand-in over HTTPS on 127.0.0.1 with a self-signed certificate, stopped after the test."""
    cert, key = self_signed(tmp_path)
    server = _Endpoint(("127.0.0.1", 0), _Answer)
    server.calls = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("remaining_ms", REMAINING_MS)
def test_verify_false_on_the_users_client_holds_under_every_deadline(
    self_signed_endpoint: _Endpoint, remaining_ms: int
) -> None:
    # GIVEN a user's client told not to verify the certificate of a self-signed HTTPS endpoint
    port = self_signed_endpoint.server_address[1]
    client = _user_client(endpoint_url=f"https://127.0.0.1:{port}", verify=False)
    handler = _handler(client)

    # WHEN a record comes in with this much time left
    response = handler(sqs_event({"TaskToken": TOKEN, "total": 12}), FakeLambdaContext(remaining_ms=remaining_ms))

    # THEN the call reached the endpoint (no CERTIFICATE_VERIFY_FAILED) and the record was acknowledged
    assert self_signed_endpoint.calls == [TOKEN]
    assert response == {"batchItemFailures": []}


def test_a_users_client_with_retries_in_a_3s_lambda_is_used_as_it_is_and_reported(
    library_lines: list[logging.LogRecord],
) -> None:
    # GIVEN a user's client that retries (2 attempts of up to 1.5 s each: 3 s, more than a 3 s Lambda's calls
    # have), whose every attempt times out reading (a hook stands in for a slow endpoint), and callback-kit's own
    # retries off so that only the client's own show
    client = _user_client(
        config=Config(connect_timeout=0.5, read_timeout=1.0, retries={"mode": "standard", "total_max_attempts": 2})
    )
    attempts: list[float] = []
    busy = threading.Semaphore(0)

    def time_out(request: Any, **kwargs: Any) -> None:
        attempts.append(time.monotonic())
        time.sleep(1.0)
        busy.release()
        raise ReadTimeoutError(endpoint_url=request.url)

    client.meta.events.register("before-send.states.SendTaskSuccess", time_out)

    @ck.callback_handler(client=client, heartbeat_interval=0, retry=RetryPolicy(max_attempts=1))
    def approve(order: dict[str, Any]) -> dict[str, Any]:
        return {"approved": True}

    # WHEN a record comes in with 3 s left
    began = time.monotonic()
    response = approve(sqs_event({"TaskToken": TOKEN, "total": 12}), FakeLambdaContext(remaining_ms=3_000))
    returned = time.monotonic() - began

    # THEN the handler returned in time and handed the record back, since its answer was still out at the deadline
    # or had failed (nothing is lost: it will run again)
    assert returned < 3.0
    assert response is not None
    assert len(response["batchItemFailures"]) == 1
    # AND one warning said that this client can outlive the time its calls have, and what to configure
    warnings = [r for r in library_lines if "client=" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].__dict__["worst_case_seconds"] == pytest.approx(3.0)
    assert warnings[0].__dict__["attempts"] == 2
    # AND every attempt, botocore's retry included, went through the user's own client (never a copy); the retry
    # may start after the handler returned: that is what the warning is about
    for _ in range(2):
        assert busy.acquire(timeout=6.0)
    assert len(attempts) == 2


class _Slow(ThreadingHTTPServer):
    daemon_threads = True
    arrivals: list[float]


class _SlowAnswer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Slow

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.arrivals.append(time.monotonic())  # Step Functions applies a call when it arrives
        time.sleep(5.0)  # the answer comes after the Lambda's end

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def slow_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Slow]:
    """A local Step Functions that answers after 5 s, and a default client not built yet that points at it."""
    server = _Slow(("127.0.0.1", 0), _SlowAnswer)
    server.arrivals = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(clients, "_default_client", None)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_no_completion_on_callback_kits_own_client_outlives_a_3s_lambda(slow_endpoint: _Slow) -> None:
    # GIVEN the default client (callback-kit's own), an endpoint slower than the Lambda, and callback-kit's retries
    @ck.callback_handler(heartbeat_interval=0, retry=RetryPolicy(base_delay=0.05, max_delay=0.2))
    def approve(order: dict[str, Any]) -> dict[str, Any]:
        return {"approved": True}

    # WHEN a record comes in with 3 s left
    began = time.monotonic()
    response = approve(sqs_event({"TaskToken": TOKEN, "total": 12}), FakeLambdaContext(remaining_ms=3_000))
    returned = time.monotonic()

    # THEN the handler returned in time, with the record handed back
    assert returned - began < 3.0
    assert response is not None
    assert len(response["batchItemFailures"]) == 1
    # AND every attempt reached the endpoint before the return: none is left to land after it
    time.sleep(1.0)  # what an abandoned retry would need to show itself
    assert slow_endpoint.arrivals
    assert max(slow_endpoint.arrivals) < returned
