"""What the sources produce: one :class:`TaskRecord` per task found in an event."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeAlias

from callback_kit.logs import fingerprint

Source: TypeAlias = Literal["sqs", "sns", "eventbridge", "direct", "activity"]
SOURCES: tuple[Source, ...] = ("sqs", "sns", "eventbridge", "direct", "activity")

#: What an SQS body can hold around the message: an SNS notification or an EventBridge event.
Envelope: TypeAlias = Literal["sns", "eventbridge"]
#: What waits for the answer: a Step Functions task (a task token) or a Lambda durable function (a callback id).
Kind: TypeAlias = Literal["stepfunctions", "durable"]


@dataclass(frozen=True, repr=False)
class TaskRecord:
    """One task to run, as found in an event.

    Attributes:
        source: where it came from.
        token: the task token (for ``kind="durable"``, the callback id), or ``None`` when there is no usable one
            (the message must be redelivered).
        payload: what the user function receives (before ``model=`` validation).
        record_id: the SQS message id, the SNS message id or the EventBridge event id, for logs and batch item
            failures (for an SQS record always the SQS message id, whatever its body held).
        group_id: the FIFO message group, which keeps its records in order.
        execution_arn: the waiting execution, where the event says it.
        problem: why the record cannot run; with a token, it is answered with a failure callback.
        envelope: what was unwrapped to reach the message inside an SQS body (``"sns"``: an SNS notification,
            ``"eventbridge"``: an EventBridge event), or ``None``.
        trace_header: the SQS record's ``AWSTraceHeader`` attribute (X-Ray format), which its span links to.
        traceparent: a W3C ``traceparent`` the message carries (a ``traceparent`` key, or an SQS message attribute).
        kind: ``"stepfunctions"`` (a task token) or ``"durable"`` (a Lambda durable callback id): where the answer
            goes (:mod:`callback_kit.task.answers`).

    The repr shows the token's fingerprint, never the token (a bearer credential), and a payload of any size or
    depth shortened.

    Example:
        >>> TaskRecord("sqs", "tok", {"n": 1}, record_id="m-1", envelope="sns").envelope
        'sns'
        >>> TaskRecord("direct", "tok", {"n": 1})
        TaskRecord(source='direct', token_fp='tok-1a7674eb4ee7', payload={'n': 1}, record_id=None, group_id=None, execution_arn=None, problem=None, envelope=None, trace_header=None, traceparent=None, kind='stepfunctions')
    """  # noqa: E501 - the doctest shows the repr as one line

    source: Source
    token: str | None
    payload: Any = None
    record_id: str | None = None
    group_id: str | None = None
    execution_arn: str | None = None
    problem: str | None = None
    envelope: Envelope | None = None
    trace_header: str | None = None
    traceparent: str | None = None
    kind: Kind = "stepfunctions"

    def __repr__(self) -> str:
        parts = []
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "token":
                parts.append(f"token_fp={fingerprint(value) if value is not None else None!r}")
            elif field.name == "payload":
                parts.append(f"payload={reprlib.repr(value)}")  # depth- and size-limited: any payload can be shown
            else:
                parts.append(f"{field.name}={value!r}")
        return f"TaskRecord({', '.join(parts)})"
