"""ck.prewarm(): after it, the first task imports nothing more (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = """
import json, sys, threading
import callback_kit as ck
from callback_kit.testing import FakeLambdaContext, FakeStepFunctions
threads = threading.active_count()
ck.prewarm(client=sys.argv[1] == "client")
from callback_kit.task import clients, completion
built = clients._default_client is not None
threads_after = threading.active_count()
before = set(sys.modules)
fake = FakeStepFunctions()
handler = ck.callback_handler(client=fake)(lambda payload: {"ok": True})
handler({"TaskToken": fake.open_task()}, FakeLambdaContext())
print(json.dumps({"new": sorted(set(sys.modules) - before), "built": built, "threads": threads_after - threads,
                  "answered": fake.outputs()}))
"""


def _run(arg: str) -> dict[str, object]:
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    out = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _CHILD, arg], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_prewarm_leaves_nothing_for_the_first_task_to_import() -> None:
    # GIVEN a fresh interpreter that called ck.prewarm() at "module level"
    # WHEN the first task runs
    result = _run("client")
    # THEN it imported no module, the default client was built, no thread was started, and the task was answered
    assert result["new"] == []
    assert result["built"] is True
    assert result["threads"] == 0
    assert result["answered"] == [{"ok": True}]


def test_prewarm_without_client_builds_none() -> None:
    # GIVEN / WHEN prewarm(client=False) / THEN no default client is built (handlers bring their own)
    result = _run("none")
    assert result["built"] is False
    assert result["answered"] == [{"ok": True}]
