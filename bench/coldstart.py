"""Cold start: fresh interpreters importing a handler module and answering one task, against the hand-written one.

Each repetition starts a new interpreter that imports one module, then answers one task through the local
Step Functions endpoint (:mod:`bench.endpoint`, no delay). Three figures per run:

* inside the child: the import, and the first task (where callback-kit pays for boto3, its client and its own
  lazy imports, which the hand-written module paid at import);
* the whole process, start to exit, timed by the parent: what a Lambda cold start really sees.

Both sides run with compiled bytecode, as a deployed layer or package does: the sources are compiled with
``compileall`` first and ``PYTHONDONTWRITEBYTECODE`` is unset for the measured processes (this machine sets it,
and an editable install has no ``.pyc``, which would charge ~20 ms of compiling to callback-kit alone).

Sides: the hand-written module (boto3 and the client at import); the decorated module (everything lazy); the
decorated module with ``ck.prewarm()`` at module level (for provisioned concurrency and SnapStart, where INIT is
paid ahead of traffic); and the decorated module with 10 s left in the Lambda (under the default client's own
timeouts, so that its call is made on a variant of the client bounded to the time left). The decorated and
hand-written modules run once more with the cyclic garbage collector off from the first line: one full
collection is ~15 ms once boto3 is loaded, and whether one falls inside the process depends on where allocation
counts cross the collector's thresholds, which a few thousand allocations either way decide.
"""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import FAKE_AWS_ENV, Row, median, ms
from bench.endpoint import sfn_endpoint

HANDLERS_DIR = Path(__file__).resolve().parent / "handlers"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / "callback_kit"
DECORATED = "decorated_handler"
PREWARMED = "prewarmed_handler"
HANDWRITTEN = "handwritten_handler"
BASELINE = "hand-written: boto3 + client at import"
GC_OFF = "gc-off:"
SHORT = "short-deadline:" + DECORATED

_CHILD = """
import os
if os.environ.get("BENCH_GC_OFF"):
    import gc
    gc.disable()
import json, resource, sys, time
module_name, handlers_dir, out_path = sys.argv[1:4]
sys.path.insert(0, handlers_dir)
start = time.perf_counter()
module = __import__(module_name)
imported = time.perf_counter()
result = {"import_s": imported - start, "rss_import_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}

class Context:
    function_name = "bench"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 256
    def __init__(self):
        self.deadline = time.monotonic() + float(os.environ.get("BENCH_REMAINING_S", "30"))
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

before = time.perf_counter()
module.handler({"TaskToken": "cold-start-token-" + "x" * 600, "n": 1}, Context())
result["first_task_s"] = time.perf_counter() - before
result["rss_first_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(out_path, "w") as out:
    json.dump(result, out)
"""


def _child(module: str, url: str, gc_off: bool = False, remaining_s: float = 30.0) -> dict[str, Any]:
    env = {**os.environ, **FAKE_AWS_ENV, "AWS_ENDPOINT_URL": url, "BENCH_REMAINING_S": str(remaining_s)}
    if gc_off:
        env["BENCH_GC_OFF"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # use the compiled bytecode, as a deployed package does
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", _CHILD, module, str(HANDLERS_DIR), str(out)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        result: dict[str, Any] = json.loads(out.read_text())
        result["process_s"] = time.perf_counter() - start
        return result


def run(quick: bool) -> list[Row]:
    """Run the cold-start benchmark: 9 processes per side (quick: 3), sides rotated."""
    reps = 3 if quick else 9
    for directory in (PACKAGE_DIR, HANDLERS_DIR):
        compileall.compile_dir(str(directory), quiet=1)
    # The last two sides run the same modules with the cyclic garbage collector off from the first line: whether a
    # full collection (~15 ms with boto3 loaded) falls inside the measured process depends on where the allocation
    # counts cross the collector's thresholds, so these rows say how much of the difference is that.
    # SHORT runs the decorated module in a Lambda with 10 s left: less than the default client's own timeouts
    # (5 s connect + 15 s read), so that its call goes through a variant of the client bounded to the time left.
    sides = {
        DECORATED: (DECORATED, False, 30.0),
        PREWARMED: (PREWARMED, False, 30.0),
        HANDWRITTEN: (HANDWRITTEN, False, 30.0),
        GC_OFF + DECORATED: (DECORATED, True, 30.0),
        GC_OFF + HANDWRITTEN: (HANDWRITTEN, True, 30.0),
        SHORT: (DECORATED, False, 10.0),
    }
    names = tuple(sides)
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with sfn_endpoint(0.0) as url:
        for i in range(reps + 1):
            # Rotate which side goes first, so that none always gets the warmest page cache; round 0 warms up.
            order = names[i % len(names) :] + names[: i % len(names)]
            for name in order:
                module, gc_off, remaining_s = sides[name]
                got = _child(module, url, gc_off, remaining_s)
                if i:
                    samples[name].append(got)

    def med(module: str, key: str) -> float:
        return median([s[key] for s in samples[module]])

    def row(
        case: str,
        module: str,
        key: str,
        target: float | None = None,
        baseline: str = HANDWRITTEN,
        label: str = BASELINE,
    ) -> Row:
        ours, base = med(module, key), med(baseline, key)
        return Row(
            "cold start",
            case,
            ms(ours),
            ms(base),
            label,
            ours / base,
            "x time",
            f"<= {target:.2f}x" if target else "",
            (ours / base <= target) if target else None,
        )

    rows = [
        row(f"import handler module (median of {reps})", DECORATED, "import_s"),
        row("first task", DECORATED, "first_task_s"),
        row("whole process: import + first task", DECORATED, "process_s", 1.10),
        row("import, with ck.prewarm()", PREWARMED, "import_s"),
        row("first task, with ck.prewarm()", PREWARMED, "first_task_s"),
        row("whole process, with ck.prewarm()", PREWARMED, "process_s", 1.10),
        row("first task, 10 s left (its call on a bounded client copy)", SHORT, "first_task_s"),
        row("whole process, 10 s left", SHORT, "process_s"),
        row(
            "whole process, collector off on both sides",
            GC_OFF + DECORATED,
            "process_s",
            baseline=GC_OFF + HANDWRITTEN,
            label="the same, collector off (gc.disable())",
        ),
    ]
    ours, base = med(DECORATED, "rss_first_kb"), med(HANDWRITTEN, "rss_first_kb")
    rows.append(
        Row(
            "cold start",
            "peak RSS after first task",
            f"{ours / 1024:.1f} MiB",
            f"{base / 1024:.1f} MiB",
            BASELINE,
            ours / base,
            "x memory",
        )
    )
    return rows
