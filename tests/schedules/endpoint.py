"""A local Step Functions endpoint in front of the schedule fakes, for runs with callback-kit's real botocore clients.

botocore's DEBUG logging prints request and response bodies, task tokens included; only a real client shows
whether callback-kit's redaction covers every client it builds. The endpoint speaks the JSON protocol
(``X-Amz-Target: AWSStepFunctions.<Operation>``), hands each call to the fake that owns its token (the fake of
the current schedule for polls), and answers errors as the service does; a fault that loses the response (a
dropped connection, a read timeout) closes the connection without one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from callback_kit import completion, logs, ratelimit
from tests.schedules.fake import ScheduleFake

_lock = threading.Lock()
_server: _Server | None = None
#: The fake that owns each token, and the one polls go to (the current schedule's).
_owners: dict[str, ScheduleFake] = {}
_current: list[ScheduleFake] = []

_METHODS = {
    "SendTaskSuccess": ("send_task_success", ("taskToken", "output")),
    "SendTaskFailure": ("send_task_failure", ("taskToken", "error", "cause")),
    "SendTaskHeartbeat": ("send_task_heartbeat", ("taskToken",)),
    "GetActivityTask": ("get_activity_task", ("activityArn", "workerName")),
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the server's own access log would print bodies
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        method, fields = _METHODS.get(operation, ("", ()))
        fake = _owners.get(body.get("taskToken", "")) or (_current[-1] if _current else None)
        if not method or fake is None:
            self._answer(400, {"__type": "InvalidToken", "message": "unknown task"})
            return
        try:
            result = getattr(fake, method)(**{k: body[k] for k in fields if k in body})
        except ClientError as exc:
            error = exc.response["Error"]
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            self._answer(status, {"__type": error["Code"], "message": error.get("Message", "")})
            return
        except Exception:  # a fault that loses the response: drop the connection without one
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(2)
            return
        self._answer(200, {k: v for k, v in result.items() if k != "ResponseMetadata"})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        with contextlib.suppress(OSError):  # the client gave up (its timeout): the answer goes nowhere, as on AWS
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # a client that hung up is part of the schedule, not an error to print


def url() -> str:
    """The endpoint's URL, starting it on first use (one per process, on a free loopback port)."""
    global _server
    with _lock:
        if _server is None:
            _server = _Server(("127.0.0.1", 0), _Handler)
            threading.Thread(target=_server.serve_forever, name="schedules-endpoint", daemon=True).start()
        return f"http://127.0.0.1:{_server.server_address[1]}"


@contextlib.contextmanager
def serving(fake: ScheduleFake, tokens: list[str | None], *, activity: bool) -> Iterator[Any]:
    """Route the schedule's tokens (and polls) to ``fake`` and yield a client callback-kit builds for the endpoint.

    The client is built the way callback-kit builds its own: ``completion.default_client()`` for the Lambda
    handler, ``activity.poll_client()`` for the activity worker (which then uses it for its callbacks too). As in
    a fresh process, no redaction filter is installed beforehand: whatever keeps tokens out of botocore's logs
    must be set up by the code under test. The environment and the process-wide client are put back at once, so
    that nothing left running after the schedule can reach anything but this endpoint.
    """
    for token in tokens:
        if token is not None:
            _owners[token] = fake
    _current.append(fake)
    # A fresh process has no rate limiter yet: one left paced by an earlier schedule's throttles (they all share
    # this endpoint) would slow this one down for reasons of another schedule's making.
    with ratelimit._limiters_lock:
        ratelimit._limiters.clear()
    filtered = [name for name in logs.BOTOCORE_LOGGERS if logs._redactor in logging.getLogger(name).filters]
    for name in filtered:
        logging.getLogger(name).removeFilter(logs._redactor)
    try:
        yield _build(activity)
    finally:
        _current.remove(fake)
        for name in filtered:
            logging.getLogger(name).addFilter(logs._redactor)


def _build(activity: bool) -> Any:
    # Dummy credentials and a region, as on a machine without AWS configuration; never real ones.
    env = {
        "AWS_ENDPOINT_URL": url(),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }
    saved_env = {name: os.environ.get(name) for name in env}
    saved_client = completion._default_client
    os.environ.update(env)
    try:
        if activity:
            from callback_kit.activity import poll_client

            return poll_client()
        completion._default_client = None
        return completion.default_client()
    finally:
        completion._default_client = saved_client
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
