"""The upstream trace contexts a task's span links to: an SQS ``AWSTraceHeader`` (X-Ray) and a W3C ``traceparent``.

Pure parsing, no OpenTelemetry import: each parser gives ``(trace_id, span_id, sampled)`` or ``None`` for a value
that is absent or malformed (a bad header must never stop a task), and :mod:`callback_kit.observe.tracing` turns
them into links.
"""

from __future__ import annotations

import re
from typing import Any

#: ``(trace_id, span_id, sampled)``, the ids as integers, as OpenTelemetry's ``SpanContext`` takes them.
Upstream = tuple[int, int, bool]

# Patterns as text, compiled (and cached by ``re``) on first use: most processes never see a trace header, and
# compiling at import would cost every cold start.
_XRAY_ROOT = r"1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})"
_HEX16 = r"[0-9a-fA-F]{16}"
_TRACEPARENT = r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?"


def from_xray(header: Any) -> Upstream | None:
    """The context an X-Ray trace header names (``Root=1-...;Parent=...;Sampled=1``), or ``None``.

    An X-Ray trace id is a version, an 8-digit epoch and 24 random digits; OpenTelemetry's is the 32 digits
    after the version, which is how AWS's own propagator maps them.

    Example:
        >>> header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        >>> trace_id, span_id, sampled = from_xray(header)
        >>> f"{trace_id:032x}", f"{span_id:016x}", sampled
        ('5759e988bd862e3fe1be46a994272793', '53995c3f42cd8ad8', True)
        >>> from_xray("Root=1-5759e988-bd862e3fe1be46a994272793") is None  # no parent: nothing to link to
        True
    """
    if not isinstance(header, str):
        return None
    fields = dict(part.strip().partition("=")[::2] for part in header.split(";"))
    root = re.fullmatch(_XRAY_ROOT, fields.get("Root", ""))
    parent = fields.get("Parent", "")
    if root is None or not re.fullmatch(_HEX16, parent):
        return None
    trace_id, span_id = int(root.group(1) + root.group(2), 16), int(parent, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, fields.get("Sampled") == "1"


def from_traceparent(value: Any) -> Upstream | None:
    """The context a W3C ``traceparent`` names (``00-<trace id>-<parent id>-<flags>``), or ``None``.

    Example:
        >>> trace_id, span_id, sampled = from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        >>> f"{span_id:016x}", sampled
        ('00f067aa0ba902b7', True)
        >>> from_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") is None  # forbidden version
        True
    """
    if not isinstance(value, str):
        return None
    match = re.fullmatch(_TRACEPARENT, value.strip())
    if match is None or match.group(1) == "ff" or (match.group(1) == "00" and match.group(5)):
        return None
    trace_id, span_id = int(match.group(2), 16), int(match.group(3), 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, bool(int(match.group(4), 16) & 1)


def state_machine_of(execution_arn: str | None) -> str | None:
    """The state machine ARN an execution ARN belongs to (standard and express executions), or ``None``.

    Example:
        >>> state_machine_of("arn:aws:states:eu-west-1:123456789012:execution:Orders:run-1")
        'arn:aws:states:eu-west-1:123456789012:stateMachine:Orders'
        >>> state_machine_of("arn:aws:states:eu-west-1:123456789012:express:Orders:run-1:f00") is None
        False
        >>> state_machine_of("not an arn") is None
        True
    """
    if not execution_arn:
        return None
    parts = execution_arn.split(":")
    if len(parts) < 8 or parts[2] != "states" or parts[5] not in ("execution", "express"):
        return None
    return ":".join([*parts[:5], "stateMachine", parts[6]])
