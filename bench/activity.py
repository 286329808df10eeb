"""Activity worker throughput: tasks per second at concurrency 1, 8 and 32 against a naive polling loop.

Both sides poll the in-memory Step Functions fake (``FakeStepFunctions.get_activity_task``), where every API
call (GetActivityTask, SendTaskSuccess, SendTaskHeartbeat) takes a fixed simulated latency, and each task's
work is I/O-bound (a sleep). The naive side is the loop people write first: one thread, ``get_activity_task``,
work, ``send_task_success``, repeat. Each callback-kit worker is started first and measured from the moment the
tasks are queued to the moment the last one is answered (steady state, not thread start-up).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from bench.common import Row, median

ARN = "arn:aws:states:us-east-1:123456789012:activity:bench"
#: Simulated round trip of each Step Functions API call.
API_LATENCY = 0.020
#: Each task's I/O-bound work.
WORK_SECONDS = 0.020


def _work(payload: Any) -> dict[str, Any]:
    time.sleep(WORK_SECONDS)
    return {"ok": True}


def _fake() -> Any:
    from callback_kit.testing import FakeStepFunctions

    # Idle polls are held 1 s, as AWS holds them 60 s; long enough that the worker never backs off between them.
    return FakeStepFunctions(latency=API_LATENCY, activity_poll_seconds=1.0)


def _naive(n: int) -> float:
    """Seconds a single-threaded get_activity_task loop takes to answer ``n`` queued tasks."""
    fake = _fake()
    tokens = [fake.add_activity_task(ARN, {"i": i}) for i in range(n)]
    start = time.perf_counter()
    done = 0
    while done < n:
        task = fake.get_activity_task(activityArn=ARN, workerName="naive")
        token = task.get("taskToken")
        if not token:
            continue
        output = _work(json.loads(task["input"]))
        fake.send_task_success(taskToken=token, output=json.dumps(output))
        done += 1
    elapsed = time.perf_counter() - start
    assert all(fake.outcome(t) is not None for t in tokens)
    return elapsed


def _worker(n: int, concurrency: int) -> float:
    """Seconds an ActivityWorker with ``concurrency`` slots takes to answer ``n`` tasks queued at once."""
    from callback_kit.activity import ActivityWorker

    fake = _fake()
    worker = ActivityWorker(ARN, _work, concurrency=concurrency, client=fake, shutdown_grace_seconds=5)
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while fake.open_polls < concurrency and time.monotonic() < deadline:
            time.sleep(0.01)  # every slot has its long poll open: the worker is warm
        finished = threading.Event()
        start = time.perf_counter()
        tokens = [fake.add_activity_task(ARN, {"i": i}) for i in range(n)]
        while not finished.is_set():
            if worker.stats.succeeded >= n:
                finished.set()
            else:
                time.sleep(0.002)
        elapsed = time.perf_counter() - start
    finally:
        worker.stop()
        worker.wait(10)
    missing = [t for t in tokens if fake.outcome(t) is None]
    if missing:
        raise AssertionError(f"concurrency {concurrency}: {len(missing)} of {n} tasks were not answered")
    return elapsed


def run(quick: bool) -> list[Row]:
    """Run the activity benchmark (quick: fewer tasks, one repetition)."""
    per_slot = 3 if quick else 8
    reps = 1 if quick else 3
    naive_n = 5 if quick else 15
    naive_rate = median([naive_n / _naive(naive_n) for _ in range(reps)])
    _worker(4, 2)  # warm-up: first-use imports, the heartbeat thread, the default logger
    rows = []
    for concurrency in (1, 8, 32):
        n = concurrency * per_slot
        rate = median([n / _worker(n, concurrency) for _ in range(reps)])
        target = ">= 20x" if concurrency == 32 else ""
        rows.append(
            Row(
                "activity",
                f"concurrency {concurrency}: tasks/s ({API_LATENCY * 1000:.0f} ms/call, "
                f"{WORK_SECONDS * 1000:.0f} ms work)",
                f"{rate:.1f}/s",
                f"{naive_rate:.1f}/s",
                "naive single-threaded poll loop",
                rate / naive_rate,
                "x throughput",
                target,
                (rate / naive_rate >= 20) if target else None,
            )
        )
    return rows
