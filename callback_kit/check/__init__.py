"""``callback-kit check``: find what will hang a callback workflow before it is deployed.

Reads SAM/CloudFormation templates and ASL files, walks every state (in Map and Parallel at any depth, JSONPath and
JSONata), and reports callback tasks without timeouts or heartbeats, tokens never passed or passed where the worker
will not look, and queues, rules and functions around them that redeliver or drop work. See docs/check.md.

Example:
    >>> from callback_kit.check import check_paths
    >>> findings = check_paths(["template.yaml"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from callback_kit.check.engine import check_paths
from callback_kit.check.findings import RULES, Finding, Rule, fails
from callback_kit.check.loader import UnreadableInputError
from callback_kit.check.report import as_text


def assert_clean(
    *paths: str | os.PathLike[str],
    strict: bool = True,
    ignore: Iterable[str] = (),
    heartbeat_interval: float | None = None,
) -> None:
    """Fail a test when the checker finds something: the pytest helper.

    Args:
        paths: what to check (default ``template.yaml`` in the current directory).
        strict: warnings fail too (the default: a test is where a warning is cheapest to fix or to silence).
        ignore: rule codes not to report.
        heartbeat_interval: see :func:`check_paths`.

    Raises:
        AssertionError: listing every finding, one per line.

    Example:
        >>> import json, pathlib, tempfile
        >>> wait = {"Type": "Task", "Resource": "arn:aws:states:us-east-1:123456789012:activity:a", "End": True}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asl = pathlib.Path(tmp, "x.asl.json")
        ...     _ = asl.write_text(json.dumps({"StartAt": "Wait", "States": {"Wait": wait}}))
        ...     assert_clean(asl)
        Traceback (most recent call last):
        AssertionError: callback-kit check found 3 problem(s):
        ...x.asl.json:Wait: CK001 error: callback task without TimeoutSeconds: ...
    """
    findings = check_paths(paths or ["template.yaml"], ignore=ignore, heartbeat_interval=heartbeat_interval)
    if fails(findings, strict=strict):
        raise AssertionError(f"callback-kit check found {len(findings)} problem(s):\n{as_text(findings)}")


__all__ = ["RULES", "Finding", "Rule", "UnreadableInputError", "assert_clean", "check_paths"]
