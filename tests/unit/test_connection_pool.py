"""The default client keeps as many connections as the calls a process runs at once: none is opened and thrown away.

Run against a local HTTP endpoint with the real botocore client, because what is checked is urllib3's own
behaviour: a call that finds every kept connection busy opens another, uses it once, discards it, and logs
``Connection pool is full, discarding connection`` at WARNING (a new TLS handshake per call against AWS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import callback_kit as ck
from callback_kit.task import clients, timeouts
from callback_kit.testing import FakeLambdaContext, sqs_event

CALL_SECONDS = 0.02
CONCURRENCY = 40


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # accept a burst of connections, as the service does
    daemon_threads = True
    calls = 0
    connections = 0


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(CALL_SECONDS)  # long enough that the calls of a batch overlap
        self.server.calls += 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """A local Step Functions that accepts every call, and a default client not built yet that points at it."""
    server = _Server(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    environment = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(clients, "_default_client", None)
    monkeypatch.setattr(clients, "_expected_calls", 0)
    monkeypatch.setattr(clients, "_pool_warned", False)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("remaining_ms", [30_000, 10_000], ids=["client itself", "bounded variants"])
def test_a_wide_batch_reuses_its_connections(
    endpoint: _Server, caplog: pytest.LogCaptureFixture, remaining_ms: int
) -> None:
    # GIVEN a handler that answers up to 40 records at once on the default client (with 10 s left, each call is
    # made on a variant of it bounded to the time left)
    @ck.callback_handler(max_concurrency=CONCURRENCY)
    def check(payload: dict[str, Any]) -> dict[str, Any]:
        return {"n": payload["n"]}

    # WHEN three batches of 40 records come in, one after another
    caplog.set_level(logging.DEBUG, logger="urllib3")
    for round_ in range(3):
        event = sqs_event(*({"TaskToken": f"tok-{remaining_ms}-{round_}-{n}", "n": n} for n in range(CONCURRENCY)))
        response = check(event, FakeLambdaContext(remaining_ms=remaining_ms))
        assert response == {"batchItemFailures": []}

    # THEN every call landed, no connection was thrown away, and the later batches reused the first one's (each
    # client, the default one or a bounded variant of it, has its own connections; the time left decides which variant)
    assert endpoint.calls == 3 * CONCURRENCY
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    client: Any = clients.default_client()
    recipe = timeouts._recipe(client)
    assert recipe is not None
    clients_used = 1 if remaining_ms == 30_000 else len(recipe.variants)
    assert endpoint.connections <= CONCURRENCY * clients_used
    assert client.meta.config.max_pool_connections >= CONCURRENCY + clients.POOL_HEADROOM


def test_a_larger_concurrency_after_the_client_is_built_is_reported_once(
    endpoint: _Server, library_lines: list[logging.LogRecord]
) -> None:
    # GIVEN the default client, built for the default concurrency, and callback-kit's log lines collected
    client: Any = clients.default_client()
    kept = client.meta.config.max_pool_connections
    assert kept == clients.MIN_POOL_CONNECTIONS + clients.POOL_HEADROOM
    lines = library_lines
    # WHEN a worker then says it will make more calls at once than that, twice
    clients.expect_concurrent_calls(kept * 2)
    clients.expect_concurrent_calls(kept * 3)

    # THEN one log line says so and what to do (the client cannot grow its pool once built)
    said = [r for r in lines if "max_pool_connections" in r.getMessage()]
    assert len(said) == 1
    assert said[0].__dict__["max_pool_connections"] == kept
    assert "client=" in said[0].getMessage()
