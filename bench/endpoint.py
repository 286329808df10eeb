"""A local HTTP endpoint that answers SendTask* like Step Functions does, after a fixed delay.

Real botocore clients talk to it over loopback (``endpoint_url``), so both sides of a comparison pay the real
cost of botocore (serialising, signing, parsing) and a realistic round trip, without moto's per-request work.
It runs in a child process so that its request handling does not share the GIL with the code under
measurement. Every request gets ``200 {}``, which is what SendTaskSuccess, SendTaskFailure and
SendTaskHeartbeat return.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from bench.common import FAKE_AWS_ENV, free_port

_SERVER_CODE = """
import os, socket, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = float(os.environ["ENDPOINT_DELAY"])

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's pooled connections expect

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs add ~40 ms per call.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if DELAY:
            time.sleep(DELAY)
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default backlog of 5 resets bursts of connections that AWS would accept

server = Server(("127.0.0.1", int(os.environ["ENDPOINT_PORT"])), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def sfn_endpoint(delay: float) -> Iterator[str]:
    """Serve the fake Step Functions API on 127.0.0.1, ``delay`` seconds per call; yield its URL."""
    port = free_port()
    env = {**os.environ, **FAKE_AWS_ENV, "ENDPOINT_PORT": str(port), "ENDPOINT_DELAY": str(delay)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the local Step Functions endpoint did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
