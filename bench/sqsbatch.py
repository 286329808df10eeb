"""SQS batch throughput: I/O-bound records through the decorator against a sequential loop and powertools.

Each record's work sleeps (100 ms by default: a call to a slow downstream service) and is CPU-light. All three
sides answer through the same in-memory Step Functions fake with a fixed latency per call, standing in for the
real API's round trip, so what differs is how the records are scheduled:

* callback-kit: ``@callback_handler`` with its defaults (``max_concurrency`` 10), and, for the batch of 100,
  also with ``max_concurrency=100``;
* hand-written: ``for record in event["Records"]``: parse, work, ``send_task_success``, report failures;
* powertools: ``process_partial_response`` with a ``BatchProcessor`` whose record handler works and then calls
  ``send_task_success`` itself.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import Row, median, ms, timed

#: Simulated round trip of one Step Functions API call.
API_LATENCY = 0.010

Event = dict[str, Any]


def _handwritten(client: Any, work: Callable[[], None]) -> Callable[[Event, Any], dict[str, Any]]:
    def handler(event: Event, context: Any) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            try:
                body = json.loads(record["body"])
                work()
                client.send_task_success(taskToken=body["TaskToken"], output=json.dumps({"ok": True}))
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler


def _powertools(client: Any, work: Callable[[], None]) -> Callable[[Event, Any], Any]:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record: SQSRecord) -> None:
        body = json.loads(record.body)
        work()
        client.send_task_success(taskToken=body["TaskToken"], output=json.dumps({"ok": True}))

    def handler(event: Event, context: Any) -> Any:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


def _decorated(client: Any, work: Callable[[], None], **options: Any) -> Callable[[Event, Any], Any]:
    import callback_kit as ck

    def fn(payload: dict[str, Any]) -> dict[str, Any]:
        work()
        return {"ok": True}

    return ck.callback_handler(client=client, **options)(fn)


def run(quick: bool) -> list[Row]:
    """Run the SQS batch benchmarks: throughput against the baselines, then per-record overhead vs batch size."""
    return throughput(quick) + batch_scaling(quick)


def throughput(quick: bool) -> list[Row]:
    """Batches of I/O-bound records (quick: one repetition of the batch of 10)."""
    from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event

    rows: list[Row] = []
    # Quick mode (CI) keeps the batch of 10 only: the batch of 100 takes seconds on the sequential sides.
    cases = [(10, 0.100, 1)] if quick else [(10, 0.100, 3), (100, 0.100, 1)]
    for size, work_s, reps in cases:
        client = FakeStepFunctions(latency=API_LATENCY)
        pause = [0.0]  # no work while warming up

        def work(pause: list[float] = pause) -> None:
            time.sleep(pause[0])

        sides: dict[str, Callable[[Event, Any], Any]] = {
            "callback-kit": _decorated(client, work),
            "hand-written loop": _handwritten(client, work),
            "powertools BatchProcessor": _powertools(client, work),
        }
        if size > 10:
            sides["callback-kit max_concurrency=100"] = _decorated(client, work, max_concurrency=100)
        times: dict[str, list[float]] = {name: [] for name in sides}
        for rep in range(reps + 1):
            # Repetition 0 warms up (imports, the client, worker threads), as a warm Lambda sandbox is.
            pause[0] = work_s if rep else 0.0
            for name, handler in sides.items():
                tokens = [client.open_task() for _ in range(size)]
                event = sqs_event(*({"TaskToken": t, "i": i} for i, t in enumerate(tokens)))
                elapsed = timed(lambda h=handler, e=event: h(e, FakeLambdaContext()))  # type: ignore[misc]
                answered = [t for t in tokens if client.outcome(t) == ("success", {"ok": True})]
                if len(answered) != size:
                    raise AssertionError(f"{name}: {size - len(answered)} of {size} tasks were not answered")
                if rep:
                    times[name].append(elapsed)
        case = f"batch of {size}, {work_s * 1000:.0f} ms work/record"
        for name in ("callback-kit", "callback-kit max_concurrency=100"):
            if name not in times:
                continue
            ours = median(times[name])
            for base_name in ("hand-written loop", "powertools BatchProcessor"):
                base = median(times[base_name])
                label = case if name == "callback-kit" else f"{case}, {name.split(' ', 1)[1]}"
                target = ">= 7x" if size == 10 and name == "callback-kit" else ""
                rows.append(
                    Row(
                        "SQS batch",
                        label,
                        ms(ours),
                        ms(base),
                        base_name,
                        base / ours,
                        "x faster",
                        target,
                        (base / ours >= 7) if target else None,
                    )
                )
    return rows


_batches = itertools.count()


def _per_record(handler: Callable[[Event, Any], Any], size: int, reps: int) -> float:
    """Median seconds per record over ``reps`` batches of ``size`` records (null client: no latency)."""
    from callback_kit.testing import FakeLambdaContext, sqs_event

    samples = []
    for _rep in range(reps):
        # Tokens never repeat across calls: a token seen before is a duplicate, acknowledged without running.
        batch = next(_batches)
        event = sqs_event(*({"TaskToken": f"t-{batch}-{i:05d}" + "x" * 600, "i": i} for i in range(size)))
        samples.append(timed(lambda e=event: handler(e, FakeLambdaContext(remaining_ms=900_000))) / size)  # type: ignore[misc]
    return median(samples)


def overhead_curve(quick: bool) -> list[tuple[int, float]]:
    """(batch size, callback-kit's per-record overhead over the hand-written loop, seconds), null client.

    The sizes and the two sides are measured in interleaved rounds (each round: every size, both sides, about the
    same number of records per size), and each size's figure is the median over the rounds: this machine's speed
    drifts by tens of percent over seconds, and sizes measured one after another would compare two speeds.
    """
    from bench.pertask import NullClient

    client = NullClient()
    ours = _decorated(client, lambda: None)
    base = _handwritten(client, lambda: None)
    _per_record(ours, 100, 2)  # warm up: imports, worker threads
    sizes = (100, 10_000) if quick else (100, 300, 1000, 3000, 10_000)
    rounds = 3 if quick else 7
    per_round = 2_000 if quick else 10_000  # records per size and side in each round
    samples: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(rounds):
        for size in sizes:
            reps = max(1, per_round // size)
            samples[size].append(_per_record(ours, size, reps) - _per_record(base, size, reps))
    return [(size, median(samples[size])) for size in sizes]


def batch_scaling(quick: bool) -> list[Row]:
    """Target 3: per-record overhead at 10,000 records <= 1.2x that at 100 (null client, default options)."""
    points = dict(overhead_curve(quick))
    small, large = points[100], points[10_000]
    return [
        Row(
            "SQS batch",
            "per-record overhead, 10,000 records (null client)",
            f"{large * 1e6:.0f} us",
            f"{small * 1e6:.0f} us",
            "the same at 100 records",
            large / small,
            "x per record",
            "<= 1.2x",
            large / small <= 1.2,
        )
    ]
