"""The metrics the demo's workers write (EMF, as in Lambda), kept off the screen and shown as one table at the end.

The handlers in ``handlers/`` pass ``metrics=`` a powertools ``Metrics`` whose namespace comes from
``POWERTOOLS_METRICS_NAMESPACE``, which template.yaml's Globals set. The demo sets it too, and stands in for
CloudWatch: powertools prints each EMF document to stdout, :class:`EmfCapture` keeps them, and
:func:`metrics_table` adds them up per worker (``service``, ``Source``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
from collections.abc import Iterator
from typing import Any, TextIO

NAMESPACE = "CallbackKit/demo"
#: The columns of the table: metric name -> heading.
COLUMNS = {
    "TaskSucceeded": "succeeded",
    "TaskFailed": "failed",
    "TaskClosed": "closed",
    "TaskHandedBack": "handed back",
    "TaskHandedOff": "handed off",
    "HeartbeatSent": "beats",
    "HeartbeatFailed": "beats failed",
    "CompletionThrottled": "throttled",
}


class EmfCapture(io.TextIOBase):
    """A stand-in for ``sys.stdout`` that keeps EMF documents and passes every other line to ``out``."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out
        self.documents: list[dict[str, Any]] = []
        self._pending = ""

    def write(self, text: str) -> int:
        """Take ``text``; whole lines are sorted as they complete (``print`` writes the newline on its own)."""
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._line(line)
        return len(text)

    def flush(self) -> None:
        """Flush the passed-through output."""
        self.out.flush()

    def _line(self, line: str) -> None:
        if line.startswith('{"_aws"'):
            with contextlib.suppress(ValueError):
                self.documents.append(json.loads(line))
                return
        self.out.write(line + "\n")


@contextlib.contextmanager
def captured() -> Iterator[EmfCapture]:
    """Set the metrics namespace and keep the EMF documents written to stdout during the ``with`` block."""
    saved_env, saved_out = os.environ.get("POWERTOOLS_METRICS_NAMESPACE"), sys.stdout
    capture = EmfCapture(saved_out)
    os.environ["POWERTOOLS_METRICS_NAMESPACE"] = NAMESPACE
    sys.stdout = capture
    try:
        yield capture
    finally:
        sys.stdout = saved_out
        if saved_env is None:
            os.environ.pop("POWERTOOLS_METRICS_NAMESPACE", None)
        else:
            os.environ["POWERTOOLS_METRICS_NAMESPACE"] = saved_env


def _values(document: dict[str, Any], name: str) -> list[float]:
    value = document.get(name, [])
    return [float(v) for v in (value if isinstance(value, list) else [value])]


def worker_totals(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The documents added up per worker, keyed by (service, Source): each column's total, the documents, and
    every ``TaskDuration`` value.

    Example:
        >>> doc = {"service": "order-check", "Source": "sqs", "TaskSucceeded": [2.0], "TaskDuration": [10.0]}
        >>> worker_totals([doc])[("order-check", "sqs")]["TaskSucceeded"]
        2.0
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for document in documents:
        key = (str(document.get("service", "?")), str(document.get("Source", "?")))
        row = rows.setdefault(key, {"documents": 0, "durations": [], **dict.fromkeys(COLUMNS, 0.0)})
        row["documents"] += 1
        for name in COLUMNS:
            row[name] += sum(_values(document, name))
        row["durations"].extend(_values(document, "TaskDuration"))
    return dict(sorted(rows.items()))


def metrics_table(documents: list[dict[str, Any]]) -> list[str]:
    """The documents added up per worker: a header line and one line per (service, Source), as text.

    Example:
        >>> doc = {"service": "order-check", "Source": "sqs", "TaskSucceeded": [2.0], "TaskDuration": [10.0, 30.0]}
        >>> header, row = metrics_table([doc])
        >>> row.split()
        ['order-check', '(sqs)', '1', '2', '0', '0', '0', '0', '0', '0', '0', '20', 'ms']
    """
    headings = ["documents", *COLUMNS.values(), "duration p50"]
    lines = [f"{'worker':<26}  " + "  ".join(headings)]
    for (service, source), row in worker_totals(documents).items():
        p50 = f"{statistics.median(row['durations']):.0f} ms" if row["durations"] else "-"
        cells = [str(row["documents"]), *(f"{row[name]:.0f}" for name in COLUMNS), p50]
        lines.append(
            f"{service + ' (' + source + ')':<26}  "
            + "  ".join(c.rjust(len(h)) for c, h in zip(cells, headings, strict=True))
        )
    return lines
