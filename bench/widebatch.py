"""Wide batches over HTTP: SQS batches answered many at a time through real botocore clients.

Batches of 100 records whose work is trivial, each record answered with ``SendTaskSuccess`` through a real
botocore client against the local endpoint (:mod:`bench.endpoint`, 30 ms per call), at several concurrencies:

* callback-kit: ``@callback_handler(max_concurrency=C)`` with its default client;
* hand-written: a ``ThreadPoolExecutor(C)`` over the records, each parsed and answered with ``json`` and
  ``send_task_success`` on one boto3 client built at import: how a concurrent handler is written by hand.

Per concurrency: the median wall time per batch (the floor is ``ceil(100 / C)`` calls of 30 ms), and the HTTP
connections opened per batch once the first batch has run (counted from urllib3's own log). A client keeps a
fixed number of connections (botocore's default is 10); every call beyond them opens a connection, uses it once
and discards it. On the loopback interface that costs little time; against AWS each is a TLS handshake, so the
connection count is the figure to read.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
from typing import Any

from bench.common import Row, median, ms, timed
from bench.endpoint import sfn_endpoint

RECORDS = 100
API_LATENCY = 0.030


class _ConnectionCounter(logging.Handler):
    """Counts urllib3's "Starting new HTTP connection" lines."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.opened = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Starting new HTTP"):
            self.opened += 1


def _handwritten(concurrency: int) -> Any:
    import boto3

    client = boto3.client("stepfunctions")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)

    def answer(record: dict[str, Any]) -> None:
        body = json.loads(record["body"])
        client.send_task_success(taskToken=body["TaskToken"], output=json.dumps({"ok": True, "n": body["n"]}))

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        records = event["Records"]
        for record, future in zip(records, [pool.submit(answer, r) for r in records], strict=True):
            try:
                future.result()
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler


def _decorated(concurrency: int) -> Any:
    import callback_kit as ck

    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "n": payload["n"]}

    return ck.callback_handler(max_concurrency=concurrency)(answer)


def run(quick: bool) -> list[Row]:
    """Batches of 100 at each concurrency, the two sides alternating batch by batch."""
    from callback_kit.testing import FakeLambdaContext, sqs_event

    batches = 4 if quick else 12
    concurrencies = (10, 100) if quick else (10, 50, 100)
    counter = _ConnectionCounter()
    urllib3_log = logging.getLogger("urllib3.connectionpool")
    urllib3_log.addHandler(counter)
    urllib3_log.setLevel(logging.DEBUG)
    rows: list[Row] = []
    with sfn_endpoint(API_LATENCY) as url:
        os.environ["AWS_ENDPOINT_URL"] = url
        for concurrency in concurrencies:
            sides = {"decorated": _decorated(concurrency), "handwritten": _handwritten(concurrency)}
            times: dict[str, list[float]] = {side: [] for side in sides}
            opened: dict[str, int] = dict.fromkeys(sides, 0)
            for i in range(batches + 1):
                order = tuple(sides) if i % 2 == 0 else tuple(reversed(sides))
                for side in order:
                    records = (
                        {"TaskToken": f"tok-{concurrency}-{side}-{i}-{n}" + "x" * 600, "n": n} for n in range(RECORDS)
                    )
                    event = sqs_event(*records)
                    context = FakeLambdaContext(remaining_ms=30_000)
                    before = counter.opened
                    elapsed = timed(lambda h=sides[side], e=event, c=context: h(e, c))  # type: ignore[misc]
                    if i:  # the first batch of each side opens its connections
                        times[side].append(elapsed)
                        opened[side] += counter.opened - before
            ours, base = median(times["decorated"]), median(times["handwritten"])
            floor = -(-RECORDS // concurrency) * API_LATENCY
            rows.append(
                Row(
                    "wide batch",
                    f"batch of {RECORDS}, concurrency {concurrency}, 30 ms/call: time (floor {ms(floor)})",
                    ms(ours),
                    ms(base),
                    "hand-written: thread pool + one boto3 client",
                    base / ours,
                    "x faster",
                )
            )
            rows.append(
                Row(
                    "wide batch",
                    f"batch of {RECORDS}, concurrency {concurrency}: connections opened per batch",
                    f"{opened['decorated'] / batches:.1f}",
                    f"{opened['handwritten'] / batches:.1f}",
                    "hand-written: thread pool + one boto3 client",
                    (opened["decorated"] + 1) / (opened["handwritten"] + 1),
                    "x (+1) connections",
                )
            )
    urllib3_log.removeHandler(counter)
    return rows
