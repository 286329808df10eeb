"""Token secrecy where the token rides in a task's input too: the poll client's botocore log, and the reprs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callback_kit.activity import ActivityWorker
from callback_kit.logs import BOTOCORE_LOGGERS, fingerprint, redact_tokens
from callback_kit.poller import poll_client
from callback_kit.sources import parse_activity_task, parse_event
from callback_kit.testing import FakeStepFunctions, sqs_event
from tests.reliability.harness import ListHandler, captured_logs

ARN = "arn:aws:states:us-east-1:123456789012:activity:secret"
TOKEN = "AQCSECRET" + "k3y" * 200 + "END"


def _assert_no_token(lines: list[str]) -> None:
    # The whole token, and any 24-character slice of it (a token cut short in a message is still a leak).
    probes = {TOKEN, *(TOKEN[i : i + 24] for i in range(0, len(TOKEN) - 24, 97))}
    for line in lines:
        for probe in probes:
            assert probe not in line, f"token leaked: {line[:300]}"


class _Activity(BaseHTTPRequestHandler):
    """A Step Functions endpoint with one activity task whose input carries the token twice more."""

    protocol_version = "HTTP/1.1"
    task_input = json.dumps({"context": {"Task": {"Token": TOKEN}}, "cb": TOKEN, "order": 7})

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.dumps({"taskToken": TOKEN, "input": self.task_input}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Activity)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    # Dummy credentials and a region, as on a machine without AWS configuration; never real ones.
    for name, value in {
        "AWS_ENDPOINT_URL": url,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()


def test_the_poll_clients_debug_log_masks_the_token_inside_the_input(endpoint: str) -> None:
    # GIVEN the worker's poll client with botocore logging at DEBUG, and a task whose input carries the token
    # under context.Task.Token and under a key of the user's own
    with captured_logs(*BOTOCORE_LOGGERS) as handler:
        client = poll_client()

        # WHEN it polls and gets the task
        response = client.get_activity_task(activityArn=ARN, workerName="w")

    # THEN botocore logged the response body (the test is not vacuous) with every copy of the token masked
    assert response["taskToken"] == TOKEN
    bodies = [line for line in _lines(handler) if "Response body" in line]
    assert bodies
    assert all(line.count(fingerprint(TOKEN)) == 3 for line in bodies)
    _assert_no_token(_lines(handler))


def _lines(handler: ListHandler) -> list[str]:
    return [record.getMessage() for record in handler.records]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('\\"Token\\":\\"abc\\"', '\\"Token\\":\\"' + fingerprint("abc") + '\\"'),
        ("'MyTaskToken': 'abc'", "'MyTaskToken': '" + fingerprint("abc") + "'"),
        ("'nextToken': 'abc', 'X-Amz-Security-Token': 'x'", "'nextToken': 'abc', 'X-Amz-Security-Token': 'x'"),
    ],
    ids=["context-task-token", "my-task-token", "not-a-task-token-key"],
)
def test_redaction_covers_every_key_a_task_token_travels_under(text: str, expected: str) -> None:
    # GIVEN / WHEN a text with a token key of another spelling is redacted / THEN only task token keys are masked
    assert redact_tokens(text) == expected


def test_records_and_results_show_a_fingerprint_in_their_repr() -> None:
    # GIVEN a record of each kind of source, and an activity task run to its result
    [sqs] = parse_event(sqs_event({"TaskToken": TOKEN, "n": 1}))
    activity = parse_activity_task(TOKEN, '{"n": 1}')
    fake = FakeStepFunctions()
    fake.open_task(TOKEN)
    worker = ActivityWorker(ARN, lambda payload: payload, client=fake, heartbeat_interval=0)
    result = worker.run_one({"taskToken": TOKEN, "input": '{"n": 1}'})

    # WHEN they are printed, as a debugger, a test failure or a log line of the user's would print them
    shown = [repr(sqs), repr(activity), repr(result), str(result)]

    # THEN the token's fingerprint is there and the token is not
    _assert_no_token(shown)
    assert all(fingerprint(TOKEN) in text for text in shown)
