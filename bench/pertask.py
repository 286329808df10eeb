"""Per-task overhead: direct-invoke tasks through the decorator against the hand-written handler.

Both sides answer real tokens (from real executions on the moto simulator) over loopback to the same server,
which runs in its own process, so the network and server cost is the same on both sides and what differs is
the handler's own work. Tasks alternate between the sides (ABBA order) and each side's figure is the median
per-task time, so drift in the server (it slows a little as executions finish) hits both equally.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from collections.abc import Callable, Iterator
from typing import Any

from bench.common import ENV_MOTO_URL, Row, TokenFactory, median, ms, timed

Handler = Callable[[dict[str, Any], Any], Any]


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send stdout (where callback-kit's JSON log lines go) to a sink while the handlers run.

    The log lines are still formatted and written, as in Lambda; they just do not flood the table.
    """
    import sys

    saved = sys.stdout
    sys.stdout = io.StringIO()
    try:
        yield
    finally:
        sys.stdout = saved


def _load(url: str) -> tuple[Handler, Handler]:
    os.environ["AWS_ENDPOINT_URL"] = url
    decorated = importlib.import_module("bench.handlers.decorated_handler")
    handwritten = importlib.import_module("bench.handlers.handwritten_handler")
    return decorated.handler, handwritten.handler


def run(quick: bool) -> list[Row]:
    """Run the per-task benchmark: 10 tasks per side in quick mode, 100 otherwise (after 3 warm-up tasks each)."""
    from callback_kit.testing import FakeLambdaContext

    url = os.environ.get(ENV_MOTO_URL)
    if not url:
        raise RuntimeError("the per-task benchmark needs the moto server (run it through `python -m bench`)")
    n = 10 if quick else 100
    warmup = 3
    tokens = TokenFactory(url).tokens(2 * (n + warmup))
    with _quiet_stdout():
        decorated, handwritten = _load(url)
        sides = {"decorated": decorated, "handwritten": handwritten}
        times: dict[str, list[float]] = {"decorated": [], "handwritten": []}
        for i in range(n + warmup):
            order = ("decorated", "handwritten") if i % 2 == 0 else ("handwritten", "decorated")
            for side in order:
                event = {"TaskToken": tokens.pop(), "n": i}
                context = FakeLambdaContext(remaining_ms=30_000)
                handler = sides[side]
                elapsed = timed(lambda h=handler, e=event, c=context: h(e, c))  # type: ignore[misc]
                if i >= warmup:
                    times[side].append(elapsed)
    ours, base = median(times["decorated"]), median(times["handwritten"])
    return [
        Row(
            "per-task",
            f"direct invoke, moto over loopback (median of {n})",
            ms(ours),
            ms(base),
            "hand-written: json + boto3 send_task_success",
            ours / base,
            "x time",
            "<= 1.05x",
            ours / base <= 1.05,
        ),
        Row(
            "per-task",
            "overhead per task (difference)",
            ms(ours - base),
            "-",
            "the same two medians",
            (ours - base) / base,
            "of baseline",
        ),
    ]
