"""Cold start: fresh interpreters importing the decorated handler module against the hand-written one.

Each repetition starts a new interpreter that imports one module (timed inside the child, so interpreter
start-up, equal on both sides, is left out), reads its peak RSS, and then, when a moto server is up, answers
one real task: the first invocation is where callback-kit pays for the boto3 import and client it did not build
at import time, so "import + first task" is the figure a Lambda cold start really sees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ENV_MOTO_URL, FAKE_AWS_ENV, Row, TokenFactory, median, ms

HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
DECORATED = "decorated_handler"
HANDWRITTEN = "handwritten_handler"

_CHILD = """
import json, resource, sys, time
module_name, handlers_dir, out_path, token = sys.argv[1:5]
sys.path.insert(0, handlers_dir)
start = time.perf_counter()
module = __import__(module_name)
imported = time.perf_counter()
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = {"import_s": imported - start, "rss_import_kb": rss_import}

class Context:
    function_name = "bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 256
    def __init__(self):
        self.deadline = time.monotonic() + 30
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

if token:
    before = time.perf_counter()
    module.handler({"TaskToken": token, "n": 1}, Context())
    result["first_task_s"] = time.perf_counter() - before
    result["rss_first_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(out_path, "w") as out:
    json.dump(result, out)
"""


def _child(module: str, token: str, url: str | None) -> dict[str, Any]:
    env = {**os.environ, **FAKE_AWS_ENV}
    if url:
        env["AWS_ENDPOINT_URL"] = url
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [sys.executable, "-c", _CHILD, module, str(HANDLERS_DIR), str(out), token],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def run(quick: bool) -> list[Row]:
    """Run the cold-start benchmark; ``quick`` takes 3 repetitions per side instead of 9."""
    reps = 3 if quick else 9
    url = os.environ.get(ENV_MOTO_URL)
    tokens = TokenFactory(url).tokens(2 * reps) if url else []
    samples: dict[str, list[dict[str, Any]]] = {DECORATED: [], HANDWRITTEN: []}
    for i in range(reps):
        # Alternate which side goes first, so that neither always gets the warmer page cache.
        order = (DECORATED, HANDWRITTEN) if i % 2 == 0 else (HANDWRITTEN, DECORATED)
        for module in order:
            token = tokens.pop() if tokens else ""
            samples[module].append(_child(module, token, url))

    def med(module: str, key: str) -> float:
        return median([s[key] for s in samples[module]])

    baseline = "hand-written: boto3 + client at import"
    rows = []
    ours, base = med(DECORATED, "import_s"), med(HANDWRITTEN, "import_s")
    rows.append(
        Row(
            "cold start",
            f"import handler module (median of {reps})",
            ms(ours),
            ms(base),
            baseline,
            ours / base,
            "x time",
            "<= 1.10x",
            ours / base <= 1.10,
        )
    )
    ours, base = med(DECORATED, "rss_import_kb"), med(HANDWRITTEN, "rss_import_kb")
    rows.append(
        Row(
            "cold start",
            "peak RSS after import",
            f"{ours / 1024:.1f} MiB",
            f"{base / 1024:.1f} MiB",
            baseline,
            ours / base,
            "x memory",
        )
    )
    if url:
        ours = med(DECORATED, "import_s") + med(DECORATED, "first_task_s")
        base = med(HANDWRITTEN, "import_s") + med(HANDWRITTEN, "first_task_s")
        rows.append(
            Row("cold start", "import + first task (moto)", ms(ours), ms(base), baseline, ours / base, "x time")
        )
        ours, base = med(DECORATED, "rss_first_kb"), med(HANDWRITTEN, "rss_first_kb")
        rows.append(
            Row(
                "cold start",
                "peak RSS after first task",
                f"{ours / 1024:.1f} MiB",
                f"{base / 1024:.1f} MiB",
                baseline,
                ours / base,
                "x memory",
            )
        )
    return rows
