"""The ``callback-kit check`` subcommand: its arguments and what it does with them."""

from __future__ import annotations

import argparse
from typing import IO, Any

from callback_kit.check.engine import check_paths
from callback_kit.check.findings import RULES
from callback_kit.check.report import as_json, as_text, exit_code, summary

DEFAULT_PATH = "template.yaml"
EPILOG = (
    "rules:\n"
    + "\n".join(f"  {r.code}  {r.level:<7}  {r.title}" for r in RULES.values())
    + "\n\nexit codes:\n  0  no error-level finding (with --strict: no finding at all)\n"
    "  1  at least one error-level finding (with --strict: any finding)\n"
    "  2  usage error: a path is missing or is neither a template nor a state machine definition"
)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``check`` on the ``callback-kit`` command's subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "check",
        parents=parents,
        help="find what will hang a callback workflow, before it is deployed",
        description="Check SAM/CloudFormation templates and ASL files (*.asl.json, *.asl.yaml) for callback tasks "
        "that can hang: no timeout, no heartbeat, a token never passed, queues that redeliver work in progress.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"templates, ASL files or directories (default: {DEFAULT_PATH})",
    )
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("--strict", action="store_true", help="warnings fail the check too")
    p.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="CODES",
        help="rule codes to skip, e.g. CK002,CK005",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=float,
        metavar="S",
        help="the heartbeat interval of workers the template does not define (activity workers, ASL files alone); "
        "default: callback-kit's 30 s, assumed and said in the finding",
    )
    return p


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run the check the parsed arguments ask for; print the findings; return the exit code."""
    ignore = {code.strip().upper() for value in args.ignore for code in value.split(",") if code.strip()}
    unknown = sorted(ignore - set(RULES))
    if unknown:
        raise ValueError(f"unknown rule code(s): {', '.join(unknown)}")
    findings = check_paths(args.paths or [DEFAULT_PATH], ignore=ignore, heartbeat_interval=args.heartbeat_interval)
    if args.format == "json":
        print(as_json(findings), file=out)
    elif findings:
        print(as_text(findings), file=out)
    print(f"callback-kit check: {summary(findings)}", file=err)
    return exit_code(findings, strict=args.strict)
