"""Per-task overhead: the decorator against the hand-written handler, at zero latency and at 30 ms per call.

* **Zero latency** (a null client whose calls return at once): the CPU time callback-kit adds per task, direct
  invoke and SQS batches of 10, measured as process CPU time (all threads) over many tasks on each side; then
  the same in a process pinned to one CPU, to show what the hand-off between CPUs costs.
* **30 ms per call** with a real botocore client on both sides, against :mod:`bench.endpoint` on 127.0.0.1,
  which sleeps 30 ms and answers like Step Functions. Direct-invoke tasks alternate between the sides (ABBA
  order), with a Lambda context so that the deadline guard is on; each side's figure is its median.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.common import Row, median, ms, rows_from_json, timed
from bench.endpoint import sfn_endpoint

Handler = Callable[[dict[str, Any], Any], Any]


class NullClient:
    """A Step Functions client whose calls cost nothing: what is left is the handler's own work."""

    def send_task_success(self, **params: Any) -> dict[str, Any]:
        """SendTaskSuccess, answered at once."""
        return {}

    def send_task_failure(self, **params: Any) -> dict[str, Any]:
        """SendTaskFailure, answered at once."""
        return {}

    def send_task_heartbeat(self, **params: Any) -> dict[str, Any]:
        """SendTaskHeartbeat, answered at once."""
        return {}


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send stdout (where log lines go) to a sink while handlers run: still formatted and written, as in Lambda."""
    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


def _handwritten_direct(client: Any) -> Handler:
    def handler(event: dict[str, Any], context: Any) -> None:
        client.send_task_success(taskToken=event["TaskToken"], output=json.dumps({"ok": True, "n": event.get("n")}))

    return handler


def _handwritten_sqs(client: Any) -> Handler:
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            try:
                body = json.loads(record["body"])
                client.send_task_success(taskToken=body["TaskToken"], output=json.dumps({"ok": True, "n": body["n"]}))
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler


def _decorated(client: Any) -> Handler:
    import callback_kit as ck

    def fn(payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "n": payload.get("n")}

    return ck.callback_handler(client=client)(fn)


def cpu_per_task(handler: Handler, events: list[dict[str, Any]], tasks: int) -> float:
    """CPU time of the process per task, for ``handler`` invoked once per event (``tasks`` in all)."""
    from callback_kit.testing import FakeLambdaContext

    contexts = [FakeLambdaContext(remaining_ms=30_000) for _ in events]
    start = time.process_time()
    for event, context in zip(events, contexts, strict=True):
        handler(event, context)
    return (time.process_time() - start) / tasks


def zero_latency(quick: bool) -> list[Row]:
    """CPU per task with a null client: direct invokes and SQS batches of 10."""
    from callback_kit.testing import sqs_event

    n = 2000 if quick else 20000
    client = NullClient()
    rows = []

    def direct(tag: str, count: int) -> list[dict[str, Any]]:
        return [{"TaskToken": f"token-{tag}-{i:06d}" + "x" * 600, "n": i} for i in range(count)]

    def batches(tag: str, count: int) -> list[dict[str, Any]]:
        return [
            sqs_event(*({"TaskToken": f"token-{tag}-{b:05d}-{i}" + "x" * 600, "n": i} for i in range(10)))
            for b in range(count // 10)
        ]

    for case, make, ours_h, base_h in (
        ("direct invoke", direct, _decorated(client), _handwritten_direct(client)),
        ("SQS batch of 10", batches, _decorated(client), _handwritten_sqs(client)),
    ):
        # Every task has its own token, warm-up included: a token seen before is a duplicate, which callback-kit
        # acknowledges without running the function (and logs), and that is not the path measured here.
        events = make("run", n)
        warm = make("warm", max(10, n // 10))
        cpu_per_task(ours_h, warm, len(warm))
        cpu_per_task(base_h, warm, len(warm))
        ours = cpu_per_task(ours_h, events, n)
        base = cpu_per_task(base_h, events, n)
        rows.append(
            Row(
                "per-task",
                f"{case}, zero latency: added CPU per task",
                f"{(ours - base) * 1e6:.0f} us",
                f"{base * 1e6:.1f} us",
                "hand-written: json + send_task_success",
                ours / base,
                "x CPU",
                # The direct invoke's zero-latency CPU is reported, not a target: its deadline guard's hand-off
                # (invariant 4) costs a thread switch that a hand-written handler does not pay. Its target is the
                # 30 ms row; SQS records keep theirs.
                "" if case == "direct invoke" else "<= 50 us added",
                None if case == "direct invoke" else (ours - base) <= 50e-6,
            )
        )
    return rows


def _load(url: str) -> tuple[Handler, Handler]:
    os.environ["AWS_ENDPOINT_URL"] = url
    decorated = importlib.import_module("bench.handlers.decorated_handler")
    handwritten = importlib.import_module("bench.handlers.handwritten_handler")
    return decorated.handler, handwritten.handler


def real_client(quick: bool) -> list[Row]:
    """Wall time per direct-invoke task with real botocore clients, 30 ms per call, deadline guard on."""
    from callback_kit.testing import FakeLambdaContext

    n = 30 if quick else 300
    warmup = 5
    with sfn_endpoint(0.030) as url:
        decorated, handwritten = _load(url)
        sides = {"decorated": decorated, "handwritten": handwritten}
        times: dict[str, list[float]] = {"decorated": [], "handwritten": []}
        for i in range(n + warmup):
            order = ("decorated", "handwritten") if i % 2 == 0 else ("handwritten", "decorated")
            for side in order:
                event = {"TaskToken": f"token-{i:06d}-{side}" + "x" * 600, "n": i}
                context = FakeLambdaContext(remaining_ms=30_000)
                handler = sides[side]
                elapsed = timed(lambda h=handler, e=event, c=context: h(e, c))  # type: ignore[misc]
                if i >= warmup:
                    times[side].append(elapsed)
    ours, base = median(times["decorated"]), median(times["handwritten"])
    return [
        Row(
            "per-task",
            f"direct invoke, real botocore, 30 ms/call (median of {n})",
            ms(ours),
            ms(base),
            "hand-written: json + boto3 send_task_success",
            ours / base,
            "x time",
            "<= 1.01x",
            ours / base <= 1.01,
        ),
        Row(
            "per-task",
            "  overhead per task (difference of the medians)",
            ms(ours - base),
            "-",
            "the same two medians",
            (ours - base) / base,
            "of baseline",
        ),
    ]


_ONE_CPU = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # before any thread: every thread inherits it
from pathlib import Path
from bench.common import rows_to_json
from bench.pertask import _quiet_stdout, zero_latency
with _quiet_stdout():
    rows = zero_latency(sys.argv[2] == "quick")
Path(sys.argv[1]).write_text(rows_to_json(rows))
"""


def one_cpu(quick: bool) -> list[Row]:
    """The zero-latency rows again, in a process pinned to one CPU (informational; Linux only).

    A direct invoke under the deadline guard hands its task to a pooled thread and waits for it. On two CPUs the
    scheduler runs that thread on the other one, and the task's objects cross between the CPUs' caches: these rows
    show how much of the added CPU that crossing is.
    """
    if not hasattr(os, "sched_setaffinity"):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        subprocess.run(
            [sys.executable, "-c", _ONE_CPU, str(out), "quick" if quick else "full"],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        rows = rows_from_json(out.read_text())
    return [
        dataclasses.replace(row, case=row.case.replace("zero latency", "zero latency, one CPU"), target="", met=None)
        for row in rows
    ]


def run(quick: bool) -> list[Row]:
    """Both halves of the per-task benchmark, and the zero-latency half again on one CPU."""
    with _quiet_stdout():
        return zero_latency(quick) + one_cpu(quick) + real_client(quick)
