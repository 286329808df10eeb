"""``python -m bench.plots [--quick]``: draw the scaling curves of docs/performance.md as PNG images.

* ``docs/heartbeat-lateness.png``: largest and p99 gap between a task's beats (in intervals) against open tasks,
  2 s interval, 30 ms per call, for the scheduler as shipped and held to one sender (as before);
* ``docs/batch-overhead.png``: callback-kit's per-record overhead over the hand-written loop against the SQS
  batch size (null client).

Needs the ``bench`` extra (matplotlib). Each curve is measured in its own interpreter, as the benchmarks are.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"

_MEASURE = """
import json, sys
from bench.common import apply_fake_aws_env
apply_fake_aws_env()
which, quick = sys.argv[1], sys.argv[2] == "quick"
if which == "heartbeat":
    from bench.hbscale import curve
    print(json.dumps({"shipped": curve(quick), "one": curve(quick, max_senders=1)}))
else:
    import contextlib, io
    from bench.sqsbatch import overhead_curve
    with contextlib.redirect_stdout(io.StringIO()):
        points = overhead_curve(quick)
    print(json.dumps(points))
"""


def _measure(which: str, quick: bool) -> object:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, which, "quick" if quick else "full"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Measure both curves and write the two images."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parser = argparse.ArgumentParser(prog="python -m bench.plots", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller points")
    parser.add_argument("--data", type=Path, help="redraw from the JSON a previous run printed; measure nothing")
    args = parser.parse_args(argv)
    saved = json.loads(args.data.read_text()) if args.data else None

    hb: dict[str, list[list[float]]] = saved["heartbeat"] if saved else _measure("heartbeat", args.quick)  # type: ignore[assignment]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, label, style in (("shipped", "callback-kit", "o-"), ("one", "one sender (as before)", "s--")):
        points = hb[name]
        ax.plot([p[0] for p in points], [p[1] for p in points], style, label=f"{label}: largest gap")
        ax.plot([p[0] for p in points], [p[2] for p in points], style, alpha=0.4, label=f"{label}: p99 gap")
    ax.axhline(1.2, color="grey", linestyle=":", label="target: 1.2 intervals")
    ax.set_xlabel("open tasks (registered together; 2 s interval, 30 ms per heartbeat call)")
    ax.set_ylabel("gap between beats (intervals)")
    ax.set_xscale("log")
    ax.set_ylim(0.9, 3.2)
    ax.legend(fontsize="small")
    ax.set_title("Heartbeat gaps against open tasks (3 = not beaten in the 3-interval run)", fontsize="medium")
    fig.tight_layout()
    fig.savefig(DOCS / "heartbeat-lateness.png", dpi=100)

    batch: list[list[float]] = saved["batch"] if saved else _measure("batch", args.quick)  # type: ignore[assignment]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot([p[0] for p in batch], [p[1] * 1e6 for p in batch], "o-", label="callback-kit over the hand-written loop")
    ax.set_xscale("log")
    ax.set_xlabel("records in the SQS batch (null client, default options)")
    ax.set_ylabel("overhead per record (us)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    ax.set_title("Per-record overhead against batch size")
    fig.tight_layout()
    fig.savefig(DOCS / "batch-overhead.png", dpi=100)
    print(json.dumps({"heartbeat": hb, "batch": batch}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
