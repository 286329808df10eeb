"""Findings as text lines or JSON, and the command's exit code."""

from __future__ import annotations

import json

from callback_kit.check.findings import Finding, fails


def as_text(findings: list[Finding]) -> str:
    """One line per finding, ``PATH:STATE_OR_RESOURCE: CODE level: message (how to fix)``.

    Example:
        >>> print(as_text([Finding("a.asl.json", "Ask", "CK001", "error", "no timeout", "set TimeoutSeconds")]))
        a.asl.json:Ask: CK001 error: no timeout (set TimeoutSeconds)
    """
    return "\n".join(str(f) for f in findings)


def as_json(findings: list[Finding]) -> str:
    """A JSON array of the findings' :meth:`Finding.to_dict`.

    Example:
        >>> print(as_json([Finding("a.asl.json", "Ask", "CK002", "warning", "m", "f")]))  # doctest: +ELLIPSIS
        [
          {
            "path": "a.asl.json",
            "where": "Ask",
            "code": "CK002",
        ...
    """
    return json.dumps([f.to_dict() for f in findings], indent=2)


def summary(findings: list[Finding]) -> str:
    """``2 errors, 1 warning`` (or ``no findings``).

    Example:
        >>> summary([])
        'no findings'
    """
    errors = sum(f.level == "error" for f in findings)
    warnings = len(findings) - errors
    if not findings:
        return "no findings"
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"


def exit_code(findings: list[Finding], *, strict: bool = False) -> int:
    """1 when a finding fails the check (an error, or anything with ``strict``), else 0."""
    return 1 if fails(findings, strict=strict) else 0
