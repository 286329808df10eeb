"""A PNG chart of the metrics the demo's workers wrote: what a CloudWatch dashboard of them would show.

Two panels, one row per worker (``service (Source)``): how its tasks ended (stacked bars of the Count metrics
that say so), and its ``TaskDuration`` p50 and p99. Drawn with matplotlib, which the ``demo`` extra installs
(``scripts/demo`` installs it); without it the demo prints the table only and says why.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from demo.metrics import worker_totals

#: The outcome metrics stacked in the left panel, with their legend labels and colours.
OUTCOMES = {
    "TaskSucceeded": ("succeeded", "#2e7d32"),
    "TaskFailed": ("failed", "#c62828"),
    "TaskClosed": ("closed", "#f9a825"),
    "TaskHandedBack": ("handed back", "#6a1b9a"),
    "TaskHandedOff": ("handed off", "#1565c0"),
}


def write_chart(documents: list[dict[str, Any]], path: Path) -> Path:
    """Draw the workers' metrics in ``documents`` (EMF) to the PNG file ``path``; return ``path``.

    Raises:
        ImportError: matplotlib is not installed (the ``demo`` extra).

    Example:
        >>> doc = {"service": "order-check", "Source": "sqs", "TaskSucceeded": [2.0], "TaskDuration": [10.0, 30.0]}
        >>> write_chart([doc], Path(tmp) / "metrics.png").stat().st_size > 0   # doctest: +SKIP
        True
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed, and none is touched
    from matplotlib import pyplot as plt

    rows = worker_totals(documents)
    names = [f"{service} ({source})" for service, source in rows] or ["(no metrics written)"]
    height = max(3.0, 0.45 * len(names) + 2.0)
    figure, (ends, durations) = plt.subplots(1, 2, figsize=(11, height), sharey=True, width_ratios=(3, 2))
    try:
        positions = list(range(len(names)))
        left = [0.0] * len(names)
        for metric, (label, colour) in OUTCOMES.items():
            widths = [row[metric] for row in rows.values()] or [0.0]
            ends.barh(positions, widths, left=left, color=colour, label=label)
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ends.set_yticks(positions, names)
        ends.invert_yaxis()
        ends.set_xlabel("tasks")
        ends.set_title("How tasks ended")
        ends.xaxis.get_major_locator().set_params(integer=True)
        ends.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=len(OUTCOMES), fontsize="small")
        p50 = [_quantile(row["durations"], 50) for row in rows.values()] or [0.0]
        p99 = [_quantile(row["durations"], 99) for row in rows.values()] or [0.0]
        durations.barh([p - 0.2 for p in positions], p50, height=0.4, color="#546e7a", label="p50")
        durations.barh([p + 0.2 for p in positions], p99, height=0.4, color="#b0bec5", label="p99")
        durations.set_xlabel("TaskDuration (ms)")
        durations.set_title("How long the work took")
        durations.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize="small")
        figure.suptitle("callback-kit demo: the metrics its workers wrote (EMF)")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


def _quantile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]
