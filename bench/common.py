"""Shared pieces: result rows, timing helpers and the table."""

from __future__ import annotations

import json
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: The fake AWS environment every benchmark process runs in (no benchmark may reach AWS).
FAKE_AWS_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


@dataclass
class Row:
    """One line of the results table: callback-kit against a baseline, and the ratio between them.

    Attributes:
        bench: the benchmark (``cold start``, ``per-task``, ...).
        case: what was measured within it.
        ours: callback-kit's figure, formatted with its unit.
        base: the baseline's figure, formatted with its unit.
        baseline: what the baseline is.
        ratio: ours / baseline (or baseline / ours for speed-ups; ``ratio_label`` says which).
        ratio_label: how to read ``ratio`` (``"x time"``, ``"x faster"``, ...).
        target: the target as text, or ``""`` when the row is informational.
        met: whether the target was met (``None`` when there is no target).
    """

    bench: str
    case: str
    ours: str
    base: str
    baseline: str
    ratio: float
    ratio_label: str
    target: str = ""
    met: bool | None = None


def apply_fake_aws_env() -> None:
    """Point this process at a fake account; drop any profile that could reach a real one."""
    for key, value in FAKE_AWS_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.pop("AWS_PROFILE", None)


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> float:
    """Seconds ``fn()`` took, on the monotonic performance counter."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    """Seconds as milliseconds for the table."""
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def format_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal, pasteable into the docs)."""
    header = ["benchmark", "case", "callback-kit", "baseline", "baseline is", "ratio", "target", "met"]
    lines = [header]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append([r.bench, r.case, r.ours, r.base, r.baseline, f"{r.ratio:.2f} {r.ratio_label}", r.target, met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def rows_to_json(rows: Sequence[Row]) -> str:
    """The rows as a JSON array."""
    return json.dumps([asdict(r) for r in rows], indent=2)


def rows_from_json(text: str) -> list[Row]:
    """The inverse of :func:`rows_to_json`."""
    return [Row(**item) for item in json.loads(text)]
