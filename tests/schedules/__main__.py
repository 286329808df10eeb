"""``scripts/schedules``: run N schedules from a seed, or replay one, and report invariant violations.

python -m tests.schedules --count 500 --seed 1
python -m tests.schedules --count 10000 --seed 1 --jobs 2
python -m tests.schedules --replay 1234 [--repeat 5] [--verbose]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

from tests.schedules.explore import DEFAULT_SCALE, Outcome, quiet_library_output, run_many, run_seed
from tests.schedules.plan import generate


def _report(outcome: Outcome, out: list[str]) -> None:
    for v in outcome.violations:
        out.append(f"seed {outcome.seed}: {v}")
    if outcome.violations:
        out.append(f"  schedule: {outcome.description}")
        out.append(f"  replay:   scripts/schedules --replay {outcome.seed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/schedules", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--count", type=int, default=500, help="schedules to run (default 500)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first schedule (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="processes to run them in (default 1)")
    parser.add_argument("--scale", type=float, default=DEFAULT_SCALE, help="real seconds per schedule second")
    parser.add_argument("--replay", type=int, help="run only the schedule of this seed")
    parser.add_argument("--repeat", type=int, default=1, help="with --replay: run it this many times")
    parser.add_argument("--verbose", action="store_true", help="print the schedule of every failing seed in full")
    args = parser.parse_args(argv)

    for name, value in (("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "testing")):
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")

    quiet_library_output()
    began = time.monotonic()
    seeds = [args.replay] * args.repeat if args.replay is not None else list(range(args.seed, args.seed + args.count))
    failing: list[Outcome] = []
    causes: Counter[tuple[int, str]] = Counter()
    ambiguous = unconfirmed = 0
    lines: list[str] = []
    for outcome in run_many(seeds, args.scale, args.jobs if args.replay is None else 1):
        ambiguous += outcome.ambiguous
        unconfirmed += len(outcome.unconfirmed)
        if outcome.violations:
            failing.append(outcome)
            _report(outcome, lines)
            if args.verbose:
                lines.append(f"  plan: {generate(outcome.seed)}")
        for v in outcome.violations:
            causes[(v.invariant, v.cause)] += 1
    print("\n".join(lines)) if lines else None
    if causes:
        print("violations by invariant and cause:")
        for (invariant, cause), n in sorted(causes.items()):
            example = next(o.seed for o in failing if any(v.cause == cause for v in o.violations))
            print(f"  {n:5d}  invariant {invariant}: {cause}  (e.g. --replay {example})")
    total = sum(len(o.violations) for o in failing)
    print(
        f"{len(seeds)} schedules, {total} invariant violations "
        f"({len(failing)} failing schedules, {ambiguous} ambiguous landings, {unconfirmed} unconfirmed timing; "
        f"{time.monotonic() - began:.1f}s)"
    )
    return 1 if total else 0


def replay(seed: int) -> Outcome:
    """Run one seed again (for tests and the REPL)."""
    return run_seed(seed)


if __name__ == "__main__":
    sys.exit(main())
