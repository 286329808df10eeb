"""A tiny activity worker on the in-memory fake, run as a subprocess by the SIGTERM test.

It queues two "quick" tasks (they finish once the worker is stopping), two "stuck" tasks (they run until
cancelled) and three "spare" tasks that no slot is free to take, prints READY when the four slots are busy, and
after the worker has stopped prints one JSON line: each task's kind, whether it was handed out, and the answers
Step Functions accepted for it.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import callback_kit as ck
from callback_kit.activity import ActivityWorker
from callback_kit.logs import get_logger
from callback_kit.testing import FakeStepFunctions

ARN = "arn:aws:states:us-east-1:123456789012:activity:sigterm"


def main() -> None:
    get_logger().setLevel("WARNING")
    fake = FakeStepFunctions(activity_poll_seconds=0.05)
    kinds = {fake.add_activity_task(ARN, {"kind": kind}): kind for kind in ["quick", "stuck"] * 2 + ["spare"] * 3}
    worker: ActivityWorker

    def work(payload: dict[str, str]) -> dict[str, str]:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if payload["kind"] == "quick" and worker.stopping:
                time.sleep(0.05)
                return {"done": payload["kind"]}
            if ck.is_cancelled():
                return {"late": payload["kind"]}
            time.sleep(0.005)
        return {"never": "reached"}

    def announce_ready() -> None:
        while worker.stats.running < 4:
            time.sleep(0.005)
        print("READY", flush=True)

    worker = ActivityWorker(ARN, work, client=fake, concurrency=4, heartbeat_interval=0, shutdown_grace_seconds=0.5)
    threading.Thread(target=announce_ready, daemon=True).start()
    worker.run()  # installs the SIGTERM/SIGINT handlers and returns once every taken task is answered
    time.sleep(0.1)  # let the stuck functions return: their late returns must send nothing
    report: dict[str, Any] = {"stats": vars(worker.stats), "tasks": {}}
    for token, kind in kinds.items():
        calls = fake.calls_for(token)
        report["tasks"][token] = {
            "kind": kind,
            "taken": any(c.api == "GetActivityTask" for c in calls),
            "answers": [[c.api, *c.params.values()] for c in calls if c.result == "ok" and c.api != "GetActivityTask"],
        }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
