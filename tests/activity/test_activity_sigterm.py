"""SIGTERM with tasks in flight, in a real subprocess: every task taken gets exactly one answer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from callback_kit.exceptions import ERROR_WORKER_SHUTDOWN

SCRIPT = Path(__file__).with_name("sigterm_worker.py")


def test_sigterm_drains_in_flight_tasks_and_answers_every_taken_task() -> None:
    # GIVEN a worker process with four tasks in flight and three queued
    proc = subprocess.Popen(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        # WHEN it receives SIGTERM
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # THEN it exits cleanly
    assert proc.returncode == 0, err
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    tasks = report["tasks"].values()
    # AND every task it took got exactly one answer; tasks it never took got none
    for task in tasks:
        assert len(task["answers"]) == (1 if task["taken"] else 0), task
    # AND the tasks that could finish in the grace period succeeded, the stuck ones got the shutdown error
    by_kind = {kind: [t for t in tasks if t["kind"] == kind] for kind in ("quick", "stuck", "spare")}
    assert all(t["answers"][0][0] == "SendTaskSuccess" for t in by_kind["quick"])
    assert all(t["answers"][0][:2] == ["SendTaskFailure", ERROR_WORKER_SHUTDOWN] for t in by_kind["stuck"])
    assert not any(t["taken"] for t in by_kind["spare"])
    assert report["stats"]["shut_down"] == 2
    assert report["stats"]["succeeded"] == 2
