"""Heartbeat cost: threads alive and heartbeat calls with 1, 10 and 100 open tasks.

Each side keeps N tasks open at once (an SQS batch of N records, run N at a time) while heartbeating every
``interval`` seconds against an in-memory Step Functions with a small latency per call:

* callback-kit: ``@callback_handler(heartbeat_interval=interval, max_concurrency=N)``: one scheduler thread
  beats for every open task;
* baseline: what hand-written workers do, a heartbeat thread per task (``while not done.wait(interval):
  send_task_heartbeat``) beside the same N workers.

The interval is short so that the run takes seconds; calls per minute are scaled to a 30 s interval (the
default), which is what matters against the account's SendTaskHeartbeat quota. The per-task limit is checked
on the recorded send times: no task may get two beats less than half an interval apart (a beat sent late is
followed by the next one on the task's original rhythm, so sooner than one interval later).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.common import Row

#: Simulated round trip of one SendTaskHeartbeat call.
API_LATENCY = 0.001
#: The production interval calls per minute are scaled to.
SCALE_TO_INTERVAL = 30.0
CK_THREAD = "callback-kit-heartbeat"
NAIVE_THREAD = "naive-heartbeat"


class RecordingClient:
    """Wraps a fake Step Functions client and records when each token got each heartbeat."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.beats: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def send_task_heartbeat(self, *, taskToken: str) -> Any:
        """SendTaskHeartbeat, timed."""
        with self._lock:
            self.beats[taskToken].append(time.monotonic())
        return self.inner.send_task_heartbeat(taskToken=taskToken)

    def send_task_success(self, **params: Any) -> Any:
        """SendTaskSuccess, passed through."""
        return self.inner.send_task_success(**params)

    def send_task_failure(self, **params: Any) -> Any:
        """SendTaskFailure, passed through."""
        return self.inner.send_task_failure(**params)


@contextmanager
def _thread_sampler(prefix: str, other: str) -> Iterator[dict[str, int]]:
    """Sample, every 20 ms, the threads alive and how many are named ``prefix...``; keep the maxima.

    Threads named ``other...`` belong to the other side (callback-kit keeps its idle workers between
    invocations, as a warm Lambda sandbox does) and are not counted.
    """
    peak = {"named": 0, "exact": 0, "total": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            threads = threading.enumerate()
            peak["named"] = max(peak["named"], sum(1 for t in threads if t.name.startswith(prefix)))
            peak["exact"] = max(peak["exact"], sum(1 for t in threads if t.name == prefix))
            own = [t for t in threads if not t.name.startswith((other, "bench-sampler"))]
            peak["total"] = max(peak["total"], len(own))

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def _max_per_interval(beats: dict[str, list[float]], interval: float) -> int:
    """The most beats any one task got within any window of one interval (1 means: never more than one)."""
    worst = 0
    for times in beats.values():
        times = sorted(times)
        for i, start in enumerate(times):
            # 1% slack for timer resolution: a beat exactly one interval later belongs to the next window.
            worst = max(worst, sum(1 for t in times[i:] if t < start + interval * 0.99))
    return worst


def _naive_handler(client: Any, work: Callable[[], None], interval: float, concurrency: int) -> Callable[..., Any]:
    def one(record: dict[str, Any]) -> None:
        token = json.loads(record["body"])["TaskToken"]
        done = threading.Event()

        def beat() -> None:
            while not done.wait(interval):
                client.send_task_heartbeat(taskToken=token)

        beater = threading.Thread(target=beat, name=NAIVE_THREAD, daemon=True)
        beater.start()
        try:
            work()
        finally:
            done.set()
        client.send_task_success(taskToken=token, output=json.dumps({"ok": True}))

    def handler(event: dict[str, Any], context: Any) -> None:
        with cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="naive-worker") as pool:
            list(pool.map(one, event["Records"]))

    return handler


def run(quick: bool) -> list[Row]:
    """Run the heartbeat benchmark: 0.5 s interval, tasks open 1.2 s (quick) or 3.1 s."""
    import callback_kit as ck
    from callback_kit.testing import FakeLambdaContext, FakeStepFunctions, sqs_event

    interval = 0.5
    duration = 1.2 if quick else 3.1
    rows: list[Row] = []
    for n in (1, 10, 100):
        results: dict[str, tuple[dict[str, int], RecordingClient]] = {}
        for side in ("callback-kit", "thread per task"):
            client = RecordingClient(FakeStepFunctions(latency=API_LATENCY))

            def work() -> None:
                time.sleep(duration)

            handler: Callable[..., Any]
            if side == "callback-kit":

                def fn(payload: Any, work: Callable[[], None] = work) -> dict[str, bool]:
                    work()
                    return {"ok": True}

                handler = ck.callback_handler(client=client, heartbeat_interval=interval, max_concurrency=n)(fn)
                prefix, other = CK_THREAD, "naive-"
            else:
                handler = _naive_handler(client, work, interval, n)
                prefix, other = NAIVE_THREAD, "callback-kit"
            tokens = [client.inner.open_task() for _ in range(n)]
            event = sqs_event(*({"TaskToken": t} for t in tokens))
            with _thread_sampler(prefix, other) as peak:
                handler(event, FakeLambdaContext())
            missing = [t for t in tokens if client.inner.outcome(t) is None]
            if missing:
                raise AssertionError(f"{side}: {len(missing)} of {n} tasks were not answered")
            results[side] = (peak, client)
        (ck_peak, ck_client), (nv_peak, nv_client) = results["callback-kit"], results["thread per task"]
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: scheduler threads (peak)",
                str(ck_peak["exact"]),
                str(nv_peak["named"]),
                "a heartbeat thread per task",
                ck_peak["exact"] / max(nv_peak["named"], 1),
                "x threads",
                "== 1",
                ck_peak["exact"] == 1,
            )
        )
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: heartbeat threads with senders (peak)",
                str(ck_peak["named"]),
                str(nv_peak["named"]),
                "a heartbeat thread per task",
                ck_peak["named"] / max(nv_peak["named"], 1),
                "x threads",
            )
        )
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: threads alive (peak)",
                str(ck_peak["total"]),
                str(nv_peak["total"]),
                "a heartbeat thread per task",
                ck_peak["total"] / max(nv_peak["total"], 1),
                "x threads",
            )
        )
        scale = 60.0 / duration * (interval / SCALE_TO_INTERVAL)
        ck_calls = sum(len(b) for b in ck_client.beats.values()) * scale
        nv_calls = sum(len(b) for b in nv_client.beats.values()) * scale
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: calls/min at a 30 s interval",
                f"{ck_calls:.1f}",
                f"{nv_calls:.1f}",
                "a heartbeat thread per task",
                ck_calls / nv_calls if nv_calls else 0.0,
                "x calls",
            )
        )
        worst = _max_per_interval(ck_client.beats, interval)
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: most beats per task per interval",
                str(worst),
                str(_max_per_interval(nv_client.beats, interval)),
                "a heartbeat thread per task",
                float(worst),
                "beats",
            )
        )
        # Beats are due one interval after the previous one was due, so a late beat may be followed sooner than
        # one interval later, but never sooner than half of one.
        worst = _max_per_interval(ck_client.beats, interval / 2)
        rows.append(
            Row(
                "heartbeat",
                f"{n} open: most beats per task per half interval",
                str(worst),
                str(_max_per_interval(nv_client.beats, interval / 2)),
                "a heartbeat thread per task",
                float(worst),
                "beats",
                "<= 1",
                worst <= 1,
            )
        )
    return rows
