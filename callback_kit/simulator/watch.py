"""Following an execution: its history events, with tokens replaced by fingerprints, as readable lines."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from callback_kit.simulator.records import token_fingerprint

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

__all__ = ["ExecutionEvent", "ExecutionWatcher", "format_event", "redact"]


def redact(value: Any) -> Any:
    """Replace every string under a key that names a token by its fingerprint (history shows raw tokens).

    Example:
        >>> redact({"MessageBody": {"TaskToken": "abc", "n": 1}})
        {'MessageBody': {'TaskToken': 'tok-ba7816bf8f01', 'n': 1}}
    """
    if isinstance(value, Mapping):
        return {
            k: token_fingerprint(v) if isinstance(v, str) and "token" in k.lower() else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


@dataclass(frozen=True)
class ExecutionEvent:
    """One history event of an execution, with tokens replaced by fingerprints.

    Example:
        >>> for ev in sim.follow(execution_arn, timeout=3):                  # doctest: +SKIP
        ...     print(format_event(ev))
    """

    execution_arn: str
    id: int
    type: str
    timestamp: datetime
    state_name: str | None
    details: dict[str, Any] = field(default_factory=dict)


def format_event(event: ExecutionEvent) -> str:
    """Render a history event as one readable line (state entered, task scheduled, outcome, ...).

    Example:
        >>> format_event(ExecutionEvent("arn", 2, "TaskStateEntered", datetime(2024, 1, 1), "Check"))
        '[2] TaskStateEntered Check'
    """
    d = event.details
    parts = [f"[{event.id}] {event.type}"]
    if event.state_name:
        parts.append(event.state_name)
    if event.type == "TaskScheduled":
        parts.append(f"{d.get('resourceType')}:{d.get('resource')}")
        params = d.get("parameters")
        if params is not None:
            parts.append(json.dumps(params, separators=(",", ":")))
        if d.get("heartbeatInSeconds"):
            parts.append(f"heartbeat={d['heartbeatInSeconds']}s")
    if event.type == "ExecutionStarted" and d.get("input") is not None:
        parts.append(f"input={d['input']}")
    for key in ("output", "error", "cause"):
        if d.get(key) is not None and event.type != "TaskScheduled":
            parts.append(f"{key}={d[key]}")
    return " ".join(parts)


class ExecutionWatcher:
    """Polls an execution's history and returns only the events not seen before.

    Step Functions has no "events since id" query, so each poll reads the whole (paginated) history and
    skips what it has already returned; executions in tests are short, so this is cheap.

    Example:
        >>> watcher = sim.watch(execution_arn)                               # doctest: +SKIP
        >>> for ev in watcher.poll():  # doctest: +SKIP
        ...     print(format_event(ev))
    """

    def __init__(self, sfn: SFNClient, execution_arn: str) -> None:
        self._sfn = sfn
        self.execution_arn = execution_arn
        self._last_id = 0
        self._state: str | None = None
        self.status = "RUNNING"

    def poll(self) -> list[ExecutionEvent]:
        """Return the new events, oldest first, and refresh :attr:`status`."""
        new: list[ExecutionEvent] = []
        for page in self._sfn.get_paginator("get_execution_history").paginate(executionArn=self.execution_arn):
            for raw in page["events"]:
                if raw["id"] <= self._last_id:
                    continue
                self._last_id = raw["id"]
                new.append(self._convert(dict(raw)))
        self.status = self._sfn.describe_execution(executionArn=self.execution_arn)["status"]
        return new

    def _convert(self, raw: dict[str, Any]) -> ExecutionEvent:
        details: dict[str, Any] = {}
        for key, value in raw.items():
            if key.endswith("EventDetails") and isinstance(value, dict):
                details = dict(value)
        if raw["type"].endswith("StateEntered"):
            self._state = details.get("name")
        # Parameters and outputs are JSON strings; decode them so that token keys can be redacted.
        for key in ("parameters", "output", "input"):
            if isinstance(details.get(key), str):
                with contextlib.suppress(ValueError):
                    details[key] = json.loads(details[key])
        details = redact(details)
        for key in ("output", "input"):
            if key in details and not isinstance(details[key], str):
                details[key] = json.dumps(details[key], separators=(",", ":"))
        state = details.get("name") or (self._state if not raw["type"].startswith("Execution") else None)
        return ExecutionEvent(self.execution_arn, raw["id"], raw["type"], raw["timestamp"], state, details)
