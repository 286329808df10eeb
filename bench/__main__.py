"""``python -m bench [--quick] [--json] [--only NAME ...]``: run the benchmarks and print the table of ratios.

Each benchmark runs in its own interpreter (so that threads, imports and caches left by one cannot flatter or
penalise the next); those that talk HTTP start their own local Step Functions endpoint (:mod:`bench.endpoint`).
The exit status is non-zero only when a benchmark crashed: a missed target is reported in the table, never as a
failure, because ratios on a shared CI machine are too noisy to gate on.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FAKE_AWS_ENV, Row, apply_fake_aws_env, format_table, rows_from_json, rows_to_json

#: The benchmarks, in the order they run.
BENCHMARKS = (
    "coldstart",
    "pertask",
    "sqsbatch",
    "widebatch",
    "heartbeat",
    "hbscale",
    "activity",
    "quota",
    "quotamatrix",
    "observe",
)


def _run_one(name: str, quick: bool, env: dict[str, str]) -> tuple[list[Row], str | None, float]:
    """Run one benchmark in a child interpreter; return its rows, the error (if it crashed) and its duration."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        args = [sys.executable, "-m", "bench._child", name, str(out)] + (["--quick"] if quick else [])
        start = time.perf_counter()
        proc = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
            return [], f"exit status {proc.returncode}\n{tail}", elapsed
        return rows_from_json(out.read_text()), None, elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks, print the table, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations only (CI: checks nothing rotted)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)

    apply_fake_aws_env()
    root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        **FAKE_AWS_ENV,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    rows: list[Row] = []
    crashed: list[str] = []
    started = time.perf_counter()
    for name in names:
        print(f"running {name}...", file=sys.stderr, flush=True)
        got, error, elapsed = _run_one(name, args.quick, env)
        print(f"  {name}: {elapsed:.1f} s", file=sys.stderr, flush=True)
        if error is not None:
            crashed.append(name)
            print(f"  {name} CRASHED: {error}", file=sys.stderr, flush=True)
        rows.extend(got)
    total = time.perf_counter() - started
    if args.json:
        print(rows_to_json(rows))
    else:
        mode = "quick" if args.quick else "full"
        print(
            f"callback-kit benchmarks ({mode} mode, {total:.0f} s): Python {platform.python_version()}, "
            f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
        )
        print(format_table(rows))
        missed = [f"{r.bench}: {r.case}" for r in rows if r.met is False]
        print(f"\ntargets met: {sum(1 for r in rows if r.met)} of {sum(1 for r in rows if r.met is not None)}")
        for miss in missed:
            print(f"  missed: {miss}")
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
