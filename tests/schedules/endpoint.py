"""A local Step Functions endpoint in front of the schedule fakes, for runs with callback-kit's real botocore clients.

botocore's DEBUG logging prints request and response bodies, task tokens included; only a real client shows
whether callback-kit's redaction covers every client it builds. The endpoint speaks the JSON protocol
(``X-Amz-Target: AWSStepFunctions.<Operation>``), hands each call to the fake that owns its token (the fake of
the current schedule for polls), and answers errors as the service does; a fault that loses the response (a
dropped connection, a read timeout) closes the connection without one.

It also serves the botocore clients a user may pass as ``client=`` (``plan.USER_CLIENTS``): one with event hooks,
one with botocore's retries on, one with ``verify=False`` against the endpoint's HTTPS twin, whose certificate
is self-signed (made at first use, for 127.0.0.1 only). Every user client marks its requests from a hook, and the
endpoint counts those that arrive unmarked: a call that went around the user's client.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import os
import ssl
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from callback_kit import logs
from callback_kit.task import clients, ratelimit
from tests.schedules.fake import ScheduleFake

_lock = threading.Lock()
_server: _Server | None = None
_tls_server: _Server | None = None
#: The header a user's client sets from its hooks, and the fakes whose calls arrived without it.
MARK_HEADER = "X-Explorer-Client"
_unmarked: Counter[int] = Counter()
#: The fake that owns each token, and the fake of each schedule's path (where its clients' polls go).
_owners: dict[str, ScheduleFake] = {}
_paths: dict[str, ScheduleFake] = {}

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
        # A poll goes to the fake of the schedule whose client made it, even when it arrives after that schedule
        # ended (a worker's poll still open, or retried by the user's client): it never takes a later one's task.
        fake = _owners.get(body.get("taskToken", "")) or _paths.get(self.path.rstrip("/"))
        if not method or fake is None:
            self._answer(400, {"__type": "InvalidToken", "message": "unknown task"})
            return
        if self.headers.get(MARK_HEADER) != "user":
            _unmarked[id(fake)] += 1
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


def url(path: str = "") -> str:
    """The endpoint's URL (with a schedule's ``path``), starting it on first use (one per process, on a free
    loopback port)."""
    global _server
    with _lock:
        if _server is None:
            _server = _Server(("127.0.0.1", 0), _Handler)
            threading.Thread(target=_server.serve_forever, name="schedules-endpoint", daemon=True).start()
        return f"http://127.0.0.1:{_server.server_address[1]}{path}"


def tls_url(path: str = "") -> str:
    """The endpoint's HTTPS twin, with a self-signed certificate for 127.0.0.1 (started on first use)."""
    global _tls_server
    with _lock:
        if _tls_server is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self_signed(Path(tempfile.mkdtemp(prefix="schedules-tls-"))))
            server = _Server(("127.0.0.1", 0), _Handler)
            server.socket = context.wrap_socket(server.socket, server_side=True)
            threading.Thread(target=server.serve_forever, name="schedules-tls-endpoint", daemon=True).start()
            _tls_server = server
        return f"https://127.0.0.1:{_tls_server.server_address[1]}{path}"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key, written to ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def foreign_calls(fake: ScheduleFake) -> int:
    """Calls routed to ``fake`` that arrived without the mark of a user's client's hooks."""
    return _unmarked[id(fake)]


@contextlib.contextmanager
def serving(fake: ScheduleFake, tokens: list[str | None], *, activity: bool, user: str | None = None) -> Iterator[Any]:
    """Route the schedule's tokens (and polls) to ``fake`` and yield a client for the endpoint: a user's (``user``,
    one of ``plan.USER_CLIENTS``), or else one callback-kit builds.

    The client is built the way callback-kit builds its own: ``clients.default_client()`` for the Lambda
    handler, ``activity.poll_client()`` for the activity worker (which then uses it for its callbacks too). As in
    a fresh process, no redaction filter is installed beforehand: whatever keeps tokens out of botocore's logs
    must be set up by the code under test. The environment and the process-wide client are put back at once, so
    that nothing left running after the schedule can reach anything but this endpoint.

    A user's client is built as docs/reliability.md asks (and with ``install_token_redaction()`` called, as it
    asks of anyone who turns botocore's DEBUG logging on with their own client).
    """
    for token in tokens:
        if token is not None:
            _owners[token] = fake
    path = f"/schedule-{len(_paths)}"
    _paths[path] = fake
    _unmarked[id(fake)] = 0
    # A fresh process has no rate limiter yet: one left paced by an earlier schedule's throttles (they all share
    # this endpoint) would slow this one down for reasons of another schedule's making.
    with ratelimit._limiters_lock:
        ratelimit._limiters.clear()
    if user is not None:
        yield _build_user(user, path)
        return
    filtered = [name for name in logs.BOTOCORE_LOGGERS if logs._redactor in logging.getLogger(name).filters]
    for name in filtered:
        logging.getLogger(name).removeFilter(logs._redactor)
    try:
        yield _build(activity, path)
    finally:
        for name in filtered:
            logging.getLogger(name).addFilter(logs._redactor)


def _build(activity: bool, path: str) -> Any:
    # Dummy credentials and a region, as on a machine without AWS configuration; never real ones.
    env = {
        "AWS_ENDPOINT_URL": url(path),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }
    saved_env = {name: os.environ.get(name) for name in env}
    saved_client = clients._default_client
    os.environ.update(env)
    try:
        if activity:
            from callback_kit.activity import poll_client

            return poll_client()
        clients._default_client = None
        return clients.default_client()
    finally:
        clients._default_client = saved_client
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _mark_call(params: dict[str, Any], **kwargs: Any) -> None:
    params["headers"][MARK_HEADER] = "user"  # a before-call hook: the request is not built yet


def _mark_send(request: Any, **kwargs: Any) -> None:
    request.headers[MARK_HEADER] = "user"  # a before-send hook: the request is built and signed


def _build_user(kind: str, path: str) -> Any:
    """A client as a user builds one: their own session and Config, dummy credentials, hooks of their own."""
    import botocore.session
    from botocore.config import Config

    logs.install_token_redaction()
    if kind == "verify":
        from urllib3.exceptions import InsecureRequestWarning

        # As a user who chose verify=False would: urllib3 otherwise warns on every request.
        warnings.simplefilter("ignore", InsecureRequestWarning)
    attempts = 2 if kind == "retries" else 1
    config = Config(
        connect_timeout=1,
        read_timeout=2,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=64,
    )
    client = botocore.session.get_session().create_client(
        "stepfunctions",
        region_name="us-east-1",
        endpoint_url=tls_url(path) if kind == "verify" else url(path),
        verify=False if kind == "verify" else None,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # a dummy, as on a machine without AWS configuration
        config=config,
    )
    if kind == "hooks":
        client.meta.events.register("before-call.states", _mark_call)
    else:
        client.meta.events.register("before-send.states", _mark_send)
    return client
