"""Heartbeats at scale: how late beats come as open tasks grow, and what each open task costs.

N tasks are registered at once (the worst case: a big batch or a busy activity worker starting together) on a
:class:`~callback_kit.task.heartbeat.HeartbeatScheduler` whose heartbeat call takes 30 ms (a real SendTaskHeartbeat's
round trip; the fake sleeps, releasing the GIL as a socket read does). For each task the gaps between its
beats are recorded, from its registration to the end of the run, so a task never beaten shows as one long gap.

* callback-kit: the scheduler as shipped (one scheduler thread, senders sized from the observed latency);
* baseline "one sender": the same scheduler held to a single sender thread, which is how beats were sent
  before (one thread sent them one after another);
* baseline "thread per task": what hand-written workers do (``while not done.wait(interval): heartbeat()``),
  for the CPU and memory per open task.

Target: 2,000 tasks at a 2 s interval with 30 ms per call (the shape of 30,000 tasks at a 30 s
interval): every task's largest gap <= 1.2x the interval; memory per open task <= 4 KiB. Quick mode keeps the
shape (open tasks x latency / interval = 30 calls in flight) with 500 tasks at a 0.5 s interval.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable

from bench.common import Row

LATENCY = 0.030


def _rss_kib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return 0.0  # pragma: no cover - not Linux


class _Recorder:
    """Per-task beat times, appended from the sender threads."""

    def __init__(self, n: int) -> None:
        self.times: list[list[float]] = [[] for _ in range(n)]

    def sender(self, i: int) -> Callable[[], bool]:
        times = self.times[i]

        def send() -> bool:
            times.append(time.monotonic())
            time.sleep(LATENCY)
            return True

        return send


def _gaps(rec: _Recorder, start: float, end: float) -> list[float]:
    """Every gap between consecutive beats of every task, from registration to the end of the run."""
    gaps: list[float] = []
    for times in rec.times:
        points = [start, *times, end]
        gaps.extend(b - a for a, b in itertools.pairwise(points))
    return gaps


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _run_scheduler(n: int, interval: float, duration: float, max_senders: int) -> dict[str, float]:
    from callback_kit.task.heartbeat import HeartbeatScheduler

    gc.collect()
    sched = HeartbeatScheduler(max_senders=max_senders)
    rec = _Recorder(n)
    sends = [rec.sender(i) for i in range(n)]
    tracemalloc.start()
    snap = tracemalloc.take_snapshot()
    beats = [sched.register(sends[i], interval, _noop) for i in range(n)]
    per_task_bytes = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snap, "filename")) / n
    tracemalloc.stop()
    start = time.monotonic()
    cpu0 = time.process_time()
    time.sleep(duration)
    cpu = time.process_time() - cpu0
    end = time.monotonic()
    for beat in beats:
        sched.unregister(beat)
    gaps = _gaps(rec, start, end)
    return {
        "max_gap": max(gaps) / interval,
        "p99_gap": _percentile(gaps, 0.99) / interval,
        "cpu_per_task_s": cpu / n / duration,
        "bytes_per_task": per_task_bytes,
        "senders": float(sched.senders),
    }


def _run_threads(n: int, interval: float, duration: float) -> dict[str, float]:
    gc.collect()
    rec = _Recorder(n)
    done = threading.Event()
    rss0 = _rss_kib()

    def beat(send: Callable[[], bool]) -> None:
        while not done.wait(interval):
            send()

    threads = [threading.Thread(target=beat, args=(rec.sender(i),), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    rss1 = _rss_kib()
    start = time.monotonic()
    cpu0 = time.process_time()
    time.sleep(duration)
    cpu = time.process_time() - cpu0
    end = time.monotonic()
    done.set()
    for t in threads:
        t.join()
    gaps = _gaps(rec, start, end)
    return {
        "max_gap": max(gaps) / interval,
        "p99_gap": _percentile(gaps, 0.99) / interval,
        "cpu_per_task_s": cpu / n / duration,
        "bytes_per_task": (rss1 - rss0) * 1024 / n,
    }


def _noop() -> None:
    return None


def _alive() -> bool:
    return True


def curve(quick: bool, max_senders: int = 128) -> list[tuple[int, float, float, float]]:
    """(open tasks, largest gap / interval, p99 gap / interval, senders) for the plot in docs/performance.md."""
    interval = 0.5 if quick else 2.0
    points = []
    for n in (50, 125, 250, 500) if quick else (50, 100, 250, 500, 1000, 2000, 4000):
        got = _run_scheduler(n, interval, 3 * interval, max_senders)
        points.append((n, got["max_gap"], got["p99_gap"], got["senders"]))
    return points


def run(quick: bool) -> list[Row]:
    """2,000 open tasks at 2 s (quick: 500 at 0.5 s), 30 ms per call, for three intervals."""
    n, interval = (500, 0.5) if quick else (2000, 2.0)
    duration = 3 * interval + 0.25
    ours = _run_scheduler(n, interval, duration, 128)
    one = _run_scheduler(n, interval, duration, 1)
    naive = _run_threads(n, interval, duration)
    case = f"{n} open, {interval:g} s interval, 30 ms/call"
    return [
        Row(
            "heartbeat scale",
            f"{case}: largest gap / interval",
            f"{ours['max_gap']:.2f}",
            f"{one['max_gap']:.2f}",
            "one sender thread (as before)",
            ours["max_gap"] / one["max_gap"],
            "x gap",
            "<= 1.2",
            ours["max_gap"] <= 1.2,
        ),
        Row(
            "heartbeat scale",
            f"{case}: p99 gap / interval",
            f"{ours['p99_gap']:.2f}",
            f"{one['p99_gap']:.2f}",
            "one sender thread (as before)",
            ours["p99_gap"] / one["p99_gap"],
            "x gap",
        ),
        Row(
            "heartbeat scale",
            f"{case}: largest gap / interval",
            f"{ours['max_gap']:.2f}",
            f"{naive['max_gap']:.2f}",
            "a heartbeat thread per task",
            ours["max_gap"] / naive["max_gap"],
            "x gap",
        ),
        Row(
            "heartbeat scale",
            f"{case}: sender threads",
            f"{ours['senders']:.0f}",
            str(n),
            "a heartbeat thread per task",
            ours["senders"] / n,
            "x threads",
        ),
        Row(
            "heartbeat scale",
            f"{case}: memory per open task",
            f"{ours['bytes_per_task']:.0f} B",
            f"{naive['bytes_per_task']:.0f} B",
            "a heartbeat thread per task (RSS)",
            ours["bytes_per_task"] / max(naive["bytes_per_task"], 1.0),
            "x memory",
            "<= 4 KiB",
            ours["bytes_per_task"] <= 4096,
        ),
        Row(
            "heartbeat scale",
            f"{case}: CPU per open task",
            f"{ours['cpu_per_task_s'] * 1e6:.1f} us/s",
            f"{naive['cpu_per_task_s'] * 1e6:.1f} us/s",
            "a heartbeat thread per task",
            ours["cpu_per_task_s"] / max(naive["cpu_per_task_s"], 1e-12),
            "x CPU",
        ),
    ]
