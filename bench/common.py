"""Shared pieces: result rows, timing helpers, the table, a moto server in a child process, and task tokens."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: The fake AWS environment every benchmark process runs in (no benchmark may reach AWS).
FAKE_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
#: Environment variable through which the runner hands the moto server's URL to benchmark processes.
ENV_MOTO_URL = "BENCH_MOTO_URL"
ROLE_ARN = "arn:aws:iam::123456789012:role/bench"


@dataclass
class Row:
    """One line of the results table: callback-kit against a baseline, and the ratio between them.

    Attributes:
        bench: the benchmark (``cold start``, ``per-task``, ...).
        case: what was measured within it.
        ours: callback-kit's figure, formatted with its unit.
        base: the baseline's figure, formatted with its unit.
        baseline: what the baseline is.
        ratio: ours / baseline (or baseline / ours for speed-ups; ``ratio_label`` says which).
        ratio_label: how to read ``ratio`` (``"x time"``, ``"x faster"``, ...).
        target: the target as text, or ``""`` when the row is informational.
        met: whether the target was met (``None`` when there is no target).
    """

    bench: str
    case: str
    ours: str
    base: str
    baseline: str
    ratio: float
    ratio_label: str
    target: str = ""
    met: bool | None = None


def apply_fake_aws_env() -> None:
    """Point this process at a fake account; drop any profile that could reach a real one."""
    for key, value in FAKE_AWS_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_PROFILE", None)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took, on the monotonic performance counter."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table."""
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal, pasteable into the docs)."""
    header = ["benchmark", "case", "callback-kit", "baseline", "baseline is", "ratio", "target", "met"]
    lines = [header]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append([r.bench, r.case, r.ours, r.base, r.baseline, f"{r.ratio:.2f} {r.ratio_label}", r.target, met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def rows_to_json(rows: Sequence[Row]) -> str:
    """The rows as a JSON array."""
    return json.dumps([asdict(r) for r in rows], indent=2)


def rows_from_json(text: str) -> list[Row]:
    """The inverse of :func:`rows_to_json`."""
    return [Row(**item) for item in json.loads(text)]


# -- moto server ----------------------------------------------------------------------------------------------

_SERVER_CODE = """
import logging, os, sys
logging.disable(logging.CRITICAL)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ["MOTO_PORT"]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # serve until the parent closes our stdin (or dies)
server.stop()
"""


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run moto's ThreadedMotoServer, Step Functions simulator on, in a child process; yield its URL.

    A child process, not a thread: a server thread would share the GIL with the code under measurement and
    charge its request handling to whichever side happened to be running.
    """
    port = free_port()
    env = {**os.environ, **FAKE_AWS_ENV, "MOTO_PORT": str(port)}
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
            raise RuntimeError("the moto server did not start")
        url = f"http://127.0.0.1:{port}"
        body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
        # Our own server on the loopback interface: the URL's scheme is fixed.
        config_url = url + "/moto-api/config"
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(config_url, data=body, method="POST", headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
        yield url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class TokenFactory:
    """Real task tokens from real executions on the moto simulator.

    One execution of a state machine whose Map state fans out to ``n`` ``sqs:sendMessage.waitForTaskToken``
    tasks gives ``n`` open tokens, each answerable once, read back from the queue the tasks write to.
    """

    def __init__(self, url: str) -> None:
        import boto3

        self.url = url
        self.sfn = boto3.client("stepfunctions", endpoint_url=url)
        self.sqs = boto3.client("sqs", endpoint_url=url)
        name = f"bench-{uuid.uuid4().hex[:8]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        task = {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": self.queue_url, "MessageBody": {"TaskToken.$": "$$.Task.Token", "n.$": "$"}},
            "TimeoutSeconds": 900,
            "End": True,
        }
        definition = {
            "StartAt": "FanOut",
            "States": {
                "FanOut": {
                    "Type": "Map",
                    "ItemsPath": "$.items",
                    "MaxConcurrency": 0,
                    "Iterator": {"StartAt": "Wait", "States": {"Wait": task}},
                    "End": True,
                }
            },
        }
        self.state_machine = self.sfn.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn=ROLE_ARN
        )["stateMachineArn"]

    def tokens(self, n: int, *, timeout: float = 120.0) -> list[str]:
        """Start executions with ``n`` waiting tasks in all (at most 200 each) and return their ``n`` tokens."""
        for first in range(0, n, 200):
            self.sfn.start_execution(
                stateMachineArn=self.state_machine,
                name=f"x-{uuid.uuid4().hex[:12]}",
                input=json.dumps({"items": list(range(first, min(n, first + 200)))}),
            )
        found: list[str] = []
        deadline = time.monotonic() + timeout
        while len(found) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"got {len(found)} of {n} task tokens from the simulator")
            answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = answer.get("Messages", [])
            for message in messages:
                found.append(json.loads(message["Body"])["TaskToken"])
            if messages:
                self.sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
                )
        return found
