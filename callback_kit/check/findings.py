"""What the checker reports: the rule table and the :class:`Finding` record.

The rule codes (``CK001`` ...) are part of callback-kit's interface: scripts, ``--ignore`` lists and the cfn-lint
plugin name them, so a code keeps its meaning forever; a new check gets a new code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, TypeAlias

Level: TypeAlias = Literal["error", "warning"]


@dataclass(frozen=True)
class Rule:
    """One rule of the checker.

    Attributes:
        code: the stable code, e.g. ``CK001``.
        level: the level of its findings (CK006 reports either, by how far the timeout is off).
        title: one line saying what it finds.
    """

    code: str
    level: Level
    title: str


RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule("CK000", "error", "a definition or template that cannot be read"),
        Rule("CK001", "error", "a callback task without TimeoutSeconds/TimeoutSecondsPath"),
        Rule("CK002", "warning", "a callback task without HeartbeatSeconds/HeartbeatSecondsPath"),
        Rule("CK003", "error", "a .waitForTaskToken task that never passes the task token"),
        Rule("CK004", "error", "HeartbeatSeconds >= TimeoutSeconds, or below 2x the worker's heartbeat interval"),
        Rule("CK005", "warning", "a callback task without a Catch for States.Timeout and task failures"),
        Rule("CK006", "error", "an SQS queue's VisibilityTimeout below its function's Timeout (warning below 6x)"),
        Rule("CK007", "warning", "an SQS event source without ReportBatchItemFailures, or its queue without a DLQ"),
        Rule("CK008", "warning", "the token passed under a key a callback-kit worker does not look at by default"),
        Rule("CK009", "warning", "an EventBridge target or asynchronously invoked worker without a DLQ/destination"),
        Rule("CK010", "warning", "a callback task in a Map without MaxConcurrency, or above the SendTask* quota"),
        Rule("CK011", "error", "a callback task in an Express workflow, which does not support callbacks"),
        Rule("CK012", "warning", "an ecs:runTask.waitForTaskToken task and no rule routing ECS stops to a reaper"),
        Rule("CK013", "error", "a Retry or Catch on Ecs.* errors in an ecs:runTask.waitForTaskToken task"),
        Rule("CK014", "error", "HeartbeatSeconds shorter than the longest wait of the durable function answering"),
    )
}


@dataclass(frozen=True)
class Finding:
    """One problem found.

    Attributes:
        path: the file it is in (the ASL file for a state machine loaded from ``DefinitionUri``).
        where: the state (``Outer Map/Inner Task``, prefixed by the state machine in a template's inline
            definition) or the template resource (``OrderQueue``, ``Worker/Events/Orders``).
        code: the rule code.
        level: ``error`` or ``warning``.
        message: what is wrong.
        fix: how to fix it.
        resource: the template resource it belongs to (the state machine for a state), if any.

    Example:
        >>> print(Finding("t.yaml", "Machine/Ask", "CK001", "error", "no timeout", "set TimeoutSeconds"))
        t.yaml:Machine/Ask: CK001 error: no timeout (set TimeoutSeconds)
    """

    path: str
    where: str
    code: str
    level: Level
    message: str
    fix: str
    resource: str | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.where}: {self.code} {self.level}: {self.message} ({self.fix})"

    def to_dict(self) -> dict[str, str | None]:
        """The finding as a JSON-ready dict (the ``--format json`` shape)."""
        return asdict(self)


def fails(findings: list[Finding], *, strict: bool = False) -> bool:
    """Whether these findings fail a check: any error, or with ``strict`` any finding at all.

    Example:
        >>> warning = Finding("a.asl.json", "S", "CK002", "warning", "m", "f")
        >>> fails([warning]), fails([warning], strict=True)
        (False, True)
    """
    return any(strict or f.level == "error" for f in findings)
